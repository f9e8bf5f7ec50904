"""Learning-rate schedules, per optimiser step (:data:`SCHEDULES`).

- ``"onecycle-lh24"`` (Lin & Heckel 2024): ``torch.optim.lr_scheduler.OneCycleLR`` as their
  ``main.py`` configures it (``pct_start`` = the warm-up fraction, 0.01; ``anneal_strategy="linear"``;
  ``div_factor=25``; ``final_div_factor=1``; no momentum cycling): linear warm-up from ``lr / 25``
  to ``lr`` over 1% of the steps, then linear decay back to ``lr / 25`` (4e-5 for their lr 1e-3) at
  the last step. :class:`OneCycleLinear` is that formula as a ``LambdaLR`` factor, equal to
  torch's values wherever the warm-up spans at least two steps (tested); torch's class divides by
  zero when the warm-up ends exactly at step 0 (e.g. 100 steps at 1%), so the factor starts the
  decay no earlier than step 1.
- ``"constant"`` (Darestani, Liu & Heckel 2022: Adam at a fixed lr 1e-5).
- ``"warmup-linear"`` (mribench's earlier default): linear warm-up from ``lr / warmup_steps`` then
  linear decay towards 0 (:class:`WarmupLinearDecay`).

The factors are small callable objects (not lambdas) so that ``torch.optim.lr_scheduler.LambdaLR``
stores their parameters in ``state_dict()`` as plain numbers, and a resumed training restores the
schedule exactly from a ``torch.load(weights_only=True)`` state.
"""

from __future__ import annotations

import torch


class WarmupLinearDecay:
    """Multiplicative LR factor for step ``s`` (0-based) of ``total_steps``.

    - warm-up, ``s < warmup_steps``: ``(s + 1) / warmup_steps`` (reaches 1 at the last warm-up step);
    - decay, ``s >= warmup_steps``: ``(total_steps - s) / (total_steps - warmup_steps)``, i.e. 1 at the
      first decay step and ``1 / (total_steps - warmup_steps)`` at the last step (never 0 while training).

    Args:
        total_steps: optimiser steps of the whole training (>= 1).
        warmup_steps: steps of linear warm-up (0 <= warmup_steps < total_steps, or 0).

    Raises:
        ValueError: on inconsistent step counts.
    """

    def __init__(self, total_steps: int, warmup_steps: int) -> None:
        if total_steps < 1:
            raise ValueError(f"expected total_steps >= 1, got {total_steps}")
        if warmup_steps < 0 or (warmup_steps > 0 and warmup_steps >= total_steps):
            raise ValueError(f"expected 0 <= warmup_steps < total_steps ({total_steps}), got {warmup_steps}")
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        remaining = self.total_steps - step
        return max(remaining, 0) / (self.total_steps - self.warmup_steps)


class OneCycleLinear:
    """``OneCycleLR``'s two-phase linear schedule as a multiplicative factor of the peak lr.

    Args:
        total_steps: optimiser steps of the whole training (>= 1).
        pct_start: fraction of the steps spent warming up (torch's ``pct_start``), in [0, 1).
        div_factor: the first lr is ``lr / div_factor``.
        final_div_factor: the last lr is ``lr / div_factor / final_div_factor``.
    """

    def __init__(
        self, total_steps: int, pct_start: float, div_factor: float = 25.0, final_div_factor: float = 1.0
    ) -> None:
        if total_steps < 1:
            raise ValueError(f"expected total_steps >= 1, got {total_steps}")
        if not 0 <= pct_start < 1:
            raise ValueError(f"expected pct_start in [0, 1), got {pct_start}")
        if div_factor <= 0 or final_div_factor <= 0:
            raise ValueError(f"expected positive div factors, got {div_factor}, {final_div_factor}")
        self.total_steps = int(total_steps)
        self.pct_start = float(pct_start)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)

    def __call__(self, step: int) -> float:
        start = 1.0 / self.div_factor
        final = start / self.final_div_factor
        warm_end = max(self.pct_start * self.total_steps - 1, 1.0)  # torch: pct_start * total - 1
        last = self.total_steps - 1
        if step <= warm_end or last <= warm_end:
            return start + min(step / warm_end, 1.0) * (1.0 - start)
        return 1.0 + min((step - warm_end) / (last - warm_end), 1.0) * (final - 1.0)


class Constant:
    """Factor 1 at every step (a fixed learning rate)."""

    def __call__(self, step: int) -> float:
        return 1.0


#: Named schedules (see the module docstring).
SCHEDULES = ("onecycle-lh24", "constant", "warmup-linear")


def warmup_steps_for(total_steps: int, warmup_fraction: float) -> int:
    """Warm-up length as a fraction of the training, at least 1 step when the fraction is > 0.

    Raises:
        ValueError: if ``warmup_fraction`` is outside [0, 1).
    """
    if not 0 <= warmup_fraction < 1:
        raise ValueError(f"expected warmup_fraction in [0, 1), got {warmup_fraction}")
    if warmup_fraction == 0 or total_steps < 2:
        return 0
    return min(max(1, round(total_steps * warmup_fraction)), total_steps - 1)


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int,
    schedule: str = "warmup-linear",
    warmup_fraction: float | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` of a named schedule; call ``.step()`` after every optimiser step.

    Args:
        optimizer: its lr is the peak lr.
        total_steps: optimiser steps of the whole training.
        warmup_steps: ``warmup-linear``'s warm-up length (:func:`warmup_steps_for`).
        schedule: one of :data:`SCHEDULES`.
        warmup_fraction: ``onecycle-lh24``'s ``pct_start`` (default ``warmup_steps / total_steps``).
    """
    if schedule == "warmup-linear":
        factor: WarmupLinearDecay | OneCycleLinear | Constant = WarmupLinearDecay(total_steps, warmup_steps)
    elif schedule == "onecycle-lh24":
        pct = warmup_steps / max(total_steps, 1) if warmup_fraction is None else warmup_fraction
        factor = OneCycleLinear(total_steps, pct)
    elif schedule == "constant":
        factor = Constant()
    else:
        raise ValueError(f"expected a schedule in {SCHEDULES}, got {schedule!r}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


__all__ = ["SCHEDULES", "Constant", "OneCycleLinear", "WarmupLinearDecay", "make_scheduler", "warmup_steps_for"]
