"""Learning-rate schedule: linear warm-up followed by linear decay, per optimiser step.

The factor is a small callable object (not a lambda) so that ``torch.optim.lr_scheduler.LambdaLR``
stores its parameters in ``state_dict()`` as plain ints, and a resumed training restores the
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
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying :class:`WarmupLinearDecay`; call ``.step()`` after every optimiser step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupLinearDecay(total_steps, warmup_steps))


__all__ = ["WarmupLinearDecay", "make_scheduler", "warmup_steps_for"]
