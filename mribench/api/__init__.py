"""Contracts: the types every layer agrees on (no heavy imports: no torch, no pandas at import time).

- :mod:`mribench.api.model`: :class:`SliceMeta`, :class:`Sample`, the :class:`ReconModel` protocol,
  the optional :class:`ReportsSliceStats` protocol, :class:`ModelInfo`.
- :mod:`mribench.api.run` (pydantic, imported on first use): :class:`EvalOptions`, :class:`Runtime`,
  :data:`RunMode`, the run record :class:`RunConfig` with :class:`Provenance`, :class:`RunSummary`,
  :func:`parse_run_config` and :func:`comparable`.
- :mod:`mribench.api.metric_names`: the metric names a task may list (checked when it is loaded).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from mribench.api.model import ModelInfo, ReconModel, ReportsSliceStats, Sample, SliceMeta

_RUN = (
    "EvalOptions",
    "Provenance",
    "RunConfig",
    "RunMode",
    "RunSummary",
    "Runtime",
    "comparable",
    "parse_run_config",
)

if TYPE_CHECKING:
    from mribench.api.run import (
        EvalOptions,
        Provenance,
        RunConfig,
        RunMode,
        RunSummary,
        Runtime,
        comparable,
        parse_run_config,
    )


def __getattr__(name: str) -> Any:
    if name in _RUN:
        value = getattr(import_module("mribench.api.run"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mribench.api' has no attribute {name!r}")


__all__ = [
    "EvalOptions",
    "ModelInfo",
    "Provenance",
    "ReconModel",
    "ReportsSliceStats",
    "RunConfig",
    "RunMode",
    "RunSummary",
    "Runtime",
    "Sample",
    "SliceMeta",
    "comparable",
    "parse_run_config",
]
