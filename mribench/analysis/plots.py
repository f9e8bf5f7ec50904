"""Figures of the robustness analyses (matplotlib, Agg canvas, PNG + SVG).

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot, no global backend or
state change in the caller's process). Every function writes ``<out>.png`` and ``<out>.svg``
(parent folders are created; SVGs carry no date and fixed element ids so reruns are byte-stable) and returns both paths.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats as sps

from mribench.analysis._checks import AnalysisInputError, as_1d, same_length
from mribench.analysis.effective_robustness import LinearTrend, fit_linear_trend
from mribench.analysis.similarity import SimilarityResult


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, out: str | Path, dpi: int = 150) -> tuple[Path, Path]:
    """Write ``fig`` as ``<out>.png`` and ``<out>.svg``.

    Args:
        fig: the figure.
        out: output path without suffix (a suffix, if any, is replaced).
        dpi: PNG resolution.

    Returns:
        ``(png_path, svg_path)``.
    """
    stem = Path(out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, dpi=dpi, metadata={"Software": None})
    with matplotlib.rc_context({"svg.hashsalt": "mribench"}):  # stable element ids
        fig.savefig(svg, metadata={"Date": None})
    return png, svg


def plot_effective_robustness(
    id_ref: Sequence[float] | np.ndarray,
    ood_ref: Sequence[float] | np.ndarray,
    out: str | Path,
    models: Mapping[str, tuple[float, float]] | None = None,
    trend: LinearTrend | None = None,
    alpha: float = 0.05,
    metric: str = "SSIM",
    title: str | None = None,
) -> tuple[Path, Path]:
    """Scatter of reference runs (ID vs OOD) with the fitted trend, its confidence band, y = x, and models.

    Args:
        id_ref: (R,) ID metric of the reference runs.
        ood_ref: (R,) OOD metric of the reference runs.
        out: output path without suffix.
        models: ``{name: (id, ood)}`` of models to highlight (labelled with their effective robustness).
        trend: fit to draw; default a linear fit of the reference runs.
        alpha: miscoverage level of the confidence band.
        metric: metric name for the axis labels.
        title: figure title.

    Returns:
        ``(png_path, svg_path)``.
    """
    x, y = as_1d("id_ref", id_ref), as_1d("ood_ref", ood_ref)
    same_length(id_ref=x, ood_ref=y)
    fit = trend if trend is not None else fit_linear_trend(x, y)
    pts_x = np.concatenate([x, [v[0] for v in (models or {}).values()]])
    pts_y = np.concatenate([y, [v[1] for v in (models or {}).values()]])
    pad = 0.05 * max(float(np.ptp(pts_x)), 1e-6)
    lo, hi = float(pts_x.min() - pad), float(pts_x.max() + pad)
    if fit.scale == "logit":
        lo, hi = max(lo, 1e-6), min(hi, 1 - 1e-6)
    grid = np.linspace(lo, hi, 200)
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    band_lo, band_hi = fit.band(grid, alpha)
    if np.isfinite(band_lo).all():
        ax.fill_between(
            grid, band_lo, band_hi, color="C0", alpha=0.2, lw=0, label=f"{100 * (1 - alpha):.0f}% CI of fit"
        )
    ax.plot(grid, fit.predict(grid), color="C0", label=f"fit ({fit.scale}): a={fit.slope:.3g}, b={fit.intercept:.3g}")
    both = np.concatenate([pts_x, pts_y])
    diag = np.linspace(float(both.min()), float(both.max()), 2)
    ax.plot(diag, diag, ls=":", color="grey", lw=1, label="y = x")
    if len(x):
        ax.scatter(x, y, color="C0", s=20, zorder=3, label=f"reference runs ({len(x)})")
    for i, (name, (mx, my)) in enumerate((models or {}).items()):
        er = my - float(fit.predict([mx])[0])
        ax.scatter([mx], [my], marker="*", s=120, color=f"C{(i + 1) % 10}", zorder=4, label=f"{name} (ER {er:+.4f})")
    ax.set_xlabel(f"{metric} in distribution")
    ax.set_ylabel(f"{metric} out of distribution")
    ax.set_title(title or "Effective robustness")
    # below the axes, never over a point
    fig.legend(loc="outside lower center", fontsize=7, ncols=2, frameon=False)
    return save_figure(fig, out)


def plot_epoch_curves(
    epochs: Sequence[int] | np.ndarray,
    id_scores: Sequence[float] | np.ndarray,
    ood_scores: Sequence[float] | np.ndarray,
    out: str | Path,
    metric: str = "SSIM",
    stop_epoch: int | None = None,
    title: str | None = None,
) -> tuple[Path, Path]:
    """ID and OOD metric versus training epoch (distributional overfitting, early stopping).

    Args:
        epochs: (E,) epoch numbers.
        id_scores: (E,) ID metric per epoch.
        ood_scores: (E,) OOD metric per epoch.
        out: output path without suffix.
        metric: metric name.
        stop_epoch: epoch chosen by early stopping (vertical line), if any.
        title: figure title.

    Returns:
        ``(png_path, svg_path)``.
    """
    e, i, o = as_1d("epochs", epochs), as_1d("id_scores", id_scores), as_1d("ood_scores", ood_scores)
    same_length(epochs=e, id_scores=i, ood_scores=o)
    fig = _figure(5.5, 4.0)
    ax = fig.add_subplot()
    ax.plot(e, i, marker="o", ms=3, label="in distribution")
    ax.plot(e, o, marker="s", ms=3, label="out of distribution")
    if stop_epoch is not None:
        ax.axvline(stop_epoch, color="grey", ls="--", lw=1, label=f"early stop (epoch {stop_epoch})")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} over training")
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def plot_similarity_histograms(
    histograms: Mapping[str, SimilarityResult | tuple[np.ndarray, np.ndarray]],
    out: str | Path,
    density: bool = True,
    title: str | None = None,
) -> tuple[Path, Path]:
    """Overlaid nearest-neighbour similarity histograms (one per train/test pairing).

    Args:
        histograms: ``{label: SimilarityResult or (counts (K,), edges (K+1,))}``.
        out: output path without suffix.
        density: normalise each histogram to unit area.
        title: figure title.

    Returns:
        ``(png_path, svg_path)``.
    """
    if not histograms:
        raise AnalysisInputError("expected at least one histogram, got none")
    fig = _figure(5.5, 4.0)
    ax = fig.add_subplot()
    for label, h in histograms.items():
        counts, edges = (h.counts, h.edges) if isinstance(h, SimilarityResult) else h
        counts, edges = np.asarray(counts, float), np.asarray(edges, float)
        if edges.shape != (len(counts) + 1,):
            raise AnalysisInputError(f"expected edges of shape ({len(counts) + 1},), got {edges.shape} for {label!r}")
        total = (counts * np.diff(edges)).sum()
        heights = counts / total if density and total > 0 else counts
        mean = f" (mean {h.mean:.3f})" if isinstance(h, SimilarityResult) else ""
        ax.stairs(heights, edges, fill=True, alpha=0.35, label=f"{label}{mean}")
        ax.stairs(heights, edges)
    ax.set_xlabel("max cosine similarity to training patches")
    ax.set_ylabel("density" if density else "patches")
    ax.set_title(title or "Nearest-neighbour similarity")
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) < 3:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r, p = sps.pearsonr(x, y)
    return float(r), float(p)


def plot_similarity_vs_performance(
    similarity: Sequence[float] | np.ndarray,
    performance: Sequence[float] | np.ndarray,
    out: str | Path,
    labels: Sequence[str] | None = None,
    metric: str = "SSIM",
    title: str | None = None,
) -> tuple[Path, Path]:
    """Scatter of similarity vs performance with a least-squares line and Pearson r in the title.

    Args:
        similarity: (K,) mean NN similarity per point (dataset pairing, slice, ...).
        performance: (K,) metric per point.
        out: output path without suffix.
        labels: (K,) point annotations.
        metric: metric name.
        title: title prefix.

    Returns:
        ``(png_path, svg_path)``.
    """
    s, p = as_1d("similarity", similarity), as_1d("performance", performance)
    same_length(similarity=s, performance=p)
    if labels is not None:
        same_length(similarity=s, labels=list(labels))
    ok = np.isfinite(s) & np.isfinite(p)
    r, pval = _pearson(s[ok], p[ok])
    fig = _figure(5.0, 4.0)
    ax = fig.add_subplot()
    ax.scatter(s, p, s=18)
    if ok.sum() >= 2 and np.ptp(s[ok]) > 0:
        a, b = np.polyfit(s[ok], p[ok], 1)
        g = np.linspace(s[ok].min(), s[ok].max(), 2)
        ax.plot(g, a * g + b, color="C1", lw=1)
    for lab, xi, yi in zip(labels or [], s, p, strict=False):
        ax.annotate(str(lab), (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("mean nearest-neighbour similarity")
    ax.set_ylabel(metric)
    ax.set_title(f"{title or 'Similarity vs performance'} (Pearson r = {r:.3f}, p = {pval:.2g})", fontsize=9)
    return save_figure(fig, out)


def plot_robustness_curves(
    curves: Mapping[str, Mapping[float, float]],
    out: str | Path,
    xlabel: str = "acceleration",
    metric: str = "SSIM",
    log_x: bool = False,
    title: str | None = None,
) -> tuple[Path, Path]:
    """Metric versus a shift axis, one line per model.

    Args:
        curves: ``{model: {x: mean metric}}``.
        out: output path without suffix.
        xlabel: name of the axis (acceleration, coils, SNR [dB]).
        metric: metric name.
        log_x: logarithmic x axis.
        title: figure title.

    Returns:
        ``(png_path, svg_path)``.
    """
    if not curves:
        raise AnalysisInputError("expected at least one curve, got none")
    fig = _figure(5.5, 4.0)
    ax = fig.add_subplot()
    for name, curve in curves.items():
        xs = sorted(curve, key=float)
        ax.plot([float(x) for x in xs], [float(curve[x]) for x in xs], marker="o", ms=4, label=name)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric)
    ax.set_title(title or f"{metric} vs {xlabel}")
    ax.legend(fontsize=8)
    return save_figure(fig, out)


def _as_stack(name: str, images: Any) -> np.ndarray:
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    arr = np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or np.iscomplexobj(arr):
        raise AnalysisInputError(f"expected real {name} of shape (S, H, W), got shape {arr.shape} ({arr.dtype})")
    return arr.astype(np.float64)


def _short(text: str, width: int = 46) -> str:
    """``text`` cut in the middle with an ellipsis when longer than ``width`` characters."""
    if len(text) <= width:
        return text
    keep = width - 1
    return text[: keep - keep // 2] + "…" + text[len(text) - keep // 2 :]


def error_scales(targets: Any, recons_by_model: Sequence[Any], percentile: float = 99.5) -> np.ndarray:
    """One error colour scale per slice, shared by every model's panel of that slice.

    Args:
        targets: (S, H, W) target images.
        recons_by_model: per model, (S, H, W) reconstructions of the same slices.
        percentile: the scale is the largest, over the models, of this percentile of
            ``|target - recon|`` (a single hot pixel does not wash out the rest).

    Returns:
        (S,) upper ends of the error colour scale.
    """
    t = _as_stack("targets", targets)
    scales = np.zeros(len(t))
    for r in recons_by_model:
        err = np.abs(t - _as_stack("recons", r))
        scales = np.maximum(scales, np.percentile(err.reshape(len(t), -1), percentile, axis=1))
    return np.where(scales > 0, scales, 1.0)


def plot_reconstruction_panel(
    targets: Any,
    recons: Any,
    out: str | Path,
    scores: Sequence[float] | None = None,
    score_name: str = "SSIM",
    titles: Sequence[str] | None = None,
    error_max: Sequence[float] | np.ndarray | None = None,
    suptitle: str | None = None,
) -> tuple[Path, Path]:
    """Rows of target | reconstruction | absolute error map for chosen slices.

    Args:
        targets: (S, H, W) (or (H, W)) target images, array or tensor.
        recons: reconstructions of the same shape.
        out: output path without suffix.
        scores: (S,) per-slice score shown in the reconstruction's title (e.g. SSIM from the result
            store, computed with the volume max as data range).
        score_name: name of the score.
        titles: (S,) row labels (e.g. ``"file1000.h5 slice 12"``; long names are shortened in the middle).
        error_max: (S,) upper end of each row's error colour scale; pass :func:`error_scales` of
            every model's reconstructions so that the models' panels share one scale per slice
            (default: each row's own maximum).
        suptitle: figure title (e.g. the model's name).

    Returns:
        ``(png_path, svg_path)``.
    """
    t, r = _as_stack("targets", targets), _as_stack("recons", recons)
    if t.shape != r.shape:
        raise AnalysisInputError(f"expected recons of the targets' shape {t.shape}, got {r.shape}")
    n = len(t)
    if scores is not None and len(scores) != n:
        raise AnalysisInputError(f"expected {n} scores, got {len(scores)}")
    if titles is not None and len(titles) != n:
        raise AnalysisInputError(f"expected {n} titles, got {len(titles)}")
    if error_max is not None and len(error_max) != n:
        raise AnalysisInputError(f"expected {n} error scales, got {len(error_max)}")
    fig = _figure(9.0, 3.0 * n + (0.4 if suptitle else 0.0))
    axes = fig.subplots(n, 3, squeeze=False)
    for i in range(n):
        vmax = float(t[i].max()) or 1.0
        err = np.abs(t[i] - r[i])
        emax = float(error_max[i]) if error_max is not None else float(err.max()) or 1.0
        axes[i, 0].imshow(t[i], cmap="gray", vmin=0, vmax=vmax)
        label = f"\n{_short(titles[i])}" if titles is not None else ""
        axes[i, 0].set_title(f"target{label}", fontsize=8)
        axes[i, 1].imshow(r[i], cmap="gray", vmin=0, vmax=vmax)
        score = f"\n{score_name} {float(scores[i]):.4f}" if scores is not None else ""
        axes[i, 1].set_title(f"reconstruction{score}", fontsize=8)
        im = axes[i, 2].imshow(err, cmap="magma", vmin=0, vmax=emax)
        shared = "\n(scale shared across models)" if error_max is not None else ""
        axes[i, 2].set_title(f"|target − reconstruction|{shared}", fontsize=8)
        cb = fig.colorbar(im, ax=axes[i, 2], fraction=0.046, extend="max" if err.max() > emax else "neither")
        cb.ax.tick_params(labelsize=7)
        for ax in axes[i]:
            ax.set_axis_off()
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return save_figure(fig, out)
