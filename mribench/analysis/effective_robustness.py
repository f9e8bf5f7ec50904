"""Effective robustness: distance of a model above the ID -> OOD trend of reference models.

Following Taori et al. (2020) and Lin & Heckel (2024): reconstruction methods trained on the
reference distribution are evaluated in-distribution (ID) and out-of-distribution (OOD); a line
``OOD = a * ID + b`` is fitted over these reference runs by ordinary least squares, and a model's

* effective robustness ``ER = OOD - (a * ID + b)``.

The ``"logit"`` scale fits the line on ``logit(ID), logit(OOD)`` (for metrics in (0, 1) such as
SSIM, where trends are closer to linear) and back-transforms the prediction, so
``ER = OOD - sigmoid(a * logit(ID) + b)`` is always in metric units.

Uncertainty of the fit comes two ways: the analytic ``1 - alpha`` confidence band of the OLS mean
line (``t_{n-2} * s * sqrt(1/n + (x - mean x)^2 / Sxx)``, the formulas behind
``scipy.stats.linregress``), optionally widened to a prediction band (``1 + ...`` under the root:
where a *new* reference run would fall), and a bootstrap over reference runs. Both describe the
uncertainty of the reference trend only, not the evaluation noise of the model itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mribench.analysis._checks import AnalysisInputError, as_1d, check_alpha, check_positive_int, same_length
from mribench.analysis.stats import percentile_interval

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
        method: "analytic" or "bootstrap".
        alpha: miscoverage level.
    """

    er: np.ndarray
    low: np.ndarray
    high: np.ndarray
    trend: LinearTrend
    method: str
    alpha: float


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
    if n < 2:
        raise AnalysisInputError(f"expected at least 2 reference runs, got {n}")
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
    if len(x) < 2:
        raise AnalysisInputError(f"expected at least 2 reference runs, got {len(x)}")
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
    """Effective robustness of M models with a CI from the uncertainty of the reference trend.

    ``"analytic"`` uses the OLS confidence band of the mean line at each model's ID score (needs
    >= 3 reference runs); ``"bootstrap"`` refits the line on reference runs resampled with
    replacement and takes percentile intervals of ``OOD - trend*(ID)``.

    Args:
        id_ref: (R,) ID metric of the reference runs.
        ood_ref: (R,) OOD metric of the reference runs.
        id_scores: (M,) ID metric of the evaluated models.
        ood_scores: (M,) OOD metric of the evaluated models.
        scale: "linear" or "logit".
        method: "bootstrap" or "analytic".
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
        return EffectiveRobustness(er, y0 - band_hi, y0 - band_lo, trend, method, alpha)
    lines = bootstrap_trends(id_ref, ood_ref, scale, n_boot, seed)  # (B, 2)
    xt = to_fit_scale(x0, scale, "id_scores")
    draws = y0[None, :] - from_fit_scale(lines[:, :1] * xt[None, :] + lines[:, 1:], scale)  # (B, M)
    bounds = np.array([percentile_interval(draws[:, m], alpha) for m in range(len(x0))]).reshape(-1, 2)
    return EffectiveRobustness(er, bounds[:, 0], bounds[:, 1], trend, method, alpha)
