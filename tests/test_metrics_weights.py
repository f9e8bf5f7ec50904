"""Weights: restricted unpickling, conversion, fetch from local sources, manifest, status, missing path."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mribench.errors import MetricError, WeightsMissingError
from mribench.metrics import get_metric, weights_status
from mribench.metrics import weights as W
from mribench.metrics._safe_pickle import UnsafePickleError, load_numpy_pickle


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code_and_reads_arrays() -> None:
    with pytest.raises(UnsafePickleError, match="expected only NumPy"):
        load_numpy_pickle(pickle.dumps({"a": _Evil()}))
    arrays = {"A_0": {"Conv_0": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)}}}
    out = load_numpy_pickle(pickle.dumps(arrays, protocol=3))
    np.testing.assert_array_equal(out["A_0"]["Conv_0"]["kernel"], arrays["A_0"]["Conv_0"]["kernel"])


def _flax_alexnet(seed: int = 0) -> dict:
    """A Flax-layout AlexNet param tree (HWIO kernels) with random values."""
    rng = np.random.default_rng(seed)
    shapes = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]
    tree = {
        f"Conv_{i}": {
            "kernel": rng.standard_normal(s).astype(np.float32),
            "bias": rng.standard_normal(s[-1]).astype(np.float32),
        }
        for i, s in enumerate(shapes)
    }
    return {"AlexNet_0": tree, "NetLinLayer_0": {"Conv_0": {"kernel": np.zeros((1, 1, 64, 1), np.float32)}}}


def test_flax_conversion_transposes_hwio_to_oihw_with_torchvision_names() -> None:
    tree = _flax_alexnet()
    state = W._features_from_flax(pickle.dumps(tree, protocol=3), "alexnet")
    assert sorted(state) == sorted(f"features.{i}.{k}" for i in (0, 3, 6, 8, 10) for k in ("weight", "bias"))
    k = tree["AlexNet_0"]["Conv_1"]["kernel"]  # (kh, kw, in, out)
    w = state["features.3.weight"]  # (out, in, kh, kw)
    assert w.shape == (192, 64, 5, 5)
    assert float(w[7, 5, 1, 2]) == float(k[1, 2, 5, 7])
    # The converted kernels load into torchvision's AlexNet features.
    from torchvision.models import alexnet

    alexnet(weights=None).features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()})


@pytest.fixture()
def empty_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "weights"
    monkeypatch.setenv("MRIBENCH_WEIGHTS", str(folder))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return folder


def test_missing_weights_raise_with_hint(empty_weights: Path) -> None:
    from mribench.metrics import dists, lpips

    for name in ("lpips_vgg", "lpips_alex", "dists"):
        with pytest.raises(WeightsMissingError, match="mribench weights fetch"):
            get_metric(name).check_available()
    x = torch.rand(1, 32, 32)
    with pytest.raises(WeightsMissingError, match="hint"):
        lpips(x, x, net="alex")
    with pytest.raises(WeightsMissingError, match="hint"):
        dists(x, x)
    with pytest.raises(WeightsMissingError, match="hint"):
        W.load_weights("vgg16_imagenet")
    get_metric("ssim").check_available()  # no weights needed
    assert [r.status for r in weights_status()] == ["missing"] * 3


def _fake_wheel(path: Path) -> tuple[bytes, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    ab = {"alpha": torch.rand(1, 1475, 1, 1, generator=g), "beta": torch.rand(1, 1475, 1, 1, generator=g)}
    buf = io.BytesIO()
    torch.save(ab, buf)
    member = buf.getvalue()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("DISTS_pytorch/weights.pt", member)
    return member, ab


def test_fetch_from_pypi_archive_writes_safetensors_and_manifest(
    empty_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = tmp_path / "DISTS_pytorch-0.1-py3-none-any.whl"
    member, ab = _fake_wheel(wheel)
    spec = W.SPECS["dists_alpha_beta"]
    pkg = dataclasses.replace(spec.package, member_sha256=hashlib.sha256(member).hexdigest())
    monkeypatch.setitem(W.SPECS, "dists_alpha_beta", dataclasses.replace(spec, package=pkg))
    monkeypatch.setattr(W, "_pip_download", lambda pkg, tmp: wheel)  # no network in tests
    lines: list[str] = []
    (rec,) = W.fetch_weights(["dists_alpha_beta"], progress=lines.append, sources=["pypi"])
    assert rec.found and rec.path == empty_weights / "dists_alpha_beta.safetensors"
    assert rec.source == "pypi:DISTS-pytorch==0.1 DISTS_pytorch/weights.pt"
    assert rec.upstream_sha256 == pkg.member_sha256 and any("wrote" in line for line in lines)
    manifest = json.loads((empty_weights / "manifest.json").read_text())
    assert manifest["weights"]["dists_alpha_beta"]["sha256"] == hashlib.sha256(rec.path.read_bytes()).hexdigest()
    loaded = W.load_weights("dists_alpha_beta")
    torch.testing.assert_close(loaded["alpha"], ab["alpha"])
    # A second fetch converts nothing; a damaged file is reported and refused.
    assert W.fetch_weights(["dists_alpha_beta"], sources=["pypi"])[0].sha256 == rec.sha256
    data = bytearray(rec.path.read_bytes())
    data[-1] ^= 0xFF
    rec.path.write_bytes(bytes(data))
    status = {r.name: r.status for r in weights_status()}
    assert status["dists_alpha_beta"] == "corrupt"
    with pytest.raises(WeightsMissingError, match="fetch --force"):
        W.load_weights("dists_alpha_beta")


def test_fetch_rejects_a_member_with_the_wrong_hash(
    empty_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = tmp_path / "DISTS_pytorch-0.1-py3-none-any.whl"
    _fake_wheel(wheel)  # its weights.pt is not the pinned upstream file
    monkeypatch.setattr(W, "_pip_download", lambda pkg, tmp: wheel)
    with pytest.raises(WeightsMissingError, match="expected sha256"):
        W.fetch_weights(["dists_alpha_beta"], sources=["pypi"])
    assert not (empty_weights / "dists_alpha_beta.safetensors").exists()


def test_fetch_converts_a_torchvision_checkpoint_from_torch_home(
    empty_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchvision.models import alexnet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        state = alexnet(weights=None).state_dict()
    ckpt_dir = tmp_path / "torch_home" / "hub" / "checkpoints"
    ckpt_dir.mkdir(parents=True)
    tmp_ckpt = ckpt_dir / "tmp.pth"
    torch.save(state, tmp_ckpt)
    digest = hashlib.sha256(tmp_ckpt.read_bytes()).hexdigest()
    name = f"alexnet-owt-{digest[:8]}.pth"  # torchvision names carry the sha256 prefix
    tmp_ckpt.rename(ckpt_dir / name)
    monkeypatch.setitem(
        W.SPECS, "alexnet_imagenet", dataclasses.replace(W.SPECS["alexnet_imagenet"], torchvision_file=name)
    )
    (rec,) = W.fetch_weights(["lpips_alex"], sources=["torch_home"])
    assert rec.found and rec.source is not None and rec.source.startswith("torch_home:")
    loaded = W.load_weights("alexnet_imagenet")
    torch.testing.assert_close(loaded["features.3.weight"], state["features.3.weight"])
    assert "classifier.1.weight" not in loaded


def test_unknown_names_and_sources(empty_weights: Path) -> None:
    with pytest.raises(MetricError, match="did you mean"):
        W.fetch_weights(["lpips_vg"])
    with pytest.raises(MetricError, match="sources"):
        W.fetch_weights(["dists"], sources=["ftp"])  # type: ignore[list-item]
