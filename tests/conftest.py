"""Shared fixtures: tiny seeded fastMRI-format datasets built in the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mribench.data.fastmri_io import write_volume
from mribench.data.header import AcquisitionHeader
from mribench.paths import weights_dir
from mribench.physics.fft import center_crop, fft2c, ifft2c, rss

# Fetched metric weights stay visible to the tests although each test gets its own cache.
_WEIGHTS = weights_dir()

SHARED = Path(__file__).resolve().parents[2] / "shared"
REFERENCE = SHARED / "reference"


def _phantom(rng: np.random.Generator, n: int) -> np.ndarray:
    """A smooth random blob image (n, n) with a few ellipses, complex with a smooth phase."""
    y, x = np.mgrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j]
    img = np.zeros((n, n))
    for _ in range(4):
        cx, cy, a, b = rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), rng.uniform(0.15, 0.5), rng.uniform(0.15, 0.5)
        img += rng.uniform(0.3, 1.0) * (((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 < 1)
    phase = 0.5 * x + 0.3 * y
    return img * np.exp(1j * phase)


def make_volume(
    root: Path,
    name: str,
    *,
    protocol: str = "CORPD_FBK",
    coils: int = 4,
    slices: int = 3,
    recon: int = 32,
    field: float = 2.89362,
    vendor: str = "SIEMENS",
    model: str = "Skyra",
    institution: str = "NYU",
    seed: int = 0,
    attrs: dict | None = None,
) -> Path:
    """Write a small multi-coil fastMRI-format volume with 2x read-out oversampling and padding."""
    rng = np.random.default_rng(seed)
    H, W = 2 * recon, recon + 8
    imgs = []
    for _ in range(slices):
        obj = np.zeros((H, W), complex)
        obj[H // 4 : H // 4 + recon, 4 : 4 + recon] = _phantom(rng, recon)
        yy, xx = np.mgrid[0:H, 0:W]
        sens = np.stack(
            [np.exp(-(((yy - H * (c + 1) / (coils + 1)) / H) ** 2) * 4) * np.exp(1j * c) for c in range(coils)]
        )
        imgs.append(sens * obj)
    coil_imgs = torch.from_numpy(np.stack(imgs).astype(np.complex64))
    k = fft2c(coil_imgs)
    k = k + 0.01 * torch.from_numpy(
        (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape)).astype(np.complex64)
    )
    k[..., :2] = 0  # unacquired padding columns
    k[..., W - 2 :] = 0
    target = center_crop(rss(ifft2c(k)), (recon, recon)).numpy()
    header = AcquisitionHeader(
        encoded_size=(H, W, 1),
        recon_size=(recon, recon, 1),
        enc_limits_center=W // 2 - 2,
        enc_limits_max=W - 5,
        protocol_name=protocol,
        system_vendor=vendor,
        system_model=model,
        field_strength_t=field,
        receiver_channels=coils,
        institution_name=institution,
        sequence_type="TurboSpinEcho",
        tr_ms=2800.0,
        te_ms=30.0,
    )
    path = root / f"{name}.h5"
    write_volume(path, k.numpy(), target, header, acquisition=protocol, patient_id=f"p{seed}", extra_attrs=attrs)
    return path


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A handful of knee and brain volumes, enough for every split of a simple task."""
    root = tmp_path_factory.mktemp("tiny")
    for i in range(8):
        make_volume(root, f"file_knee_{i:03d}", protocol="CORPD_FBK", coils=4, seed=i)
    for i in range(8):
        make_volume(root, f"file_brain_AXT2_{i:03d}", protocol="AXT2", coils=4, seed=100 + i)
    return root


@pytest.fixture()
def one_thread() -> object:
    """Run a test on one intra-op thread: tiny tensors only pay synchronisation for more (and stall
    badly on a loaded machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own cache so nothing leaks between tests or into ~/.cache."""
    monkeypatch.setenv("MRIBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MRIBENCH_WEIGHTS", str(_WEIGHTS))
    monkeypatch.delenv("MRIBENCH_DATA", raising=False)


TINY_CLIP = "mribench-test-tiny-vit"


@pytest.fixture()
def tiny_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A 2-layer ViT CLIP registered with open_clip and saved with random weights (plumbing tests only)."""
    import json

    import open_clip

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
    }
    cfg_file = tmp_path / f"{TINY_CLIP}.json"
    cfg_file.write_text(json.dumps(cfg))
    open_clip.add_model_config(cfg_file)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.create_model(TINY_CLIP)
    path = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), path)
    return path
