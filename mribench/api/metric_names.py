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


METRIC_ALIASES: dict[str, str] = {"lpips": "lpips_vgg"}
"""Short names accepted wherever a user names metrics (``--metrics``, ``check``, ``metrics explain``,
``weights fetch``), each standing for one metric: ``lpips`` is LPIPS with the VGG backbone, the one
Lin & Heckel report. Results record the metric's own name; task definitions use the own names."""

ALIAS_REASONS: dict[str, str] = {"lpips": "LPIPS with the VGG backbone, the papers' default"}
"""Why each alias stands for its metric (shown by ``mribench metrics list`` and ``explain``)."""


def canonical_metric(name: str) -> str:
    """The metric a name stands for: an alias's metric, else the name itself."""
    return METRIC_ALIASES.get(name, name)


def known_metric_names() -> list[str]:
    """Built-in metric names plus those of installed ``mribench.metrics`` entry points, sorted."""
    plugins = {ep.name for ep in metadata.entry_points(group="mribench.metrics")}
    return sorted({*BUILTIN_METRICS, *plugins})


__all__ = ["ALIAS_REASONS", "BUILTIN_METRICS", "METRIC_ALIASES", "canonical_metric", "known_metric_names"]
