"""Where mribench keeps generated data, caches and weights (all overridable by environment)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    """Root cache folder: ``$MRIBENCH_CACHE`` or ``~/.cache/mribench``."""
    env = os.environ.get("MRIBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mribench"


def weights_dir() -> Path:
    """Folder of converted metric weights: ``$MRIBENCH_WEIGHTS`` or ``<cache>/weights``."""
    env = os.environ.get("MRIBENCH_WEIGHTS")
    return Path(env).expanduser() if env else cache_dir() / "weights"


def models_dir() -> Path:
    """Folder of downloaded / registered zoo models: ``$MRIBENCH_MODELS`` or ``<cache>/models``."""
    env = os.environ.get("MRIBENCH_MODELS")
    return Path(env).expanduser() if env else cache_dir() / "models"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def slug(name: str, default: str = "model", *, basename: bool = True, max_len: int | None = None) -> str:
    """A file-name-safe form of a name (the one slug helper of mribench).

    Every character other than a letter, a digit, ``-``, ``_`` or ``.`` becomes ``-``; leading and
    trailing ``-`` are stripped.

    Args:
        name: a model, task, group or file name.
        default: returned when nothing is left.
        basename: use only the last path component (model names may be checkpoint paths); with
            False a ``/`` becomes ``-`` like any other character.
        max_len: cut the result to this many characters.

    Returns:
        e.g. ``slug("runs/my unet.pt") == "my-unet.pt"``, ``slug("a/b", basename=False) == "a-b"``.
    """
    text = Path(name).name if basename else str(name)
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-")
    if max_len is not None:
        keep = keep[:max_len].strip("-")
    return keep or default


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename).

    Readers see the old or the new content, never a mix, also when the writer is killed.
    ``durable`` adds an fsync before the rename (against power loss); caches that can be
    re-derived skip it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str, durable: bool = True) -> None:
    """Text variant of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"), durable)
