"""Distribution-shift performance gap and the fraction of it test-time training closes (D22).

Definitions (Darestani, Liu & Heckel, ICML 2022 = D22), all evaluated on the *test set of the target
distribution Q*:

* gap = metric(model trained on Q) - metric(model trained on P)   (higher-is-better metrics)
* gap = metric(model trained on P) - metric(model trained on Q)   (lower-is-better metrics)

The sign flip makes a positive gap always mean "the model trained on the shifted distribution P
does worse on Q than one trained on Q itself".

* **Fraction of the gap closed (D22)** = ``1 - gap_after / gap_before`` where ``gap_before`` is the
  **supervised** gap (Q-trained minus P-trained, both trained supervised) and ``gap_after`` is
  (Q-trained self-supervised + TTT) minus (P-trained self-supervised + TTT). D22 Table 1, U-Net,
  anatomy shift: ``1 - (0.9234 - 0.9225) / (0.9187 - 0.8521) = 1 - 0.0009 / 0.0666 = 98.6%``.
  :func:`d22_fraction_closed` and :func:`d22_fraction_closed_ci` take the four models by these
  roles; 1 = gap fully closed, 0 = unchanged, negative = TTT widened it, above 1 = the adapted
  P-trained model ends above the adapted Q-trained one.

:func:`fraction_gap_closed` and :func:`fraction_gap_closed_ci` are the bare formula
``1 - gap_after / gap_before`` for any two gaps. Only with the pairs above is the result D22's
fraction; any other pairing (for example dividing by a self-supervised gap) is another quantity and
must be reported under another name.

The per-slice versions pair the models on the same test-Q slices and bootstrap over volumes (see
:mod:`mribench.analysis.stats`); the fraction's point estimate is a ratio of mean gaps (not a mean of
per-slice ratios), and its CI uses the same volume draws for numerator and denominator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mribench.analysis._checks import AnalysisInputError, as_1d, check_alpha, check_positive_int, same_length
from mribench.analysis.stats import (
    CI,
    cluster_bootstrap_means,
    factorize_groups,
    finite_split,
    paired_difference,
    percentile_interval,
)


@dataclass(frozen=True)
class GapResult:
    """A performance gap with a cluster-bootstrap CI.

    Attributes:
        gap: mean gap over test-Q slices (positive: P-trained model is worse).
        low: lower CI bound (NaN with fewer than 2 volumes).
        high: upper CI bound (NaN with fewer than 2 volumes).
        p_value: two-sided bootstrap p-value for "gap = 0".
        q_trained: mean metric of the Q-trained model over the slices used.
        p_trained: mean metric of the P-trained model over the slices used.
        alpha: miscoverage level of the interval.
        n: number of slices used.
        n_groups: number of volumes.
        n_dropped: slices dropped because a value was NaN.
        n_inf: slices left out because a value was +-Inf (the rule of :mod:`mribench.analysis.stats`).
    """

    gap: float
    low: float
    high: float
    p_value: float
    q_trained: float
    p_trained: float
    alpha: float
    n: int
    n_groups: int
    n_dropped: int
    n_inf: int = 0


@dataclass(frozen=True)
class FractionClosedResult:
    """Fraction of the gap closed by an intervention, with a cluster-bootstrap CI.

    Attributes:
        fraction: ``1 - gap_after / gap_before`` from the mean gaps.
        low: lower CI bound (NaN with fewer than 2 volumes).
        high: upper CI bound (NaN with fewer than 2 volumes).
        gap_before: gap without the intervention, with its CI.
        gap_after: gap with the intervention, with its CI.
        alpha: miscoverage level of the intervals.
        n: number of slices used (all four values finite).
        n_groups: number of volumes.
        n_dropped: slices dropped because one of the four values was NaN.
        n_inf: slices left out because one of the four values was +-Inf.
    """

    fraction: float
    low: float
    high: float
    gap_before: CI
    gap_after: CI
    alpha: float
    n: int
    n_groups: int
    n_dropped: int
    n_inf: int = 0


def _sign(higher_is_better: bool) -> float:
    return 1.0 if higher_is_better else -1.0


def performance_gap(q_trained: float, p_trained: float, higher_is_better: bool = True) -> float:
    """Scalar distribution-shift gap on the test set of Q.

    Args:
        q_trained: mean metric on test-Q of the model trained on Q.
        p_trained: mean metric on test-Q of the model trained on P.
        higher_is_better: False for metrics like NMSE (the sign is flipped so a positive gap still
            means the P-trained model is worse).

    Returns:
        The gap (a float).
    """
    return _sign(higher_is_better) * (float(q_trained) - float(p_trained))


def fraction_gap_closed(gap_before: float, gap_after: float) -> float:
    """The bare formula ``1 - gap_after / gap_before`` for two gaps.

    D22's fraction of the gap closed when ``gap_before`` is the supervised gap and ``gap_after`` the
    gap between the two self-supervised models after TTT (:func:`d22_fraction_closed`).

    Args:
        gap_before: gap without the intervention (must be non-zero).
        gap_after: gap with the intervention.

    Returns:
        The fraction (1 = fully closed; may be negative or exceed 1).
    """
    gb, ga = float(gap_before), float(gap_after)
    if gb == 0.0 or not np.isfinite(gb):
        raise AnalysisInputError(f"expected a finite, non-zero gap before the intervention, got {gap_before}")
    return 1.0 - ga / gb


def fraction_gap_closed_from_metrics(
    q_before: float, p_before: float, q_after: float, p_after: float, higher_is_better: bool = True
) -> float:
    """``1 - gap_after / gap_before`` from four mean metrics on test-Q (the bare formula).

    With the supervised pair as ``*_before`` and the self-supervised + TTT pair as ``*_after`` this
    is D22's fraction (:func:`d22_fraction_closed`).

    Args:
        q_before: Q-trained model without the intervention.
        p_before: P-trained model without the intervention.
        q_after: Q-trained model with the intervention.
        p_after: P-trained model with the intervention.
        higher_is_better: orientation of the metric.

    Returns:
        ``1 - gap_after / gap_before``.
    """
    return fraction_gap_closed(
        performance_gap(q_before, p_before, higher_is_better), performance_gap(q_after, p_after, higher_is_better)
    )


def performance_gap_ci(
    q_trained: Sequence[float] | np.ndarray,
    p_trained: Sequence[float] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    higher_is_better: bool = True,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> GapResult:
    """Per-slice gap on test-Q slices with a paired cluster-bootstrap CI over volumes.

    Args:
        q_trained: (N,) metric per test-Q slice of the Q-trained model.
        p_trained: (N,) metric on the same slices of the P-trained model.
        groups: (N,) volume id of each slice.
        higher_is_better: orientation of the metric.
        n_boot: number of bootstrap draws.
        alpha: miscoverage level of the interval.
        seed: seed of the local generator.

    Returns:
        A :class:`GapResult` (NaN pairs dropped and counted).
    """
    s = _sign(higher_is_better)
    q, p = as_1d("q_trained", q_trained), as_1d("p_trained", p_trained)
    # gap = s * (q - p) = mean of (s*q) - (s*p): a paired difference b - a with a = s*p, b = s*q.
    d = paired_difference(s * p, s * q, groups, n_boot=n_boot, alpha=alpha, seed=seed)
    return GapResult(
        gap=d.mean,
        low=d.low,
        high=d.high,
        p_value=d.p_value,
        q_trained=s * d.mean_b,
        p_trained=s * d.mean_a,
        alpha=alpha,
        n=d.n,
        n_groups=d.n_groups,
        n_dropped=d.n_dropped,
        n_inf=d.n_inf,
    )


def fraction_gap_closed_ci(
    q_before: Sequence[float] | np.ndarray,
    p_before: Sequence[float] | np.ndarray,
    q_after: Sequence[float] | np.ndarray,
    p_after: Sequence[float] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    higher_is_better: bool = True,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> FractionClosedResult:
    """``1 - gap_after / gap_before`` from per-slice metrics paired on test-Q slices.

    With the supervised pair as ``*_before`` and the self-supervised + TTT pair as ``*_after`` this
    is D22's fraction (:func:`d22_fraction_closed_ci`).

    Draws in which the bootstrap ``gap_before`` is exactly 0 give an undefined ratio and are ignored
    by the percentile interval; when ``gap_before`` is close to 0 the interval is very wide, which is
    the honest answer.

    Args:
        q_before: (N,) Q-trained model without the intervention.
        p_before: (N,) P-trained model without the intervention.
        q_after: (N,) Q-trained model with the intervention.
        p_after: (N,) P-trained model with the intervention.
        groups: (N,) volume id of each slice.
        higher_is_better: orientation of the metric.
        n_boot: number of bootstrap draws.
        alpha: miscoverage level of the intervals.
        seed: seed of the local generator.

    Returns:
        A :class:`FractionClosedResult` (slices with a non-finite value left out and counted).
    """
    check_alpha(alpha)
    check_positive_int("n_boot", n_boot)
    s = _sign(higher_is_better)
    cols = [
        as_1d(n, v)
        for n, v in (("q_before", q_before), ("p_before", p_before), ("q_after", q_after), ("p_after", p_after))
    ]
    grp = np.asarray(groups, dtype=object)
    same_length(q_before=cols[0], p_before=cols[1], q_after=cols[2], p_after=cols[3], groups=grp)
    if len(grp) == 0:
        raise AnalysisInputError("expected at least one slice, got 0")
    fs = finite_split(*cols)
    n_dropped, n_inf = fs.n_dropped, fs.n_inf
    gaps = np.stack([s * (cols[0] - cols[1]), s * (cols[2] - cols[3])], axis=1)[fs.keep]  # (N, 2): before, after
    grp = grp[fs.keep]
    nan = float("nan")
    if len(gaps) == 0:
        empty = CI(nan, nan, nan, alpha, 0, 0, n_dropped, n_inf)
        return FractionClosedResult(nan, nan, nan, empty, empty, alpha, 0, 0, n_dropped, n_inf)
    n_groups = factorize_groups(grp)[1]
    before, after = (float(v) for v in gaps.mean(axis=0))
    fraction = 1.0 - after / before if before != 0.0 else nan
    if n_groups < 2:
        cis = [CI(m, nan, nan, alpha, len(gaps), n_groups, n_dropped, n_inf) for m in (before, after)]
        return FractionClosedResult(fraction, nan, nan, cis[0], cis[1], alpha, len(gaps), n_groups, n_dropped, n_inf)
    draws = cluster_bootstrap_means(gaps, grp, n_boot, seed)  # (B, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac_draws = 1.0 - draws[:, 1] / draws[:, 0]
    frac_draws[draws[:, 0] == 0.0] = nan
    lo, hi = percentile_interval(frac_draws, alpha)
    cis = [
        CI(m, *percentile_interval(draws[:, k], alpha), alpha, len(gaps), n_groups, n_dropped, n_inf)
        for k, m in enumerate((before, after))
    ]
    return FractionClosedResult(fraction, lo, hi, cis[0], cis[1], alpha, len(gaps), n_groups, n_dropped, n_inf)


def d22_fraction_closed(
    q_supervised: float,
    p_supervised: float,
    q_ttt: float,
    p_ttt: float,
    higher_is_better: bool = True,
) -> float:
    """D22's fraction of the distribution-shift gap closed by test-time training (scalar).

    ``1 - gap_after / gap_before`` with ``gap_before = q_supervised - p_supervised`` (the supervised
    gap) and ``gap_after = q_ttt - p_ttt`` (both self-supervised models after TTT), all on test-Q.

    Args:
        q_supervised: mean metric on test-Q of the model trained supervised on Q.
        p_supervised: mean metric on test-Q of the model trained supervised on P.
        q_ttt: mean metric on test-Q of the model trained self-supervised on Q, after TTT.
        p_ttt: mean metric on test-Q of the model trained self-supervised on P, after TTT.
        higher_is_better: orientation of the metric.

    Returns:
        The fraction (D22 Table 1, U-Net anatomy: 0.986).
    """
    return fraction_gap_closed_from_metrics(q_supervised, p_supervised, q_ttt, p_ttt, higher_is_better)


def d22_fraction_closed_ci(
    q_supervised: Sequence[float] | np.ndarray,
    p_supervised: Sequence[float] | np.ndarray,
    q_ttt: Sequence[float] | np.ndarray,
    p_ttt: Sequence[float] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    higher_is_better: bool = True,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> FractionClosedResult:
    """D22's fraction of the gap closed by TTT from per-slice metrics, with a CI over volumes.

    All four models are scored on the same test-Q slices; the interval resamples test-Q volumes
    (cluster bootstrap, :mod:`mribench.analysis.stats`), with the same draws for both gaps.

    Args:
        q_supervised: (N,) model trained supervised on Q.
        p_supervised: (N,) model trained supervised on P.
        q_ttt: (N,) model trained self-supervised on Q, after test-time training.
        p_ttt: (N,) model trained self-supervised on P, after test-time training.
        groups: (N,) volume id of each slice.
        higher_is_better: orientation of the metric.
        n_boot: number of bootstrap draws.
        alpha: miscoverage level of the intervals.
        seed: seed of the local generator.

    Returns:
        A :class:`FractionClosedResult` whose ``gap_before`` is the supervised gap and ``gap_after``
        the gap after TTT.
    """
    return fraction_gap_closed_ci(
        q_supervised, p_supervised, q_ttt, p_ttt, groups, higher_is_better, n_boot=n_boot, alpha=alpha, seed=seed
    )
