"""Where the data is: an explicit folder, ``$MRIBENCH_DATA``, or the embedded MRIBench-Sim benchmark."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection
from pathlib import Path

SIM_DISK_SPACE = "about 1 GB"
"""Disk space of the volumes one evaluation generates on first use (the test volumes of a D22 task at
the default size: 0.66-1.44 GB; what the README and the first-use message say). The whole default-size
catalog is 7.8 GB, but a job generates only the volumes its task needs."""


def resolve_data_root(
    data_root: str | os.PathLike[str] | None,
    progress: Callable[[int, int, str], None] | None = None,
    volumes: Collection[str] | None = None,
) -> Path:
    """``data_root`` > ``$MRIBENCH_DATA`` > the embedded MRIBench-Sim benchmark (generated on first use).

    Args:
        data_root: a fastMRI-format folder, or ``None``.
        progress: ``progress(done, total, description)`` while the embedded benchmark is generated.
        volumes: the embedded volumes the job needs (``None``: all); only those are generated
            (see :func:`mribench.tasks.embedded.embedded_volumes`).
    """
    if data_root:
        return Path(data_root).expanduser()
    env = os.environ.get("MRIBENCH_DATA")
    if env:
        return Path(env).expanduser()
    from mribench.data.synthetic import ensure_synthetic

    cb = (lambda d, t: progress(d, t, "generating MRIBench-Sim")) if progress else None
    return ensure_synthetic(progress=cb, volumes=volumes)


def data_label(root: str | os.PathLike[str]) -> str:
    """What a data root is, in a few words: ``MRIBench-Sim 3.2 (synthetic)`` for the embedded
    benchmark (read from its ``manifest.json``), else the folder itself."""
    try:
        m = json.loads((Path(root) / "manifest.json").read_text())
    except (OSError, ValueError):
        return str(root)
    if not isinstance(m, dict) or m.get("generator") != "MRIBench-Sim":
        return str(root)
    size = m.get("size")
    return f"MRIBench-Sim {m.get('version')} (synthetic{'' if size in (None, 'default') else f', {size} size'})"


__all__ = ["SIM_DISK_SPACE", "data_label", "resolve_data_root"]
