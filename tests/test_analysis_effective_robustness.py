"""Effective robustness fits against numpy.polyfit and scipy.stats.linregress."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, logit

from mribench.analysis import (
    bootstrap_trends,
    effective_robustness,
    effective_robustness_ci,
    fit_linear_trend,
)


def _reference(seed: int = 0, n: int = 12):
    rng = np.random.default_rng(seed)
    id_ = rng.uniform(0.80, 0.93, n)
    ood = 0.9 * id_ - 0.02 + rng.normal(0, 0.004, n)
    return id_, ood


def test_linear_fit_matches_linregress_and_polyfit() -> None:
    x, y = _reference()
    trend = fit_linear_trend(x, y)
    ref = stats.linregress(x, y)
    assert trend.slope == pytest.approx(ref.slope, rel=1e-12)
    assert trend.intercept == pytest.approx(ref.intercept, rel=1e-12)
    assert trend.rvalue == pytest.approx(ref.rvalue, rel=1e-12)
    assert trend.slope_stderr == pytest.approx(ref.stderr, rel=1e-10)
    assert trend.intercept_stderr == pytest.approx(ref.intercept_stderr, rel=1e-10)
    np.testing.assert_allclose([trend.slope, trend.intercept], np.polyfit(x, y, 1), rtol=1e-10)


def test_logit_fit_matches_linregress_on_logits_and_back_transforms() -> None:
    x, y = _reference(1)
    trend = fit_linear_trend(x, y, scale="logit")
    ref = stats.linregress(logit(x), logit(y))
    assert (trend.slope, trend.intercept) == pytest.approx((ref.slope, ref.intercept), rel=1e-12)
    er = effective_robustness(trend, [0.9], [0.85])
    assert er[0] == pytest.approx(0.85 - expit(ref.slope * logit(0.9) + ref.intercept))


def test_points_on_the_line_have_zero_effective_robustness() -> None:
    x = np.array([0.8, 0.85, 0.9, 0.95])
    trend = fit_linear_trend(x, 0.5 * x + 0.3)
    np.testing.assert_allclose(effective_robustness(trend, [0.82, 0.91], [0.71, 0.755]), [0.0, 0.0], atol=1e-12)
    assert effective_robustness(trend, 0.9, 0.8)[0] == pytest.approx(0.8 - 0.75)


def test_analytic_band_matches_the_ols_formula() -> None:
    x, y = _reference(2)
    trend = fit_linear_trend(x, y)
    grid = np.array([0.8, 0.86, 0.95])
    lo, hi = trend.band(grid, alpha=0.1)
    n = len(x)
    s = np.sqrt(((y - (trend.slope * x + trend.intercept)) ** 2).sum() / (n - 2))
    half = stats.t.ppf(0.95, n - 2) * s * np.sqrt(1 / n + (grid - x.mean()) ** 2 / ((x - x.mean()) ** 2).sum())
    np.testing.assert_allclose(hi - lo, 2 * half, rtol=1e-10)
    plo, phi = trend.band(grid, alpha=0.1, prediction=True)
    assert ((phi - plo) > (hi - lo)).all()
    assert np.isnan(fit_linear_trend([0.1, 0.2], [0.3, 0.4]).band([0.15])[0]).all()  # no residual dof


def test_effective_robustness_cis_bracket_the_estimate() -> None:
    x, y = _reference(3)
    models_id, models_ood = np.array([0.88, 0.9]), np.array([0.79, 0.76])
    boot = effective_robustness_ci(x, y, models_id, models_ood, n_boot=1000, seed=0)
    ana = effective_robustness_ci(x, y, models_id, models_ood, method="analytic")
    np.testing.assert_allclose(boot.er, ana.er)
    assert (boot.low < boot.er).all() and (boot.er < boot.high).all()
    assert (ana.low < ana.er).all() and (ana.er < ana.high).all()
    # both describe the same fit uncertainty: widths agree within a factor of 2
    ratio = (boot.high - boot.low) / (ana.high - ana.low)
    assert ((ratio > 0.5) & (ratio < 2)).all()
    again = effective_robustness_ci(x, y, models_id, models_ood, n_boot=1000, seed=0)
    np.testing.assert_array_equal(again.low, boot.low)
    logit_ci = effective_robustness_ci(x, y, models_id, models_ood, scale="logit", n_boot=500)
    assert (logit_ci.low < logit_ci.er).all() and (logit_ci.er < logit_ci.high).all()


def test_bootstrap_trends_agree_with_per_draw_refits() -> None:
    x, y = _reference(4, n=8)
    lines = bootstrap_trends(x, y, n_boot=20, seed=7)
    idx = np.random.default_rng(7).integers(0, 8, size=(20, 8))
    for row, ii in zip(lines, idx, strict=True):
        if np.ptp(x[ii]) > 0:
            np.testing.assert_allclose(row, np.polyfit(x[ii], y[ii], 1), rtol=1e-8)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: fit_linear_trend([0.5], [0.4]), "at least 2"),
        (lambda: fit_linear_trend([0.5, 0.5, 0.5], [0.4, 0.3, 0.2]), "different ID"),
        (lambda: fit_linear_trend([0.5, 1.0], [0.4, 0.3], scale="logit"), r"\(0, 1\)"),
        (lambda: fit_linear_trend([0.5, 0.6], [0.4, 0.3], scale="log"), "scale"),
        (lambda: fit_linear_trend([0.5, np.nan], [0.4, 0.3]), "finite"),
        (lambda: effective_robustness_ci([0.5, 0.6], [0.4, 0.3], [0.5], [0.4], method="x"), "method"),
    ],
)
def test_bad_input(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def _per_slice_runs(seed: int = 5, n_ref: int = 3, n_models: int = 2, vol_p: int = 10, vol_q: int = 12, per: int = 4):
    """Per-slice SSIM-like scores (runs, slices) on test_P and test_Q with volume effects."""
    rng = np.random.default_rng(seed)
    gp, gq = np.repeat(np.arange(vol_p), per), np.repeat(np.arange(vol_q), per)
    vp, vq = np.repeat(rng.normal(0, 0.02, vol_p), per), np.repeat(rng.normal(0, 0.02, vol_q), per)
    quality = np.linspace(0.80, 0.90, n_ref + n_models)
    ids = np.stack([q + vp + rng.normal(0, 0.005, len(gp)) for q in quality])
    oods = np.stack([0.9 * q - 0.05 + vq + rng.normal(0, 0.005, len(gq)) for q in quality])
    oods[n_ref:] += 0.01  # the evaluated models are more robust than the reference line
    return ids[:n_ref], oods[:n_ref], ids[n_ref:], oods[n_ref:], gp, gq


def test_volume_ci_point_estimate_is_the_fit_over_reference_means() -> None:
    from mribench.analysis import effective_robustness_volume_ci

    rid, rood, mid, mood, gp, gq = _per_slice_runs()
    r = effective_robustness_volume_ci(rid, rood, mid, mood, gp, gq, n_boot=400)
    trend = fit_linear_trend(rid.mean(axis=1), rood.mean(axis=1))
    np.testing.assert_allclose(r.er, effective_robustness(trend, mid.mean(axis=1), mood.mean(axis=1)), rtol=1e-12)
    assert r.method == "volumes" and "volumes" in r.resampled
    assert (r.low < r.er).all() and (r.er < r.high).all()
    assert (r.high < 0.1).all() and (r.low > -0.1).all()  # 3 reference runs, yet no bounds near 1 (SSIM units)
    logit = effective_robustness_volume_ci(rid, rood, mid, mood, gp, gq, scale="logit", n_boot=200)
    assert logit.trend.scale == "logit" and (logit.low < logit.er).all() and (logit.er < logit.high).all()


def test_volume_ci_draws_equal_per_draw_refits() -> None:
    from mribench.analysis import effective_robustness_volume_ci
    from mribench.analysis.stats import cluster_bootstrap_means, percentile_interval

    rid, rood, mid, mood, gp, gq = _per_slice_runs(6)
    r = effective_robustness_volume_ci(rid, rood, mid, mood, gp, gq, n_boot=60, seed=3, alpha=0.2)
    dp = cluster_bootstrap_means(np.vstack([rid, mid]).T, gp, 60, 3)
    dq = cluster_bootstrap_means(np.vstack([rood, mood]).T, gq, 60, 4)
    ers = []
    for bp, bq in zip(dp, dq, strict=True):
        t = fit_linear_trend(bp[:3], bq[:3])
        ers.append(effective_robustness(t, bp[3:], bq[3:]))
    ers_arr = np.array(ers)
    for m in range(2):
        np.testing.assert_allclose((r.low[m], r.high[m]), percentile_interval(ers_arr[:, m], 0.2), rtol=1e-10)


def test_volume_ci_refuses_without_reference_runs() -> None:
    from mribench.analysis import effective_robustness_volume_ci

    rid, rood, mid, mood, gp, gq = _per_slice_runs()
    with pytest.raises(ValueError, match=r"at least 2 reference runs \(models trained on the reference distribution"):
        effective_robustness_volume_ci(rid[:1], rood[:1], mid, mood, gp, gq)
    with pytest.raises(ValueError, match="at least 2 reference runs"):
        effective_robustness_volume_ci(np.empty((0, len(gp))), np.empty((0, len(gq))), mid, mood, gp, gq)
    with pytest.raises(ValueError, match="slices per run"):
        effective_robustness_volume_ci(rid[:, :-1], rood, mid, mood, gp, gq)
