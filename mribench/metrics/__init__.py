"""Metrics: pure per-slice functions, perceptual metrics with verified weights, and the registry.

Every function takes ``target`` and ``recon`` as (H, W) or (B, H, W) tensors and returns one value
per slice, shape (B,). See :mod:`mribench.metrics.registry` for the pinned definitions the
evaluator uses.
"""

from __future__ import annotations

from mribench.metrics.artifact import laplacian, laplacian_variance
from mribench.metrics.normalize import normalize_output
from mribench.metrics.perceptual import dists, lpips, percentile_normalize
from mribench.metrics.pixel import mse, nmse, psnr
from mribench.metrics.region import BoxWarning, region_ssim, region_ssim_boxes, region_ssim_large, region_ssim_small
from mribench.metrics.registry import (
    METRICS,
    MetricSpec,
    Tolerance,
    explain,
    get_metric,
    list_metrics,
    profile_ids,
    tolerance_of,
)
from mribench.metrics.structural import ssim
from mribench.metrics.weights import WeightRecord, fetch_weights, weights_status

__all__ = [
    "METRICS",
    "BoxWarning",
    "MetricSpec",
    "Tolerance",
    "WeightRecord",
    "dists",
    "explain",
    "fetch_weights",
    "get_metric",
    "laplacian",
    "laplacian_variance",
    "list_metrics",
    "lpips",
    "mse",
    "nmse",
    "normalize_output",
    "percentile_normalize",
    "profile_ids",
    "psnr",
    "region_ssim",
    "region_ssim_boxes",
    "region_ssim_large",
    "region_ssim_small",
    "ssim",
    "tolerance_of",
    "weights_status",
]
