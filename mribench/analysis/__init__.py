"""Robustness analyses: bootstrap CIs over volumes, distribution-shift gaps, effective robustness,
CLIP nearest-neighbour similarity, robustness curves and figures.

Modules (one job each): :mod:`.stats` (every mean, CI and paired comparison; the rule for
non-finite values), :mod:`.gap` (performance gap, fraction closed), :mod:`.effective_robustness`
(ID -> OOD trend fits), :mod:`.patches` (foreground patch sampling), :mod:`.embedding_cache` (disk
cache of embeddings), :mod:`.similarity` (nearest-neighbour similarity), :mod:`.curves` (AUC, SNR
noise), :mod:`.plots` (figures; imported lazily because it pulls in matplotlib).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

# Names are imported on first use: scipy.stats and matplotlib cost seconds to import, and the
# evaluator only needs the bootstrap.
_EXPORTS: dict[str, str] = {
    "AnalysisInputError": "_checks",
    "add_noise": "curves",
    "robustness_auc": "curves",
    "EffectiveRobustness": "effective_robustness",
    "LinearTrend": "effective_robustness",
    "bootstrap_trends": "effective_robustness",
    "effective_robustness": "effective_robustness",
    "effective_robustness_ci": "effective_robustness",
    "effective_robustness_volume_ci": "effective_robustness",
    "fit_linear_trend": "effective_robustness",
    "EmbeddingCache": "embedding_cache",
    "FractionClosedResult": "gap",
    "d22_fraction_closed": "gap",
    "d22_fraction_closed_ci": "gap",
    "GapResult": "gap",
    "fraction_gap_closed": "gap",
    "fraction_gap_closed_ci": "gap",
    "fraction_gap_closed_from_metrics": "gap",
    "performance_gap": "gap",
    "performance_gap_ci": "gap",
    "BackgroundRule": "patches",
    "PatchRecord": "patches",
    "PatchSpec": "patches",
    "extract_patches": "patches",
    "EmbeddedPatches": "similarity",
    "SimilarityResult": "similarity",
    "SliceItem": "similarity",
    "clip_similarity": "similarity",
    "embed_items": "similarity",
    "nearest_neighbour_similarity": "similarity",
    "CI": "stats",
    "FiniteSplit": "stats",
    "PairedDifference": "stats",
    "bootstrap_mean_ci": "stats",
    "bootstrap_t_interval": "stats",
    "cluster_bootstrap_means": "stats",
    "finite_split": "stats",
    "paired_difference": "stats",
    "summarize_columns": "stats",
    "error_scales": "plots",
    "plot_effective_robustness": "plots",
    "plot_epoch_curves": "plots",
    "plot_reconstruction_panel": "plots",
    "plot_robustness_curves": "plots",
    "plot_similarity_histograms": "plots",
    "plot_similarity_vs_performance": "plots",
    "save_figure": "plots",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(f"mribench.analysis.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mribench.analysis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = sorted(_EXPORTS)

# The function shares its module's name; bind it eagerly so the module never shadows it.
from mribench.analysis.effective_robustness import effective_robustness  # noqa: E402, F401
