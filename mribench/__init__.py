"""mribench: how robust is deep-learning MRI reconstruction to distribution shifts?

Public API::

    import mribench
    result = mribench.evaluate("zero-filled", "anatomy", options=mribench.EvalOptions(limit=10))
    result.summary.shift["ssim"]             # ShiftSummary(id=..., ood=..., drop=...)
    mribench.list_tasks(); mribench.load_task("anatomy")
    model = mribench.load_model("path/to/my_model.py:build")
    mribench.evaluate(model, "anatomy", runtime=mribench.Runtime(device="cuda", batch_size=4))

Names are imported on first use, so ``import mribench`` stays cheap (no torch, no pandas).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from mribench._version import __version__

_EXPORTS: dict[str, str] = {
    "EvalOptions": "mribench.api.run",
    "Runtime": "mribench.api.run",
    "evaluate": "mribench.workflows.evaluation",
    "load_model": "mribench.models.loader",
    "load_run": "mribench.results",
    "list_tasks": "mribench.tasks",
    "load_task": "mribench.tasks",
}

if TYPE_CHECKING:
    from mribench.api.run import EvalOptions, Runtime
    from mribench.models.loader import load_model
    from mribench.results import load_run
    from mribench.tasks import list_tasks, load_task
    from mribench.workflows.evaluation import evaluate


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mribench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = ["EvalOptions", "Runtime", "__version__", "evaluate", "list_tasks", "load_model", "load_run", "load_task"]
