"""``mribench similarity``: CLIP nearest-neighbour similarity between a task's training and test data.

For each test patch (80x80, from RSS targets of ``test_Q``) the maximum cosine similarity to the
patches of a training split (``train_P`` or ``train_Q``) is computed (Lin & Heckel, Figures 6 and
11). Embeddings are cached on disk, so a second analysis of the same data costs no CLIP passes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from mribench.data.index import build_index
from mribench.data.root import resolve_data_root
from mribench.tasks import TaskSpec, load_task, make_splits
from mribench.tasks.embedded import embedded_volumes
from mribench.workflows.runtime import resolve_device

PAIRS = (("train_P", "test_Q"), ("train_Q", "test_Q"))


def _items(rows: Any, root: Path, max_slices: int | None) -> list[Any]:
    from mribench.analysis import SliceItem

    if max_slices is not None:
        rows = rows.iloc[:max_slices]

    def loader(path: Path, s: int) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            with h5py.File(path) as hf:
                return np.asarray(hf["reconstruction_rss"][s], dtype=np.float32)

        return load

    return [SliceItem(str(r.file), int(r.slice), loader(root / str(r.path), int(r.slice))) for r in rows.itertuples()]


def task_similarity(
    task: str | TaskSpec,
    *,
    data_root: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    model_name: str = "ViT-B-16",
    embed_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    weights_hash: str | None = None,
    per_image: int = 8,
    patch_size: int = 80,
    max_slices: int | None = None,
    device: str = "auto",
    seed: int = 0,
) -> dict[str, Any]:
    """Nearest-neighbour similarity of ``test_Q`` to ``train_P`` and to ``train_Q``.

    Args:
        task: task name or spec.
        data_root: data folder (default: the embedded benchmark).
        checkpoint: open_clip checkpoint (see :func:`mribench.metrics.clip.load_clip`).
        model_name: open_clip architecture.
        embed_fn: an embedding function to use instead of CLIP (tests, other encoders); then
            ``weights_hash`` identifies it in the cache.
        per_image: patches per slice.
        patch_size: patch side in pixels (80 in Lin & Heckel).
        max_slices: cap of slices per split.
        device: where CLIP runs.
        seed: patch-position seed.

    Returns:
        ``{"train_P->test_Q": SimilarityResult, "train_Q->test_Q": SimilarityResult, "model": ...}``.

    Raises:
        WeightsMissingError: when no CLIP checkpoint is available (never random weights).
    """
    from mribench.analysis import EmbeddingCache, clip_similarity

    spec = task if isinstance(task, TaskSpec) else load_task(task)
    root = resolve_data_root(data_root, volumes=embedded_volumes(spec, ("test", "train_P", "train_Q")))
    splits = make_splits(spec, build_index(root))
    dev = resolve_device(device)
    if embed_fn is None:
        from mribench.metrics.clip import embed_images, load_clip, resolve_checkpoint

        path = resolve_checkpoint(checkpoint, model_name)
        model = load_clip(path, model_name, dev)
        weights_hash = hashlib.sha256(path.read_bytes()).hexdigest()

        def embed_fn(x: torch.Tensor) -> torch.Tensor:
            return embed_images(model, x.to(dev))

    if not weights_hash:
        raise ValueError("expected a weights_hash identifying a custom embed_fn, got none")
    cache = EmbeddingCache()
    out: dict[str, Any] = {"model": model_name, "weights_hash": weights_hash}
    for train, test in PAIRS:
        out[f"{train}->{test}"] = clip_similarity(
            _items(splits[train].rows, root, max_slices),
            _items(splits[test].rows, root, max_slices),
            embed_fn,
            cache=cache,
            model_name=model_name,
            weights_hash=weights_hash,
            size=patch_size,
            per_image=per_image,
            seed=seed,
            device=dev,
        )
    return out
