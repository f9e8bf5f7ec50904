"""How a workflow runs: device, threads, precision, the distributed barrier, and the provenance it records.

None of this changes a slice's numbers (except precision, which :class:`~mribench.api.run.EvalOptions`
holds); it is what a run records about where and with what software it ran.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from mribench._version import __version__
from mribench.api.run import Provenance, Runtime

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MASK_SEED_RULE = "sha256(file name : mask seed) -> fastmri MaskFunc seed"


def resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; otherwise as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except RuntimeError:
        raise ValueError(f"expected a device like auto, cpu, cuda or cuda:1, got {device!r}") from None
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"expected a CUDA device to be available for device {device!r}, got none (hint: device 'cpu', `--device cpu`)"
        )
    return d


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (``None``: unchanged), restoring them after.

    torch's operations wait for all their threads: with a core taken by another job, two threads on
    a 2-core machine run several times slower than one.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of a model call: ``bf16``/``fp16`` autocast, or for ``fp32`` none
    (switching off a caller's autocast; without one no context is constructed per batch)."""
    dtype = AUTOCAST_DTYPES[precision]
    if dtype is not None:
        return torch.autocast(device.type, dtype=dtype)
    if torch.is_autocast_enabled(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def barrier(world_size: int) -> Callable[[], None]:
    """A process barrier across ranks (gloo; torchrun's environment), or a no-op for one process."""
    if world_size <= 1:
        return lambda: None
    import torch.distributed as dist

    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise ValueError("expected torchrun's MASTER_ADDR/MASTER_PORT for a distributed evaluation, got none")
        dist.init_process_group("gloo", rank=int(os.environ.get("RANK", "0")), world_size=world_size)

    def wait() -> None:
        dist.barrier()

    return wait


# --------------------------------------------------------------------------- provenance


def _git_commit(path: Path) -> str | None:
    # output to a file, not a pipe: a process forked meanwhile by another thread (DataLoader workers)
    # inherits the pipe's write end, and reading the pipe to its end would then wait forever
    try:
        with tempfile.TemporaryFile() as out:
            proc = subprocess.run(
                ["git", "-C", str(path), "rev-parse", "HEAD"],
                stdout=out,
                stderr=subprocess.DEVNULL,
                stdin=subprocess.DEVNULL,
                timeout=5,
            )
            out.seek(0)
            text = out.read().decode(errors="replace").strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return text or None if proc.returncode == 0 else None


class GitCommit:
    """The git commit of a folder, looked up in a thread from the start so that the set-up overlaps it."""

    def __init__(self, path: Path) -> None:
        self._value: str | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), daemon=True, name="mribench-git")
        self._thread.start()

    def _run(self, path: Path) -> None:
        self._value = _git_commit(path)

    def result(self) -> str | None:
        self._thread.join()
        return self._value


@functools.cache
def package_commit() -> GitCommit:
    """The commit of mribench's own checkout (if any): the code loaded in a process does not change."""
    return GitCommit(Path(__file__).parent)


def git_probes() -> tuple[GitCommit, GitCommit]:
    """Commits of the working directory and of mribench's checkout (started now, read later)."""
    return GitCommit(Path.cwd()), package_commit()


@functools.cache
def software() -> dict[str, Any]:
    """Versions of the code this process runs (fixed once imported, so looked up once per process)."""
    from importlib.metadata import PackageNotFoundError, version

    import fastmri  # noqa: F401

    try:
        fastmri_version: str | None = version("fastmri")
    except PackageNotFoundError:
        fastmri_version = None
    return {
        "mribench": __version__,
        "torch": torch.__version__,
        "fastmri": fastmri_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def provenance(device: torch.device, runtime: Runtime, git: tuple[GitCommit, GitCommit] | None = None) -> Provenance:
    """What a run records about where and how it ran.

    Args:
        device: the resolved device.
        runtime: the run's :class:`Runtime` (world size, batch size, workers).
        git: commit probes started earlier (:func:`git_probes`); started now when ``None``.
    """
    git = git or git_probes()
    return Provenance(
        **software(),
        device=str(device),
        device_name=torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        world_size=runtime.world_size,
        threads=torch.get_num_threads(),
        batch_size=runtime.batch_size,
        num_workers=runtime.num_workers,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        git_commit_cwd=git[0].result(),
        git_commit_mribench=git[1].result(),
        mask_seed_rule=MASK_SEED_RULE,
    )


__all__ = [
    "AUTOCAST_DTYPES",
    "GitCommit",
    "autocast",
    "barrier",
    "git_probes",
    "package_commit",
    "provenance",
    "resolve_device",
    "software",
    "torch_threads",
]
