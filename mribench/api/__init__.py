"""Contracts: the types every layer agrees on (no heavy imports: no torch, no pandas at import time).

- :mod:`mribench.api.model`: :class:`SliceMeta`, the :class:`ReconModel` protocol, :class:`ModelInfo`.
- :mod:`mribench.api.metric_names`: the metric names a task may list (checked when it is loaded).
"""

from __future__ import annotations

from mribench.api.model import ModelInfo, ReconModel, SliceMeta

__all__ = ["ModelInfo", "ReconModel", "SliceMeta"]
