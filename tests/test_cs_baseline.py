"""The classical baseline cs-l1wavelet: model contract, scale of the RSS target, runs through the evaluator."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fastmri.evaluate import ssim

from mribench import EvalOptions, evaluate
from mribench.api.model import SliceMeta
from mribench.models import load_model
from mribench.models.cs import L1WaveletCS, bart_scale
from mribench.physics import zero_filled
from mribench.physics.fft import center_crop, ifft2c, rss
from mribench.physics.masks import MaskSpec, volume_mask
from mribench.physics.sensitivity import estimate_sensitivities
from mribench.tasks import parse_task


def _slice(root: Path, name: str = "file_knee_000.h5") -> tuple[torch.Tensor, np.ndarray, float]:
    with h5py.File(root / name) as f:
        return torch.from_numpy(f["kspace"][1]), f["reconstruction_rss"][1], float(f.attrs["max"])


def test_bart_scale_rule() -> None:
    flat = np.linspace(0, 1, 101)  # short tail: the 90th percentile
    assert bart_scale(flat) == pytest.approx(0.9)
    spiky = np.r_[np.zeros(90), np.ones(10) * 0.1, 100.0]  # long tail: the maximum
    assert bart_scale(spiky) == pytest.approx(100.0)
    assert bart_scale(np.zeros(5)) == 1.0


def test_fully_sampled_recon_has_the_rss_scale(tiny_root: Path, one_thread: None) -> None:
    """On a fully sampled slice |x| matches the RSS (= zero-filled) image where the maps are defined."""
    k, target, vmax = _slice(tiny_root)
    w = k.shape[-1]
    full = torch.zeros(1, 1, w)
    full[..., 2 : w - 2] = 1  # every acquired column (the outer ones are padding)
    kk = k * full
    sens = estimate_sensitivities(kk, 8)
    image = np.abs(L1WaveletCS().reconstruct(kk, full, sens))
    zf = rss(ifft2c(kk)).numpy()
    obj = (sens.abs().pow(2).sum(0) > 0.5).numpy()
    assert obj.mean() > 0.05
    assert image[obj].sum() / zf[obj].sum() == pytest.approx(1.0, abs=0.02)
    meta = SliceMeta("f.h5", (1,), target.shape, (2, w - 2), 8, 1, vmax)
    out = L1WaveletCS()(kk[None], full[None], meta)[0].numpy()
    ref = zero_filled(kk[None], target.shape)[0].numpy()
    np.testing.assert_allclose(ref, target, rtol=1e-5, atol=1e-6 * vmax)  # zero-filled of full data = the target
    assert out.mean() / target.mean() == pytest.approx(1.0, abs=0.1)
    assert ssim(target[None], out[None], vmax) > 0.8


def test_contract_and_beats_zero_filled_at_4x(tiny_root: Path, one_thread: None) -> None:
    k, target, vmax = _slice(tiny_root, "file_brain_AXT2_000.h5")
    w = k.shape[-1]
    mask = volume_mask(MaskSpec("equispaced", 4), w, "file_brain_AXT2_000.h5", (2, w - 2)).reshape(1, 1, 1, w).float()
    masked = (k * mask[0])[None].repeat(2, 1, 1, 1)
    meta = SliceMeta("file_brain_AXT2_000.h5", (1, 1), target.shape, (2, w - 2), 3, 4, vmax)
    lm = load_model("cs-l1wavelet")
    np_state = np.random.get_state()
    assert lm.info.kind == "builtin" and lm.info.details["config"] == {
        "lamda": 0.01,
        "max_iter": 100,
        "wave_name": "db4",
    }
    out = lm(masked, mask.repeat(2, 1, 1, 1), meta)
    assert out.shape == (2, *target.shape) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(out[0], out[1])  # deterministic
    assert (np.random.get_state()[1] == np_state[1]).all()  # the global RNG is untouched
    zf = center_crop(rss(ifft2c(masked[:1])), target.shape)[0].numpy()
    assert ssim(target[None], out[:1].numpy(), vmax) > ssim(target[None], zf[None], vmax) + 0.05


def test_runs_through_the_evaluator(tiny_root: Path, tmp_path: Path, one_thread: None) -> None:
    task = parse_task(
        {
            "version": 1,
            "source": {"filter": {"anatomy": "knee"}},
            "target": {"filter": {"anatomy": "brain"}},
            "mask": {"type": "equispaced", "acceleration": 4},
            "splits": {"test_fraction": 0.5},
            "metrics": ["ssim"],
        },
        "tiny-anatomy",
    )
    r = evaluate("cs-l1wavelet", task, data=tiny_root, run_dir=tmp_path / "run", options=EvalOptions(limit=1))
    assert (r.slices["status"] == "ok").all() and r.slices.groupby("split")["file"].nunique().tolist() == [1, 1]
    assert r.config.model.details["config"]["lamda"] == 0.01


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="lamda"):
        L1WaveletCS(lamda=0)
    with pytest.raises(ValueError, match="max_iter"):
        L1WaveletCS(max_iter=0)
