"""Effective robustness: distance of a model above the ID -> OOD trend of reference models.

Definition (Taori et al. 2020; Lin & Heckel 2024 = LH24): the reference line is fitted to models
trained on the reference distribution P_best (several architectures, sizes, early-stopping points);
x = a model's performance on **P_best's test split**, y = its performance on the target distribution
Q. The line ``y = a * x + b`` is fitted by ordinary least squares over the reference runs, and a
model's

* effective robustness ``ER = y - (a * x + b)`` (its height above the line).

Without reference runs there is no line: the functions here refuse (:class:`AnalysisInputError`
naming what is missing) rather than fit through whatever runs are at hand.

The ``"logit"`` scale fits the line on ``logit(x), logit(y)`` (for metrics in (0, 1) such as SSIM,
where trends are closer to linear) and back-transforms the prediction, so
``ER = y - sigmoid(a * logit(x) + b)`` is always in metric units. LH24 fit on the linear scale.

Confidence intervals, each saying what it resamples:

* :func:`effective_robustness_volume_ci` (per-slice scores): a cluster bootstrap over the **volumes**
  of P_best's test split and of Q's test split (one draw shared by every run, so runs stay paired);
  every run's means are recomputed, the line is refitted on the reference runs and each model's ER
  recomputed. This is the evaluation noise of a finite test set; the reference runs themselves are
  kept fixed.
* :func:`effective_robustness_ci` (one mean per run): ``"analytic"`` is the ``1 - alpha`` OLS
  confidence band of the mean line (``t_{n-2} * s * sqrt(1/n + (x - mean x)^2 / Sxx)``, the
  formulas behind ``scipy.stats.linregress``); ``"bootstrap"`` resamples the **reference runs**
  with replacement and refits. Both describe the uncertainty of the reference trend only, not the
  evaluation noise of the model; with 3-5 reference runs they are wide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mribench.analysis._checks import AnalysisInputError, as_1d, check_alpha, check_positive_int, same_length
from mribench.analysis.stats import cluster_bootstrap_means, percentile_interval

Scale = Literal["linear", "logit"]
_SCALES = ("linear", "logit")


def _check_scale(scale: str) -> None:
    if scale not in _SCALES:
        raise AnalysisInputError(f"expected scale in {_SCALES}, got {scale!r}")


def to_fit_scale(values: np.ndarray, scale: Scale, name: str = "values") -> np.ndarray:
    """Map metric values (N,) to the fitting scale (identity, or logit for values in (0, 1))."""
    _check_scale(scale)
    if scale == "linear":
        return values
    bad = (values <= 0) | (values >= 1) | ~np.isfinite(values)
    if bad.any():
        raise AnalysisInputError(
            f"expected {name} in the open interval (0, 1) for the logit scale, got {values[bad][0]}"
        )
    from scipy.special import logit  # lazily: scipy.special costs ~0.15 s to import

    return np.asarray(logit(values))


def from_fit_scale(values: np.ndarray, scale: Scale) -> np.ndarray:
    """Inverse of :func:`to_fit_scale` (identity, or sigmoid)."""
    _check_scale(scale)
    if scale == "linear":
        return values
    from scipy.special import expit

    return expit(values)


@dataclass(frozen=True)
class LinearTrend:
    """OLS line ``y = slope * x + intercept`` in the fitting scale, with what its CIs need.

    Attributes:
        slope: fitted slope ``a``.
        intercept: fitted intercept ``b``.
        scale: "linear" or "logit" (the scale of x and y in the fit).
        n: number of reference runs.
        x_mean: mean of the (transformed) ID scores.
        sxx: sum of squared deviations of the (transformed) ID scores.
        residual_std: ``s = sqrt(SSE / (n - 2))`` (NaN for n = 2).
        rvalue: Pearson correlation of the (transformed) scores (NaN when OOD is constant).
        slope_stderr: standard error of the slope (NaN for n = 2).
        intercept_stderr: standard error of the intercept (NaN for n = 2).
    """

    slope: float
    intercept: float
    scale: Scale
    n: int
    x_mean: float
    sxx: float
    residual_std: float
    rvalue: float
    slope_stderr: float
    intercept_stderr: float

    def predict(self, id_scores: Sequence[float] | np.ndarray) -> np.ndarray:
        """Predicted OOD metric (M,) for ID metrics (M,), back-transformed to metric units."""
        x = to_fit_scale(as_1d("id_scores", np.atleast_1d(id_scores)), self.scale, "id_scores")
        return from_fit_scale(self.slope * x + self.intercept, self.scale)

    def band(
        self, id_scores: Sequence[float] | np.ndarray, alpha: float = 0.05, prediction: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Analytic ``1 - alpha`` band of the line at the given ID metrics, in metric units.

        Args:
            id_scores: (M,) ID metric values at which to evaluate the band.
            alpha: miscoverage level.
            prediction: False for the confidence band of the mean line; True for the prediction
                band of a new reference run.

        Returns:
            ``(low, high)``, each (M,); NaN when ``n < 3`` (no residual degrees of freedom).
        """
        check_alpha(alpha)
        x = to_fit_scale(as_1d("id_scores", np.atleast_1d(id_scores)), self.scale, "id_scores")
        center = self.slope * x + self.intercept
        if self.n < 3:
            nan = np.full_like(center, np.nan)
            return nan, nan.copy()
        from scipy import stats as sps  # imported here: scipy.stats takes about a second to import

        t = sps.t.ppf(1 - alpha / 2, self.n - 2)
        half = t * self.residual_std * np.sqrt(float(prediction) + 1 / self.n + (x - self.x_mean) ** 2 / self.sxx)
        return from_fit_scale(center - half, self.scale), from_fit_scale(center + half, self.scale)


@dataclass(frozen=True)
class EffectiveRobustness:
    """Effective robustness of M models with confidence intervals.

    Attributes:
        er: (M,) effective robustness ``OOD - predicted OOD`` in metric units.
        low: (M,) lower CI bounds.
        high: (M,) upper CI bounds.
        trend: the reference fit.
        method: "analytic", "bootstrap" (reference runs resampled) or "volumes" (test volumes
            resampled).
        alpha: miscoverage level.
        resampled: what the interval resamples, in words.
    """

    er: np.ndarray
    low: np.ndarray
    high: np.ndarray
    trend: LinearTrend
    method: str
    alpha: float
    resampled: str = ""


_RESAMPLED = {
    "analytic": "nothing (analytic OLS confidence band of the reference line)",
    "bootstrap": "the reference runs (with replacement), refitting the line",
    "volumes": "the volumes of P_best's and Q's test splits (cluster bootstrap), refitting the line",
}


def _check_references(n: int) -> None:
    if n < 2:
        raise AnalysisInputError(
            f"expected scores of at least 2 reference runs (models trained on the reference distribution "
            f"P_best, scored on P_best's test split and on Q), got {n} (hint: effective robustness is "
            "defined only relative to such a reference line)"
        )


def _validated_pairs(id_scores: object, ood_scores: object, scale: Scale) -> tuple[np.ndarray, np.ndarray]:
    _check_scale(scale)
    x, y = as_1d("id_scores", id_scores), as_1d("ood_scores", ood_scores)
    same_length(id_scores=x, ood_scores=y)
    for name, v in (("id_scores", x), ("ood_scores", y)):
        if not np.isfinite(v).all():
            raise AnalysisInputError(f"expected finite {name}, got {v[~np.isfinite(v)][0]}")
    return to_fit_scale(x, scale, "id_scores"), to_fit_scale(y, scale, "ood_scores")


def fit_linear_trend(
    id_scores: Sequence[float] | np.ndarray, ood_scores: Sequence[float] | np.ndarray, scale: Scale = "linear"
) -> LinearTrend:
    """Least-squares fit ``OOD = a * ID + b`` over reference runs (in the chosen scale).

    Args:
        id_scores: (R,) ID metric of each reference run.
        ood_scores: (R,) OOD metric of each reference run.
        scale: "linear", or "logit" to fit ``logit(OOD) = a * logit(ID) + b`` (values in (0, 1)).

    Returns:
        The :class:`LinearTrend`.
    """
    x, y = _validated_pairs(id_scores, ood_scores, scale)
    n = len(x)
    _check_references(n)
    x_mean, y_mean = float(x.mean()), float(y.mean())
    sxx = float(((x - x_mean) ** 2).sum())
    if sxx == 0.0:
        raise AnalysisInputError("expected reference runs with different ID scores, got all equal")
    syy = float(((y - y_mean) ** 2).sum())
    sxy = float(((x - x_mean) * (y - y_mean)).sum())
    slope = sxy / sxx
    intercept = y_mean - slope * x_mean
    nan = float("nan")
    if n > 2:
        sse = float(((y - (slope * x + intercept)) ** 2).sum())
        s = float(np.sqrt(sse / (n - 2)))
        slope_se, intercept_se = s / np.sqrt(sxx), s * np.sqrt(1 / n + x_mean**2 / sxx)
    else:
        s = slope_se = intercept_se = nan
    r = sxy / np.sqrt(sxx * syy) if syy > 0 else nan
    return LinearTrend(
        slope=slope,
        intercept=intercept,
        scale=scale,
        n=n,
        x_mean=x_mean,
        sxx=sxx,
        residual_std=s,
        rvalue=float(np.clip(r, -1.0, 1.0)) if r == r else nan,
        slope_stderr=float(slope_se),
        intercept_stderr=float(intercept_se),
    )


def effective_robustness(
    trend: LinearTrend, id_scores: Sequence[float] | np.ndarray, ood_scores: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Effective robustness ``OOD - trend(ID)`` in metric units.

    Args:
        trend: fit over the reference runs.
        id_scores: (M,) ID metric of each evaluated model (a scalar is treated as M = 1).
        ood_scores: (M,) OOD metric of each evaluated model.

    Returns:
        (M,) effective robustness (positive: more robust than the reference trend predicts).
    """
    x = as_1d("id_scores", np.atleast_1d(id_scores))
    y = as_1d("ood_scores", np.atleast_1d(ood_scores))
    same_length(id_scores=x, ood_scores=y)
    return np.asarray(y - trend.predict(x))


def bootstrap_trends(
    id_scores: Sequence[float] | np.ndarray,
    ood_scores: Sequence[float] | np.ndarray,
    scale: Scale = "linear",
    n_boot: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """Slopes and intercepts of the trend refitted on reference runs resampled with replacement.

    Args:
        id_scores: (R,) ID metric of each reference run.
        ood_scores: (R,) OOD metric of each reference run.
        scale: fitting scale.
        n_boot: number of bootstrap draws B.
        seed: seed of the local generator.

    Returns:
        (B, 2) array of ``(slope, intercept)`` in the fitting scale; rows are NaN for draws whose
        resampled ID scores are all equal (no line defined).
    """
    check_positive_int("n_boot", n_boot)
    x, y = _validated_pairs(id_scores, ood_scores, scale)
    _check_references(len(x))
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))  # (B, R)
    xb, yb = x[idx], y[idx]
    xm, ym = xb.mean(axis=1, keepdims=True), yb.mean(axis=1, keepdims=True)
    sxx = ((xb - xm) ** 2).sum(axis=1)
    sxy = ((xb - xm) * (yb - ym)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(sxx > 0, sxy / sxx, np.nan)
    intercept = ym[:, 0] - slope * xm[:, 0]
    return np.stack([slope, intercept], axis=1)


def effective_robustness_ci(
    id_ref: Sequence[float] | np.ndarray,
    ood_ref: Sequence[float] | np.ndarray,
    id_scores: Sequence[float] | np.ndarray,
    ood_scores: Sequence[float] | np.ndarray,
    scale: Scale = "linear",
    method: Literal["bootstrap", "analytic"] = "bootstrap",
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> EffectiveRobustness:
    """Effective robustness of M models from mean scores, with a CI from the reference trend only.

    Use :func:`effective_robustness_volume_ci` when per-slice scores are at hand (CIs over test
    volumes). Here ``"analytic"`` uses the OLS confidence band of the mean line at each model's ID score (needs
    >= 3 reference runs); ``"bootstrap"`` refits the line on reference runs resampled with
    replacement and takes percentile intervals of ``OOD - trend*(ID)``.

    Args:
        id_ref: (R,) metric on P_best's test split of the reference runs (trained on P_best).
        ood_ref: (R,) metric on Q of the reference runs.
        id_scores: (M,) metric on P_best's test split of the evaluated models.
        ood_scores: (M,) metric on Q of the evaluated models.
        scale: "linear" or "logit".
        method: "bootstrap" (resamples reference runs) or "analytic".
        n_boot: bootstrap draws (bootstrap method only).
        alpha: miscoverage level.
        seed: seed of the local generator (bootstrap method only).

    Returns:
        An :class:`EffectiveRobustness` with (M,) arrays.
    """
    check_alpha(alpha)
    if method not in ("bootstrap", "analytic"):
        raise AnalysisInputError(f"expected method 'bootstrap' or 'analytic', got {method!r}")
    trend = fit_linear_trend(id_ref, ood_ref, scale)
    x0 = as_1d("id_scores", np.atleast_1d(id_scores))
    y0 = as_1d("ood_scores", np.atleast_1d(ood_scores))
    same_length(id_scores=x0, ood_scores=y0)
    er = y0 - trend.predict(x0)
    if method == "analytic":
        band_lo, band_hi = trend.band(x0, alpha)
        return EffectiveRobustness(er, y0 - band_hi, y0 - band_lo, trend, method, alpha, _RESAMPLED[method])
    lines = bootstrap_trends(id_ref, ood_ref, scale, n_boot, seed)  # (B, 2)
    xt = to_fit_scale(x0, scale, "id_scores")
    draws = y0[None, :] - from_fit_scale(lines[:, :1] * xt[None, :] + lines[:, 1:], scale)  # (B, M)
    bounds = np.array([percentile_interval(draws[:, m], alpha) for m in range(len(x0))]).reshape(-1, 2)
    return EffectiveRobustness(er, bounds[:, 0], bounds[:, 1], trend, method, alpha, _RESAMPLED[method])


def _per_slice_matrix(name: str, values: object, n_slices: int | None) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2:
        raise AnalysisInputError(f"expected {name} of shape (runs, slices), got shape {a.shape}")
    if n_slices is not None and a.shape[1] != n_slices:
        raise AnalysisInputError(f"expected {name} with {n_slices} slices per run, got {a.shape[1]}")
    return a


def effective_robustness_volume_ci(
    ref_id: Sequence[Sequence[float]] | np.ndarray,
    ref_ood: Sequence[Sequence[float]] | np.ndarray,
    id_scores: Sequence[Sequence[float]] | np.ndarray,
    ood_scores: Sequence[Sequence[float]] | np.ndarray,
    id_groups: Sequence[object] | np.ndarray,
    ood_groups: Sequence[object] | np.ndarray,
    scale: Scale = "linear",
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> EffectiveRobustness:
    """LH24 effective robustness from per-slice scores, with CIs over test volumes.

    Every run (reference or evaluated) is scored on the same slices of P_best's test split and of
    Q's test split. The point estimate uses the per-slice means; a bootstrap draw resamples the
    volumes of each test split with replacement (:func:`~mribench.analysis.stats.cluster_bootstrap_means`,
    one draw shared by every run), recomputes all means, refits the line on the reference runs and
    recomputes each model's ER. Slices where any run is NaN are dropped from that split.

    Args:
        ref_id: (R, N_P) per-slice metric on P_best's test split of the R reference runs (models
            trained on P_best), slices in the same order for every run.
        ref_ood: (R, N_Q) per-slice metric on Q's test split of the reference runs.
        id_scores: (M, N_P) per-slice metric on P_best's test split of the M evaluated models.
        ood_scores: (M, N_Q) per-slice metric on Q's test split of the evaluated models.
        id_groups: (N_P,) volume of each P_best test slice.
        ood_groups: (N_Q,) volume of each Q test slice.
        scale: "linear" (LH24) or "logit".
        n_boot: number of bootstrap draws.
        alpha: miscoverage level.
        seed: seed of the local generators (test_P draws use ``seed``, test_Q draws ``seed + 1``).

    Returns:
        An :class:`EffectiveRobustness` with (M,) arrays and ``method="volumes"``.

    Raises:
        AnalysisInputError: fewer than 2 reference runs, mismatched shapes, no usable slices.
    """
    check_alpha(alpha)
    check_positive_int("n_boot", n_boot)
    _check_scale(scale)
    gid = np.asarray(id_groups, dtype=object)
    god = np.asarray(ood_groups, dtype=object)
    r_id = _per_slice_matrix("ref_id", ref_id, len(gid))
    r_ood = _per_slice_matrix("ref_ood", ref_ood, len(god))
    _check_references(len(r_id))
    if len(r_ood) != len(r_id):
        raise AnalysisInputError(f"expected ref_ood for {len(r_id)} reference runs, got {len(r_ood)}")
    m_id = _per_slice_matrix("id_scores", id_scores, len(gid))
    m_ood = _per_slice_matrix("ood_scores", ood_scores, len(god))
    if len(m_ood) != len(m_id):
        raise AnalysisInputError(f"expected ood_scores for {len(m_id)} models, got {len(m_ood)}")
    n_ref = len(r_id)
    means, draws = [], []
    for split, vals, groups, sd in (
        ("test split of P_best", np.vstack([r_id, m_id]), gid, seed),
        ("test split of Q", np.vstack([r_ood, m_ood]), god, seed + 1),
    ):
        keep = np.isfinite(vals).all(axis=0)
        if not keep.any():
            raise AnalysisInputError(f"expected slices of the {split} scored by every run, got none")
        cols = vals[:, keep].T  # (N, R + M)
        means.append(cols.mean(axis=0))
        if len(set(groups[keep].tolist())) >= 2:
            draws.append(cluster_bootstrap_means(cols, groups[keep], n_boot, sd))  # (B, R + M)
        else:
            draws.append(np.full((n_boot, cols.shape[1]), np.nan))
    trend = fit_linear_trend(means[0][:n_ref], means[1][:n_ref], scale)
    er = means[1][n_ref:] - trend.predict(means[0][n_ref:])
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = _fit_scale_draws(draws[0], scale)  # (B, R + M)
        dy = _fit_scale_draws(draws[1], scale)
        xr, yr = dx[:, :n_ref], dy[:, :n_ref]
        xm, ym = xr.mean(axis=1, keepdims=True), yr.mean(axis=1, keepdims=True)
        sxx = ((xr - xm) ** 2).sum(axis=1, keepdims=True)
        slope = np.where(sxx > 0, ((xr - xm) * (yr - ym)).sum(axis=1, keepdims=True) / sxx, np.nan)
        pred = from_fit_scale(slope * (dx[:, n_ref:] - xm) + ym, scale)  # (B, M)
        er_draws = draws[1][:, n_ref:] - pred
    bounds = np.array([percentile_interval(er_draws[:, m], alpha) for m in range(er_draws.shape[1])]).reshape(-1, 2)
    return EffectiveRobustness(er, bounds[:, 0], bounds[:, 1], trend, "volumes", alpha, _RESAMPLED["volumes"])


def _fit_scale_draws(draws: np.ndarray, scale: Scale) -> np.ndarray:
    """Bootstrap means (B, K) on the fitting scale; draws outside (0, 1) become NaN for logit."""
    if scale == "linear":
        return draws
    from scipy.special import logit

    ok = (draws > 0) & (draws < 1)
    return np.where(ok, logit(np.where(ok, draws, 0.5)), np.nan)
