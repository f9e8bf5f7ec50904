"""The evaluator on a CUDA device (skipped without one; ``benchmarks/gpu.sh`` runs ``-m cuda``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mribench import evaluate
from mribench.api.model import ModelInfo
from mribench.models.builtin import UnetRecon
from mribench.models.loaded import LoadedModel
from mribench.tasks import parse_task

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

TASK = {
    "version": 1,
    "source": {"filter": {"anatomy": "knee"}},
    "target": {"filter": {"anatomy": "brain"}},
    "mask": {"type": "equispaced", "acceleration": 4},
    "splits": {"test_fraction": 0.5},
    "metrics": ["ssim", "psnr"],
}


def test_evaluation_on_cuda_matches_the_cpu_and_bf16_stays_close(tiny_root: Path, tmp_path: Path) -> None:
    """Random weights: the scores only compare devices and precisions, they are no result."""
    task = parse_task(dict(TASK), "tiny-cuda")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = UnetRecon(chans=4, num_pool_layers=2).eval()
    lm = LoadedModel(net, ModelInfo("unet-random", "builtin", "", {}))
    runs = {
        (dev, prec): evaluate(
            lm, task, data_root=tiny_root, run_dir=tmp_path / f"{dev}-{prec}", device=dev, precision=prec
        )
        for dev, prec in (("cpu", "fp32"), ("cuda", "fp32"), ("cuda", "bf16"))
    }
    ssim = {k: r.slices.sort_values(["split", "file", "slice"])["ssim"].to_numpy() for k, r in runs.items()}
    assert all((r.slices["status"] == "ok").all() for r in runs.values())
    assert abs(ssim[("cuda", "fp32")] - ssim[("cpu", "fp32")]).max() < 1e-4
    assert abs(ssim[("cuda", "bf16")] - ssim[("cpu", "fp32")]).max() < 0.05
