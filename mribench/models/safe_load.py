"""Reading ``torch.save`` files without running code from them.

``torch.load(weights_only=True)`` rebuilds tensors, containers and plain values and refuses every
other object a pickle names. Training frameworks store a few such objects next to the weights:
PyTorch Lightning ``.ckpt`` files (fastMRI's modules are Lightning modules) hold their
hyper-parameters as ``AttributeDict`` (a ``dict`` subclass) or ``argparse.Namespace``, callback
classes as dictionary keys, ``pathlib`` paths and numpy scalars. mribench never needs those objects,
only the tensors and the hyper-parameter values, so each such name is mapped to an inert stand-in
(:class:`StandIn`, or ``OrderedDict`` for dictionaries) that records its arguments and executes
nothing; torch's weights-only unpickler then builds the stand-in instead of the named class.

Only names from the frameworks above are given stand-ins; a pickle that names anything else
(``os.system``, ``builtins.eval``, a project's own classes, ...) is refused before it is read.
Stand-ins need torch >= 2.5 (``get_unsafe_globals_in_checkpoint`` and ``safe_globals`` with
names); older torch loads plain weights-only files and refuses the rest.
"""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from mribench.errors import ModelError

#: Module prefixes whose classes are replaced by stand-ins (training frameworks' bookkeeping).
STAND_IN_PREFIXES = ("pytorch_lightning.", "lightning.", "lightning_fabric.", "lightning_utilities.")

#: Other names replaced by stand-ins: hyper-parameter containers, paths and numpy scalars.
STAND_IN_NAMES = frozenset(
    {
        "argparse.Namespace",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
        "numpy.dtype",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
    }
)


class StandIn:
    """An inert replacement for an object a checkpoint names: keeps its arguments and state, runs nothing.

    Attributes:
        stands_for: the ``module.qualname`` it replaces (a class attribute of each per-name subclass).
        args: positional arguments the pickle passed to the constructor.
        state: the state the pickle restored (``None`` if none).
    """

    stands_for = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.state: Any = kwargs or None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stand-in for {self.stands_for}>"


def _allowed(name: str) -> bool:
    return name.startswith(STAND_IN_PREFIXES) or name in STAND_IN_NAMES or name.startswith("numpy.dtypes.")


def _stand_in(name: str) -> Any:
    short = name.rsplit(".", 1)[-1]
    if short.endswith("Dict"):  # AttributeDict & co: dict subclasses, rebuilt as plain ordered dicts
        return OrderedDict
    return type(short, (StandIn,), {"stands_for": name, "__module__": __name__})


def as_mapping(obj: Any) -> dict[str, Any]:
    """Hyper-parameters as a plain dict: from a dict, a stand-in ``Namespace``, or ``{}``."""
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, StandIn) and isinstance(obj.state, dict):
        return dict(obj.state)
    return {}


def safe_torch_load(path: str | os.PathLike[str]) -> Any:
    """``torch.load(path, weights_only=True)`` with inert stand-ins for training-framework objects.

    Args:
        path: a file written by ``torch.save``.

    Returns:
        The loaded object (tensors on the CPU).

    Raises:
        ModelError: the file names objects outside the stand-in list (it is not read), or it cannot
            be read with ``weights_only=True``.
    """
    p = Path(path)
    names: list[str] = []
    finder = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if finder is not None:
        try:
            names = list(finder(str(p)))
        except Exception:  # legacy (non-zip) files: torch.load below reports what it refuses
            names = []
    refused = sorted(n for n in names if not _allowed(n))
    if refused:
        raise ModelError(
            f"expected a checkpoint of tensors and plain values, loadable with torch.load(weights_only=True), "
            f"in {p.name}, got references to {refused[:5]} (mribench never unpickles arbitrary objects; "
            f"hint: re-save only the weights: torch.save(model.state_dict(), 'weights.pt') or safetensors)"
        )
    pairs: list[Any] = [(_stand_in(n), n) for n in names]
    try:
        if pairs and hasattr(torch.serialization, "safe_globals"):
            with torch.serialization.safe_globals(pairs):
                return torch.load(p, map_location="cpu", weights_only=True)
        return torch.load(p, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, AttributeError, TypeError, ValueError) as e:
        raise ModelError(
            f"expected a checkpoint loadable with torch.load(weights_only=True) at {p.name}, got: "
            f"{str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__} (mribench never "
            f"unpickles arbitrary objects; save a plain state_dict or safetensors)"
        ) from None


__all__ = ["STAND_IN_NAMES", "STAND_IN_PREFIXES", "StandIn", "as_mapping", "safe_torch_load"]
