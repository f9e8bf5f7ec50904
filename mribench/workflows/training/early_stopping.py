"""Early stopping against distributional overfitting (Lin & Heckel 2024).

Lin & Heckel checkpoint every epoch and stop "when the in-distribution improvement becomes
marginal": training longer keeps improving in-distribution (ID) scores by tiny amounts while the
out-of-distribution score can already decline. The rule here makes this precise:

Let ``v_e`` be the ID score (higher is better) after epoch ``e`` and ``b_e = max(v_0..v_e)`` the best
so far. At epoch ``e`` (once ``patience`` earlier epochs exist) the improvement over the last
``patience`` epochs is ``b_e - b_{e-patience}``. Training stops at the first epoch where it is
below ``threshold`` (``mode="absolute"``) or below ``threshold * |b_{e-patience}|``
(``mode="relative"``). The chosen checkpoint is the best ID epoch up to that point (earliest on
ties). If the rule never fires, the best ID epoch overall is chosen.

The function is pure: it reads a history (the ``history.json`` records of a training) and returns a
decision; the trainer calls :func:`should_stop` after every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MODES = ("absolute", "relative")


@dataclass(frozen=True)
class StopDecision:
    """Outcome of the early-stopping rule over a history.

    Attributes:
        chosen_epoch: epoch whose checkpoint to use (best ID score up to the stop).
        stop_epoch: epoch after which the rule fired, or ``None`` if it never did.
        improvement: ID improvement over the last ``patience`` epochs at ``stop_epoch`` (or at the
            last epoch when the rule never fired; ``None`` if the history is shorter than that).
    """

    chosen_epoch: int
    stop_epoch: int | None
    improvement: float | None

    @property
    def stopped(self) -> bool:
        return self.stop_epoch is not None


def _scores(history: Sequence[Mapping[str, Any]], key: str, higher_is_better: bool) -> tuple[list[int], list[float]]:
    if not history:
        raise ValueError("expected a non-empty training history, got none")
    epochs, values = [], []
    for rec in sorted(history, key=lambda r: int(r["epoch"])):
        v = rec.get(key)
        if v is None or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise ValueError(
                f"expected a finite {key!r} in every history record, got {v!r} at epoch {rec.get('epoch')}"
            )
        epochs.append(int(rec["epoch"]))
        values.append(float(v) if higher_is_better else -float(v))
    return epochs, values


def early_stopping_epoch(
    history: Sequence[Mapping[str, Any]],
    *,
    key: str = "id_ssim",
    patience: int = 3,
    threshold: float = 1e-3,
    mode: str = "absolute",
    higher_is_better: bool = True,
) -> StopDecision:
    """Apply the rule to a history (list of per-epoch records with ``epoch`` and ``key``).

    Args:
        history: per-epoch records, any order.
        key: the ID score to watch.
        patience: epochs over which the improvement is measured (>= 1).
        threshold: minimal improvement to keep training (>= 0).
        mode: ``"absolute"`` (score units) or ``"relative"`` (fraction of the earlier best).
        higher_is_better: direction of ``key`` (False for losses).

    Returns:
        The :class:`StopDecision`.

    Raises:
        ValueError: on an empty history, a missing/non-finite score, or invalid parameters.
    """
    if patience < 1:
        raise ValueError(f"expected patience >= 1, got {patience}")
    if threshold < 0:
        raise ValueError(f"expected threshold >= 0, got {threshold}")
    if mode not in MODES:
        raise ValueError(f"expected mode in {MODES}, got {mode!r}")
    epochs, values = _scores(history, key, higher_is_better)
    best: list[float] = []
    for v in values:
        best.append(max(v, best[-1]) if best else v)
    improvement: float | None = None
    for i in range(patience, len(values)):
        improvement = best[i] - best[i - patience]
        limit = threshold if mode == "absolute" else threshold * abs(best[i - patience])
        if improvement < limit:
            upto = values[: i + 1]
            return StopDecision(epochs[upto.index(max(upto))], epochs[i], improvement)
    return StopDecision(epochs[values.index(max(values))], None, improvement)


def should_stop(history: Sequence[Mapping[str, Any]], **rule: Any) -> bool:
    """Whether the rule has fired within ``history`` (keyword arguments as :func:`early_stopping_epoch`)."""
    return early_stopping_epoch(history, **rule).stopped


__all__ = ["MODES", "StopDecision", "early_stopping_epoch", "should_stop"]
