"""Figures are written as non-empty PNG and SVG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mribench.analysis import (
    SimilarityResult,
    fit_linear_trend,
    plot_effective_robustness,
    plot_epoch_curves,
    plot_reconstruction_panel,
    plot_robustness_curves,
    plot_similarity_histograms,
    plot_similarity_vs_performance,
)


def _check(paths: tuple[Path, Path]) -> None:
    png, svg = paths
    assert png.suffix == ".png" and svg.suffix == ".svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert b"<svg" in svg.read_bytes()[:2000]


def test_effective_robustness_plot(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.8, 0.93, 10)
    y = 0.9 * x - 0.02 + rng.normal(0, 0.004, 10)
    _check(plot_effective_robustness(x, y, tmp_path / "er" / "linear", models={"TTT": (0.9, 0.82)}))
    _check(plot_effective_robustness(x, y, tmp_path / "logit", trend=fit_linear_trend(x, y, "logit")))


def test_epoch_and_curve_plots(tmp_path: Path) -> None:
    e = np.arange(1, 11)
    _check(plot_epoch_curves(e, 0.8 + 0.01 * np.log(e), 0.7 + 0.005 * e - 0.0006 * e**2, tmp_path / "ep", stop_epoch=6))
    curves = {"unet": {2: 0.95, 4: 0.9, 8: 0.8}, "varnet": {2: 0.96, 4: 0.93, 8: 0.86}}
    _check(plot_robustness_curves(curves, tmp_path / "acc", log_x=True))


def test_similarity_plots(tmp_path: Path) -> None:
    edges = np.linspace(0, 1, 21)
    res = SimilarityResult(0.9, np.arange(20), edges, np.full(5, 0.9), [], 10, 5, 0)
    _check(plot_similarity_histograms({"knee->knee": res, "knee->brain": (np.arange(20)[::-1], edges)}, tmp_path / "h"))
    _check(
        plot_similarity_vs_performance(
            [0.8, 0.85, 0.9, 0.95], [0.7, 0.75, 0.82, 0.9], tmp_path / "s", labels=["a", "b", "c", "d"]
        )
    )


def test_reconstruction_panel(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 1, (2, 32, 32))
    _check(
        plot_reconstruction_panel(
            t,
            t + rng.normal(0, 0.05, t.shape),
            tmp_path / "panel",
            scores=[0.91, 0.88],
            titles=["f1.h5 #3", "f2.h5 #7"],
        )
    )
    with pytest.raises(ValueError, match="shape"):
        plot_reconstruction_panel(t, t[:1], tmp_path / "bad")


def test_svg_is_reproducible(tmp_path: Path) -> None:
    a = plot_robustness_curves({"m": {1: 0.5, 2: 0.6}}, tmp_path / "a")[1].read_bytes()
    b = plot_robustness_curves({"m": {1: 0.5, 2: 0.6}}, tmp_path / "b")[1].read_bytes()
    assert a == b
