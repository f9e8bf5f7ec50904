"""On-disk cache of patch embeddings, so repeated similarity analyses cost nothing.

Layout under ``root`` (default ``<mribench cache>/embeddings``)::

    <model>-<hash of (model, weights hash)>/
        <file>-<hash of file>.json               index: key -> row, cached patch positions
        <file>-<hash of file>.<content hash>.npy  float32 (n, D) embeddings of that file's patches

One entry per (model name, weights hash, data file). Inside an entry, an embedding is keyed by the
patch's pixels key (slice, top, left and how pixels are derived, see
:meth:`mribench.analysis.patches.PatchSpec.pixels_key`); the patch *positions* chosen for a slice
are cached too (keyed by :meth:`~mribench.analysis.patches.PatchSpec.positions_key`), so a cached
slice does not even need its image loaded. Writes are atomic: the array is written under a
content-addressed name first, then the JSON index (the commit point) is replaced, then the
superseded array is removed. Concurrent writers never corrupt an entry (the last one wins).

The file name is the identity of the data: use distinct names (e.g. prefix a dataset id) when two
data roots contain different files with the same name.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mribench.analysis._checks import AnalysisInputError
from mribench.paths import atomic_write_bytes, atomic_write_text, cache_dir, slug

_FORMAT = 1


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:12]


@dataclass
class CachedFile:
    """The cached state of one (model, weights hash, file) entry.

    Attributes:
        keys: embedding key -> row of ``embeddings``.
        embeddings: float32 (n, D) embeddings (shape (0, 0) when empty).
        positions: positions key -> list of (top, left) patch corners.
    """

    keys: dict[str, int] = field(default_factory=dict)
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    positions: dict[str, list[tuple[int, int]]] = field(default_factory=dict)


class EmbeddingCache:
    """Disk cache of embeddings keyed by (model name, weights hash, file, patch key)."""

    def __init__(self, root: str | Path | None = None) -> None:
        """Create a cache handle (nothing is written until :meth:`update`).

        Args:
            root: cache folder; default ``mribench.paths.cache_dir() / "embeddings"``.
        """
        self.root = Path(root).expanduser() if root is not None else cache_dir() / "embeddings"

    def entry_path(self, model: str, weights_hash: str, file: str) -> Path:
        """Path of the JSON index of one entry."""
        if not model or not weights_hash:
            raise AnalysisInputError(f"expected a model name and a weights hash, got {model!r} and {weights_hash!r}")
        folder = self.root / f"{slug(model, '_', basename=False, max_len=60)}-{_short_hash(model, weights_hash)}"
        return folder / f"{slug(file, '_', basename=False, max_len=60)}-{_short_hash(file)}.json"

    def load(self, model: str, weights_hash: str, file: str) -> CachedFile:
        """Read one entry; a missing or unreadable entry is an empty one (the cache is disposable).

        Args:
            model: embedding model name.
            weights_hash: hash of the model's weights.
            file: data file name.

        Returns:
            The :class:`CachedFile`.
        """
        path = self.entry_path(model, weights_hash, file)
        for _ in range(2):  # a concurrent writer may replace the array between the two reads
            try:
                meta = json.loads(path.read_text(encoding="utf-8"))
                if meta.get("format") != _FORMAT or meta.get("file") != file:
                    return CachedFile()
                emb = np.load(path.parent / meta["array"], allow_pickle=False)
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError):
                return CachedFile()
            keys = {str(k): int(v) for k, v in meta["keys"].items()}
            if emb.ndim != 2 or (keys and max(keys.values()) >= len(emb)):
                return CachedFile()
            positions = {k: [(int(t), int(lf)) for t, lf in v] for k, v in meta.get("positions", {}).items()}
            return CachedFile(keys, emb.astype(np.float32, copy=False), positions)
        return CachedFile()

    def update(
        self,
        model: str,
        weights_hash: str,
        file: str,
        keys: list[str],
        embeddings: np.ndarray,
        positions: dict[str, list[tuple[int, int]]] | None = None,
    ) -> None:
        """Add embeddings (and patch positions) to an entry, atomically.

        Args:
            model: embedding model name.
            weights_hash: hash of the model's weights.
            file: data file name.
            keys: (n,) embedding keys; keys already cached keep their stored embedding.
            embeddings: float (n, D) embeddings of ``keys``.
            positions: positions key -> patch corners to remember.
        """
        emb = np.asarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or len(emb) != len(keys):
            raise AnalysisInputError(f"expected embeddings of shape ({len(keys)}, D), got {emb.shape}")
        current = self.load(model, weights_hash, file)
        if current.embeddings.size and emb.size and current.embeddings.shape[1] != emb.shape[1]:
            current = CachedFile()  # embedding size changed under the same key: start over
        dim = emb.shape[1] if emb.size else current.embeddings.shape[1] if current.embeddings.size else 0
        base = current.embeddings if current.embeddings.size else np.zeros((0, dim), np.float32)
        merged_keys = dict(current.keys)
        rows: list[np.ndarray] = []
        for key, vec in zip(keys, emb, strict=True):
            if key not in merged_keys:
                merged_keys[key] = len(base) + len(rows)
                rows.append(vec)
        merged = np.concatenate([base, np.stack(rows)]) if rows else base
        merged_pos = dict(current.positions)
        merged_pos.update({k: [(int(t), int(lf)) for t, lf in v] for k, v in (positions or {}).items()})
        if len(rows) == 0 and merged_pos == current.positions:
            return
        path = self.entry_path(model, weights_hash, file)
        buf = io.BytesIO()
        np.save(buf, merged, allow_pickle=False)
        data = buf.getvalue()
        array_name = f"{path.stem}.{hashlib.sha256(data).hexdigest()[:16]}.npy"
        old_array: str | None = None
        if path.exists():
            try:
                old_array = json.loads(path.read_text(encoding="utf-8")).get("array")
            except (OSError, ValueError):
                old_array = None
        atomic_write_bytes(path.parent / array_name, data)
        meta = {
            "format": _FORMAT,
            "model": model,
            "weights_hash": weights_hash,
            "file": file,
            "array": array_name,
            "keys": merged_keys,
            "positions": {k: [list(p) for p in v] for k, v in merged_pos.items()},
        }
        atomic_write_text(path, json.dumps(meta, sort_keys=True))
        if old_array and old_array != array_name:
            (path.parent / old_array).unlink(missing_ok=True)
