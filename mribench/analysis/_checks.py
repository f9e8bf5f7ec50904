"""Input validation shared by the analysis modules (one error type, one message style)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mribench.errors import MribenchError


class AnalysisInputError(MribenchError, ValueError):
    """Bad input to an analysis function.

    A ``ValueError`` (as callers of a numeric library expect) and a ``MribenchError`` (so the CLI maps
    it to an exit code and a one-line message instead of a traceback).
    """


def as_1d(name: str, values: Any) -> np.ndarray:
    """Return ``values`` as a float64 array of shape (N,); raise if it is not one-dimensional.

    Args:
        name: argument name used in the error message.
        values: array-like (N,) of numbers (torch tensors are accepted).

    Returns:
        float64 array (N,), a copy when a conversion was needed.
    """
    if hasattr(values, "detach"):  # torch.Tensor without importing torch here
        values = values.detach().cpu().numpy()
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AnalysisInputError(f"expected {name} to be numbers, got {type(values).__name__} ({exc})") from None
    if arr.ndim != 1:
        raise AnalysisInputError(f"expected {name} of shape (N,), got shape {arr.shape}")
    return arr


def same_length(**arrays: np.ndarray | Sequence[Any]) -> int:
    """Check that every named array has the same length and return it."""
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise AnalysisInputError(f"expected arrays of equal length, got {desc}")
    return next(iter(lengths.values()))


def check_alpha(alpha: float) -> None:
    """Raise unless ``0 < alpha < 1``."""
    if not 0.0 < float(alpha) < 1.0:
        raise AnalysisInputError(f"expected alpha in (0, 1), got {alpha}")


def check_positive_int(name: str, value: int) -> None:
    """Raise unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise AnalysisInputError(f"expected {name} to be an integer >= 1, got {value!r}")
