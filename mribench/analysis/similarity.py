"""CLIP nearest-neighbour similarity between training and test images (Lin & Heckel, 2024).

Random foreground patches (:mod:`mribench.analysis.patches`) of the training and test RSS targets
are embedded by an image encoder (open_clip ViT-B-16 ``datacomp_xl_s13b_b90k`` in the paper; the
caller supplies ``embed_fn``); for every test patch the maximum cosine similarity to any training
patch is computed blockwise; the mean (and the histogram) summarise how close the test distribution
is to the training distribution. Embeddings are cached on disk (:mod:`~.embedding_cache`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from mribench.analysis._checks import AnalysisInputError, check_positive_int
from mribench.analysis.embedding_cache import CachedFile, EmbeddingCache
from mribench.analysis.patches import (
    BackgroundRule,
    PatchRecord,
    PatchSpec,
    as_image,
    cut_patches,
    normalise_image,
    patch_positions,
)

EmbedFn = Callable[[torch.Tensor], torch.Tensor]
"""``embed_fn(patches: float32 (B, H, W) in [0, 1]) -> (B, D)`` (unit-norm rows expected)."""

ImageSource = Any  # (H, W) array or tensor, or a zero-argument callable returning one


class SliceItem(NamedTuple):
    """One RSS target slice: stable id and the image, or a callable that loads it lazily.

    A lazy image is only loaded when some of its patches are not cached yet.
    """

    file: str
    slice: int
    image: ImageSource


@dataclass(frozen=True)
class SimilarityResult:
    """Nearest-neighbour similarities of test patches to training patches.

    Attributes:
        mean: mean over test patches of the max cosine similarity (NaN without test patches).
        counts: (bins,) histogram counts (values outside the range are counted in the edge bins).
        edges: (bins + 1,) histogram bin edges.
        values: (M,) max cosine similarity of each test patch.
        test_patches: (M,) provenance of each test patch.
        n_train_patches: number of training patches N.
        n_embedded: patches embedded by ``embed_fn`` in this call.
        n_cached: patches whose embedding came from the cache.
    """

    mean: float
    counts: np.ndarray
    edges: np.ndarray
    values: np.ndarray
    test_patches: list[PatchRecord]
    n_train_patches: int
    n_embedded: int
    n_cached: int

    @property
    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """``(counts, edges)``."""
        return self.counts, self.edges

    def by_slice(self) -> dict[tuple[str, int], float]:
        """Mean similarity per test slice ``(file, slice) -> mean`` (for similarity-vs-performance)."""
        sums: dict[tuple[str, int], list[float]] = {}
        for rec, v in zip(self.test_patches, self.values.tolist(), strict=True):
            acc = sums.setdefault((rec.file, rec.slice), [0.0, 0.0])
            acc[0] += v
            acc[1] += 1
        return {k: s / n for k, (s, n) in sums.items()}


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim != 2:
        raise AnalysisInputError(f"expected {name} of shape (n, D), got shape {tuple(t.shape)}")
    if t.is_complex():
        raise AnalysisInputError(f"expected real {name}, got a complex tensor")
    return t


def nearest_neighbour_similarity(
    test_emb: torch.Tensor | np.ndarray,
    train_emb: torch.Tensor | np.ndarray,
    block: int = 4096,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Max cosine similarity of each test embedding to the training embeddings, blockwise.

    Rows are L2-normalised here (cosine similarity whatever ``embed_fn`` returned). Only a
    ``(block, block)`` similarity tile exists at any time (besides one normalised copy of the
    embeddings), so memory stays bounded for 100k+ patches.
    Runs on ``device``; by default on the device of ``test_emb`` if it is a tensor (so CUDA tensors
    are processed on the GPU), else the CPU.

    Args:
        test_emb: (M, D) test embeddings.
        train_emb: (N, D) training embeddings, N >= 1.
        block: tile size along M and N.
        device: where to compute.

    Returns:
        float64 (M,) max cosine similarity of each test row.
    """
    check_positive_int("block", block)
    test = _as_tensor(test_emb, "test_emb")
    train = _as_tensor(train_emb, "train_emb")
    if test.shape[1] != train.shape[1]:
        raise AnalysisInputError(f"expected embeddings of equal size D, got {test.shape[1]} and {train.shape[1]}")
    if train.shape[0] == 0:
        raise AnalysisInputError("expected at least one training embedding, got 0")
    dev = torch.device(device) if device is not None else test.device
    dtype = torch.float64 if test.dtype == torch.float64 and train.dtype == torch.float64 else torch.float32
    out = torch.empty(test.shape[0], dtype=dtype, device=dev)
    with torch.no_grad():
        train_n = torch.nn.functional.normalize(train.to(dev, dtype), dim=1)  # (N, D), as big as the input
        for i in range(0, test.shape[0], block):
            t = torch.nn.functional.normalize(test[i : i + block].to(dev, dtype), dim=1)  # (b, D)
            best = torch.full((t.shape[0],), -torch.inf, dtype=dtype, device=dev)
            for j in range(0, train_n.shape[0], block):
                best = torch.maximum(best, (t @ train_n[j : j + block].T).amax(dim=1))  # (b, b') tile -> (b,)
            out[i : i + block] = best
    return out.cpu().numpy().astype(np.float64)


def _load(source: ImageSource) -> np.ndarray:
    return as_image(source() if callable(source) else source)


def _pixel_key(spec: PatchSpec, slice_: int, top: int, left: int) -> str:
    return f"{slice_}/{top}/{left}/{spec.pixels_key()}"


def _positions_key(spec: PatchSpec, slice_: int) -> str:
    return f"{slice_}/{spec.positions_key()}"


def _embed(embed_fn: EmbedFn, patches: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    outs: list[np.ndarray] = []
    with torch.no_grad():
        for i in range(0, len(patches), batch_size):
            batch = torch.from_numpy(patches[i : i + batch_size]).to(device)
            emb = embed_fn(batch)
            if not isinstance(emb, torch.Tensor) or emb.ndim != 2 or emb.shape[0] != len(batch):
                shape = tuple(emb.shape) if isinstance(emb, torch.Tensor) else type(emb).__name__
                raise AnalysisInputError(
                    f"expected embed_fn to return a tensor of shape ({len(batch)}, D), got {shape}"
                )
            outs.append(emb.detach().float().cpu().numpy())
    return np.concatenate(outs)


@dataclass(frozen=True)
class EmbeddedPatches:
    """Embeddings of the foreground patches of a list of slices.

    Attributes:
        embeddings: float32 (P, D) patch embeddings, in item order ((0, 0) when P = 0).
        records: P patch provenance records.
        n_embedded: patches embedded by ``embed_fn`` in this call.
        n_cached: patches whose embedding came from the cache.
    """

    embeddings: np.ndarray
    records: list[PatchRecord]
    n_embedded: int
    n_cached: int


def embed_items(
    items: Iterable[SliceItem],
    embed_fn: EmbedFn,
    spec: PatchSpec,
    cache: EmbeddingCache | None = None,
    model_name: str = "",
    weights_hash: str = "",
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> EmbeddedPatches:
    """Embeddings of the foreground patches of slices, using and filling the cache.

    Items are processed one file at a time (in order of first appearance); a file's new embeddings
    are written to the cache as soon as that file is done, so an interrupted run keeps its work.

    Args:
        items: slices to embed.
        embed_fn: ``(B, size, size)`` float32 in [0, 1] on ``device`` -> ``(B, D)``.
        spec: patch specification.
        cache: embedding cache, or None to embed everything.
        model_name: embedding model name (cache key; required with a cache).
        weights_hash: hash of the model weights (cache key; required with a cache).
        batch_size: patches per ``embed_fn`` call.
        device: device of the tensors passed to ``embed_fn``.

    Returns:
        An :class:`EmbeddedPatches`.
    """
    check_positive_int("batch_size", batch_size)
    if cache is not None and (not model_name or not weights_hash):
        raise AnalysisInputError(
            f"expected model_name and weights_hash with a cache, got {model_name!r}, {weights_hash!r}"
        )
    n_embedded = n_cached = 0
    dev = torch.device(device)
    by_file: dict[str, list[tuple[int, SliceItem]]] = {}
    n_items = 0
    for pos, item in enumerate(items):
        by_file.setdefault(str(item.file), []).append((pos, item))
        n_items += 1
    per_item: list[tuple[np.ndarray, list[PatchRecord]] | None] = [None] * n_items
    for file, entries in by_file.items():
        cached = cache.load(model_name, weights_hash, file) if cache is not None else CachedFile()
        new_keys: list[str] = []
        new_patches: list[np.ndarray] = []
        new_positions: dict[str, list[tuple[int, int]]] = {}
        pending: list[tuple[int, list[str], list[PatchRecord]]] = []
        for pos, item in entries:
            sl = int(item.slice)
            pkey = _positions_key(spec, sl)
            image: np.ndarray | None = None
            corners = cached.positions.get(pkey)
            if corners is None:
                image = _load(item.image)
                corners = patch_positions(image, spec, file, sl)
                new_positions[pkey] = corners
            keys = [_pixel_key(spec, sl, t, lf) for t, lf in corners]
            missing = [k for k in range(len(keys)) if keys[k] not in cached.keys]
            if missing:
                image = image if image is not None else _load(item.image)
                new_patches.append(
                    cut_patches(normalise_image(image, spec.norm_percentile), [corners[k] for k in missing], spec.size)
                )
                new_keys.extend(keys[k] for k in missing)
            n_cached += len(keys) - len(missing)
            records = [PatchRecord(file, sl, k, t, lf) for k, (t, lf) in enumerate(corners)]
            pending.append((pos, keys, records))
        fresh: dict[str, np.ndarray] = {}
        if new_keys:
            emb = _embed(embed_fn, np.concatenate(new_patches), batch_size, dev)
            n_embedded += len(new_keys)
            fresh = dict(zip(new_keys, emb, strict=True))
        if cache is not None and (new_keys or new_positions):
            dim = next(iter(fresh.values())).shape[0] if fresh else 0
            cache.update(
                model_name,
                weights_hash,
                file,
                new_keys,
                np.stack(list(fresh[k] for k in new_keys)) if new_keys else np.zeros((0, dim), np.float32),
                new_positions,
            )
        for pos, keys, records in pending:
            rows = [fresh[k] if k in fresh else cached.embeddings[cached.keys[k]] for k in keys]
            per_item[pos] = (np.stack(rows) if rows else np.zeros((0, 0), np.float32), records)
    done = [entry for entry in per_item if entry is not None]
    embs = [e for e, _ in done if len(e)]
    records_all = [r for _, recs in done for r in recs]
    if not embs:
        return EmbeddedPatches(np.zeros((0, 0), np.float32), records_all, n_embedded, n_cached)
    dims = {e.shape[1] for e in embs}
    if len(dims) > 1:
        raise AnalysisInputError(f"expected embeddings of one size D, got sizes {sorted(dims)} (stale cache?)")
    return EmbeddedPatches(np.concatenate(embs).astype(np.float32, copy=False), records_all, n_embedded, n_cached)


def clip_similarity(
    train_items: Sequence[SliceItem],
    test_items: Sequence[SliceItem],
    embed_fn: EmbedFn,
    cache: EmbeddingCache | None = None,
    model_name: str = "",
    weights_hash: str = "",
    size: int = 80,
    per_image: int = 8,
    seed: int = 0,
    rule: BackgroundRule | None = None,
    norm_percentile: float = 99.9,
    bins: int = 50,
    hist_range: tuple[float, float] = (0.0, 1.0),
    batch_size: int = 256,
    block: int = 4096,
    device: str | torch.device = "cpu",
) -> SimilarityResult:
    """Nearest-neighbour similarity of test patches to training patches (Lin & Heckel).

    Args:
        train_items: training slices (RSS targets).
        test_items: test slices (RSS targets).
        embed_fn: ``(B, size, size)`` float32 in [0, 1] on ``device`` -> ``(B, D)`` embeddings.
        cache: embedding cache (or None).
        model_name: embedding model name, e.g. ``"ViT-B-16/datacomp_xl_s13b_b90k"`` (cache key).
        weights_hash: hash of the model weights (cache key).
        size: patch side length.
        per_image: patches per slice.
        seed: base seed of the patch positions.
        rule: background rule (default :class:`BackgroundRule`()).
        norm_percentile: intensity normalisation percentile of the patches.
        bins: number of histogram bins.
        hist_range: histogram range; values outside are counted in the first/last bin.
        batch_size: patches per ``embed_fn`` call.
        block: tile size of the nearest-neighbour search.
        device: device for ``embed_fn`` inputs and the nearest-neighbour search.

    Returns:
        A :class:`SimilarityResult`.
    """
    check_positive_int("bins", bins)
    lo, hi = (float(v) for v in hist_range)
    if not lo < hi:
        raise AnalysisInputError(f"expected hist_range (low, high) with low < high, got {hist_range}")
    spec = PatchSpec(
        size=size, per_image=per_image, seed=seed, rule=rule or BackgroundRule(), norm_percentile=norm_percentile
    )
    kwargs: dict[str, Any] = dict(
        cache=cache, model_name=model_name, weights_hash=weights_hash, batch_size=batch_size, device=device
    )
    train = embed_items(train_items, embed_fn, spec, **kwargs)
    test = embed_items(test_items, embed_fn, spec, **kwargs)
    if len(train.records) == 0:
        raise AnalysisInputError("expected at least one foreground training patch, got 0 (check the background rule)")
    if len(test.records):
        values = nearest_neighbour_similarity(
            torch.from_numpy(test.embeddings).to(device), torch.from_numpy(train.embeddings).to(device), block=block
        )
    else:
        values = np.zeros(0)
    counts, edges = np.histogram(np.clip(values, lo, hi), bins=bins, range=(lo, hi))
    mean = float(values.mean()) if len(values) else float("nan")
    return SimilarityResult(
        mean,
        counts,
        edges,
        values,
        test.records,
        len(train.records),
        train.n_embedded + test.n_embedded,
        train.n_cached + test.n_cached,
    )
