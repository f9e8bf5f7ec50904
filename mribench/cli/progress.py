"""Progress bars for the command line (rich), shared by every sub-app."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

err_console = Console(stderr=True, soft_wrap=True)  # an error stays on one line


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Callable[[int, int, str], None]]:
    """Yield a ``progress(done, total, description)`` callback drawing one bar per kind of work.

    Bars are drawn on an interactive terminal (or with ``MRIBENCH_PROGRESS=1``); elsewhere the
    callback does nothing, so logs stay clean.
    """
    if not enabled or (not sys.stderr.isatty() and os.environ.get("MRIBENCH_PROGRESS") != "1"):
        yield lambda d, t, desc: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as prog:
        ids: dict[str, Any] = {}

        def update(done: int, total: int, desc: str) -> None:
            key = desc.split(" ")[0]
            if key not in ids:
                ids[key] = prog.add_task(key, total=total)
            prog.update(ids[key], completed=done, total=total, description=desc[:60])

        yield update
