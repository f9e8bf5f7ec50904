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

    Bars are drawn on an interactive terminal (or with ``MRIBENCH_PROGRESS=1``); elsewhere (logs,
    CI) only the one-time generation of the embedded benchmark is announced, with a line when it
    starts and one when it is done, so that a long first run never looks stuck.
    """
    if not enabled or (not sys.stderr.isatty() and os.environ.get("MRIBENCH_PROGRESS") != "1"):
        yield _plain_notes()
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
                if key == "generating":  # above the bar, kept after it: what is written where
                    prog.console.print(_generation_note(total), highlight=False)
                ids[key] = prog.add_task(key, total=total)
            prog.update(ids[key], completed=done, total=total, description=desc[:60])

        yield update


def _plain_notes() -> Callable[[int, int, str], None]:
    """Outside a terminal: one line when the embedded benchmark's generation starts and one when it ends."""
    said: set[str] = set()

    def note(done: int, total: int, desc: str) -> None:
        if not desc.startswith("generating"):
            return
        if "start" not in said:
            said.add("start")
            err_console.print(_generation_note(total), highlight=False)
        if done >= total and "end" not in said:
            said.add("end")
            err_console.print(f"generated MRIBench-Sim ({total} volumes)", highlight=False)

    return note


def _generation_note(total: int) -> str:
    """The line announcing the one-time generation of the embedded benchmark (size and place)."""
    from mribench.data.root import SIM_DISK_SPACE
    from mribench.paths import cache_dir

    return (
        f"generating the embedded benchmark MRIBench-Sim: {total} volumes, once (an evaluation's volumes take "
        f"{SIM_DISK_SPACE} of disk in {cache_dir()} and a few minutes; a training's up to 3 GB)"
    )
