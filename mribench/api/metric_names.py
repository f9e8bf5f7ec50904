"""The names of the metrics a task may list, known without importing the metrics (no torch).

Tasks sit below the metrics layer, yet a task naming an unknown metric must fail when it is
loaded, not half-way through an evaluation. The built-in names are listed here (a test checks
that they equal the metric registry's); plugins are found by their ``mribench.metrics`` entry
points, whose names are read without importing them.
"""

from __future__ import annotations

from importlib import metadata

BUILTIN_METRICS: tuple[str, ...] = (
    "dists",
    "laplacian_variance",
    "lpips_alex",
    "lpips_vgg",
    "nmse",
    "psnr",
    "region_ssim",
    "region_ssim_large",
    "region_ssim_small",
    "ssim",
    "ssim_d22",
)
"""Names of the built-in metrics (``mribench metrics list``)."""


def known_metric_names() -> list[str]:
    """Built-in metric names plus those of installed ``mribench.metrics`` entry points, sorted."""
    plugins = {ep.name for ep in metadata.entry_points(group="mribench.metrics")}
    return sorted({*BUILTIN_METRICS, *plugins})


__all__ = ["BUILTIN_METRICS", "known_metric_names"]
