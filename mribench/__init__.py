"""mribench: how robust is deep-learning MRI reconstruction to distribution shifts?

Public API::

    import mribench
    result = mribench.evaluate("zero-filled", "anatomy")
    result.summary["shift"]["ssim"]          # {"id": ..., "ood": ..., "drop": ...}
    mribench.list_tasks(); mribench.load_task("anatomy")
    model = mribench.load_model("path/to/my_model.py:build")
"""

from __future__ import annotations

from mribench._version import __version__
from mribench.evaluator import evaluate
from mribench.models import load_model
from mribench.results import load_run
from mribench.tasks import list_tasks, load_task

__all__ = ["__version__", "evaluate", "list_tasks", "load_model", "load_run", "load_task"]
