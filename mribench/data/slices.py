"""The slice source: slices read from fastMRI-format files, masked with the task's fixed per-volume mask.

Evaluation, training validation and report panels all read through here, so every model sees the
same masked k-space, and every :class:`~mribench.api.model.SliceMeta` is built by
:func:`slice_meta` with the SSIM data range of :func:`volume_max` (the volume max of the
``reconstruction_rss`` target, as fastMRI defines it; never the max of a batch or a slice).

- :func:`plan_requests`: the slice-index rows of a split as :class:`SliceRequest` batches (one
  volume each, slices sorted);
- :func:`read_sample`: one request as a :class:`~mribench.api.model.Sample`;
- :class:`Prefetcher`: the samples of a list of requests, read ahead of the consumer by a thread
  (or DataLoader worker processes), so reading overlaps the model and the metrics.
"""

from __future__ import annotations

import functools
import math
import os
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch

from mribench.api.model import Sample, SliceMeta
from mribench.data.fastmri_io import read_rows
from mribench.errors import DataError
from mribench.physics.masks import MaskSpec, volume_mask

META_ATTRS = ("protocol", "anatomy", "contrast", "field_strength", "coils", "vendor")
"""Slice-index columns a model sees in ``SliceMeta.attrs``."""
ROW_COLUMNS = ("file", "path", "padding_left", "padding_right", "volume_max", *META_ATTRS)
"""Slice-index columns a request carries (its volume's metadata, for the mask and the SliceMeta)."""


# --------------------------------------------------------------------------- SliceMeta


def volume_max(path: str | os.PathLike[str], recorded: Any = None) -> float:
    """The SSIM data range of a volume: the max over all its ``reconstruction_rss`` slices.

    Args:
        path: the volume's file.
        recorded: the value the slice index took from the file's ``attrs["max"]``; ``None`` or NaN
            when the file has none, and then the max is computed from the whole target volume
            (once per file and process).

    Raises:
        DataError: the file has no readable ``reconstruction_rss``.
    """
    if recorded is not None:
        v = float(recorded)
        if math.isfinite(v):
            return v
    p = Path(path)
    try:
        st = p.stat()
        return _target_max(str(p), st.st_mtime_ns, st.st_size)
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"expected a readable reconstruction_rss in {p.name}, got {type(e).__name__}: {e}") from None


@functools.lru_cache(maxsize=1024)
def _target_max(path: str, mtime_ns: int, size: int) -> float:
    """Max of a file's whole target volume (keyed by modification time and size: a rewritten file is re-read)."""
    with h5py.File(path, "r") as hf:
        return float(np.max(hf["reconstruction_rss"][()]))


def slice_meta(
    row: Mapping[str, Any],
    slices: Sequence[int],
    target_size: tuple[int, int],
    *,
    num_low_frequencies: int,
    acceleration: int,
    volume_max: float,
) -> SliceMeta:
    """The :class:`SliceMeta` of slices of one volume (the one place SliceMeta is built from data).

    Args:
        row: the volume's slice-index metadata (``file``, ``padding_left``, ``padding_right`` and
            any of :data:`META_ATTRS`).
        slices: slice indices of the batch.
        target_size: (h, w) of the target.
        num_low_frequencies: fully sampled central columns (0: derive it from the mask).
        acceleration: nominal acceleration of the mask.
        volume_max: the SSIM data range, from :func:`volume_max`.
    """
    return SliceMeta(
        file=str(row["file"]),
        slices=tuple(int(s) for s in slices),
        target_size=(int(target_size[0]), int(target_size[1])),
        padding=(int(row["padding_left"]), int(row["padding_right"])),
        num_low_frequencies=int(num_low_frequencies),
        acceleration=int(acceleration),
        volume_max=float(volume_max),
        attrs={k: row[k] for k in META_ATTRS if k in row},
    )


# --------------------------------------------------------------------------- requests and reading


@dataclass(frozen=True)
class SliceRequest:
    """A batch of slices of one volume in one split, to read and mask.

    Attributes:
        split: the split it belongs to.
        file: the volume's file name.
        path: the file.
        slices: slice indices, sorted.
        mask: the split's fixed per-volume mask.
        row: the volume's slice-index metadata (:data:`ROW_COLUMNS`).
    """

    split: str
    file: str
    path: Path
    slices: tuple[int, ...]
    mask: MaskSpec
    row: dict[str, Any]


def plan_requests(
    rows: pd.DataFrame, split: str, mask: MaskSpec, root: str | os.PathLike[str], batch_size: int
) -> list[SliceRequest]:
    """Slice-index rows as requests of at most ``batch_size`` slices of one volume each.

    Args:
        rows: slice-index rows (``file``, ``slice``, ``path`` relative to ``root``, and
            :data:`ROW_COLUMNS` where present).
        split: their split.
        mask: the split's mask.
        root: the data root.
        batch_size: slices per request.

    Returns:
        Requests ordered by file, then slice.
    """
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    root = Path(root)
    # plain lists of the columns a request needs: much faster than per-row pandas access
    files = [str(f) for f in rows["file"].tolist()]
    first: dict[str, int] = {}
    by_file: dict[str, list[int]] = {}
    for i, (f, s) in enumerate(zip(files, rows["slice"].tolist(), strict=True)):
        first.setdefault(f, i)
        by_file.setdefault(f, []).append(int(s))
    columns = {c: rows[c].tolist() for c in ROW_COLUMNS if c in rows.columns}
    out: list[SliceRequest] = []
    for file in sorted(by_file):
        row = {c: v[first[file]] for c, v in columns.items()}
        sl = sorted(by_file[file])
        for i in range(0, len(sl), batch_size):
            out.append(SliceRequest(split, file, root / str(row["path"]), tuple(sl[i : i + batch_size]), mask, row))
    return out


def read_sample(request: SliceRequest, *, full_kspace: bool = False) -> Sample:
    """Read and mask the slices of a request.

    Args:
        request: what to read.
        full_kspace: also return the fully sampled k-space (``Sample.kspace``).

    Returns:
        The :class:`Sample`: masked k-space complex64 (B, C, H, W), mask float32 (B, 1, 1, W),
        target float32 (B, h, w), and its :class:`SliceMeta`.

    Raises:
        DataError: the file or one of its datasets cannot be read.
    """
    it = request
    idx = list(it.slices)
    try:
        # consecutive slices are read as one hyperslab (h5py's list indexing is a much slower path)
        sel: Any = slice(idx[0], idx[-1] + 1) if idx == list(range(idx[0], idx[-1] + 1)) else idx
        with h5py.File(it.path, "r") as hf:
            kspace = torch.from_numpy(read_rows(hf, "kspace", sel, np.dtype(np.complex64)))
            target = torch.from_numpy(read_rows(hf, "reconstruction_rss", sel, np.dtype(np.float32)))
        vmax = volume_max(it.path, it.row.get("volume_max"))
    except (OSError, KeyError, ValueError, DataError) as e:
        raise DataError(f"reading {it.file} failed: {type(e).__name__}: {e}") from None
    full = kspace.clone() if full_kspace else None
    w = kspace.shape[-1]
    mask = volume_mask(it.mask, w, it.file, (int(it.row["padding_left"]), int(it.row["padding_right"])))
    mask = mask.reshape(1, 1, 1, w).expand(len(idx), 1, 1, w).contiguous()
    # in place and with NumPy (one thread): the reader must not compete with the model for cores
    np.multiply(kspace.numpy(), mask.numpy(), out=kspace.numpy())
    choice = it.mask.choice(w, it.file)  # the volume's acceleration and centre lines (masks may mix them)
    meta = slice_meta(
        it.row,
        it.slices,
        (int(target.shape[-2]), int(target.shape[-1])),
        num_low_frequencies=choice.num_low_frequencies,
        acceleration=choice.acceleration,
        volume_max=vmax,
    )
    return Sample(kspace, mask, target, meta, full)


class SliceSource(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """The samples of a list of requests (map-style; runs in DataLoader workers).

    Items are ``{"index": i, "sample": Sample | None, "error": str | None}``: a request whose file
    cannot be read gives its error instead of raising, so one bad file fails only its slices.
    """

    def __init__(self, requests: Sequence[SliceRequest], *, full_kspace: bool = False) -> None:
        self.requests = list(requests)
        self.full_kspace = full_kspace

    def __len__(self) -> int:
        return len(self.requests)

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            return {"index": i, "sample": read_sample(self.requests[i], full_kspace=self.full_kspace), "error": None}
        except DataError as e:
            return {"index": i, "sample": None, "error": str(e)}


class Prefetcher:
    """The items of a :class:`SliceSource` in order, read ahead from the moment this is created.

    With ``num_workers == 0`` one thread reads (reads and masking overlap the model and the
    metrics: contiguous datasets are read with ``os.preadv`` and masked with NumPy, both without the
    GIL, see :func:`mribench.data.fastmri_io.read_rows`); otherwise a DataLoader with worker
    processes. The thread also frees the items the consumer has finished with. :meth:`close` stops
    the reader (also when the consumer stops early or fails).
    """

    def __init__(self, source: SliceSource, num_workers: int = 0, depth: int = 2) -> None:
        self._stop = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._thread: threading.Thread | None = None
        self._spent: list[Any] = []  # items the consumer is done with, freed by the reader thread
        self._loader: Iterator[dict[str, Any]] | None = None
        if not len(source):
            self._loader = iter(())
        elif num_workers > 0:
            self._loader = iter(
                torch.utils.data.DataLoader(
                    source, batch_size=None, shuffle=False, num_workers=num_workers, persistent_workers=False
                )
            )
        else:
            self._thread = threading.Thread(target=self._work, args=(source,), daemon=True, name="mribench-prefetch")
            self._thread.start()

    _DONE = object()

    def _put(self, x: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self, source: SliceSource) -> None:
        try:
            for i in range(len(source)):
                # freeing a batch's buffers (megabytes) costs the model thread milliseconds at times
                # (unmapping memory another thread allocated); here it overlaps the model instead
                self._spent.clear()
                if not self._put(source[i]):
                    return
        except BaseException as e:  # re-raised in the consumer
            self._put(e)
            return
        self._put(self._DONE)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._loader is not None:
            yield from self._loader
            return
        while True:
            x = self._queue.get()
            if x is self._DONE:
                return
            if isinstance(x, BaseException):
                raise x
            yield x
            self._spent.append(x)  # the consumer drops its own reference before asking for the next
            x = None

    def close(self) -> None:
        self._stop.set()


__all__ = [
    "META_ATTRS",
    "ROW_COLUMNS",
    "Prefetcher",
    "SliceRequest",
    "SliceSource",
    "plan_requests",
    "read_sample",
    "slice_meta",
    "volume_max",
]
