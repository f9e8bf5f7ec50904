"""fastMRI's exchange formats: test-set style input files and submission-style reconstruction files.

The fastMRI challenge gave participants masked k-space without targets and scored the
reconstruction files they sent back. mribench uses the same two formats so that a model from any
framework (BART, TensorFlow, JAX, MATLAB, a scanner vendor's reconstruction) can be benchmarked:

- an **input file** holds what a model is given, as fastMRI's test files do: ``kspace`` complex64
  (slices, coils, H, W), already masked; ``mask`` bool (W,), the sampled phase-encoding columns;
  the ``ismrmrd_header``; attrs ``acceleration`` and ``num_low_frequencies`` (and ``acquisition``,
  ``patient_id`` when the source has them). Nothing derived from the target (no
  ``reconstruction_rss``, no ``max`` or ``norm``). mribench adds the attr ``slices``: the source
  slice index of each row (a task may evaluate only some slices of a volume).
- a **reconstruction file** has the input file's name and a ``reconstruction`` dataset, real
  (rows, h, w): one image per input row, of the target's size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np

from mribench.errors import DataError

INPUT_ATTRS = ("acquisition", "patient_id")
"""Attrs copied from the source file into an input file (none of them derived from the target)."""
RECONSTRUCTION = "reconstruction"
"""Dataset name of a reconstruction file, as in fastMRI's submissions."""


class RowWriter(Protocol):
    """Writes rows ``start .. start + len(block)`` of an input file's ``kspace``."""

    def __call__(self, start: int, block: np.ndarray) -> None: ...


def source_header(path: str | os.PathLike[str]) -> tuple[bytes, dict[str, Any]]:
    """The raw ``ismrmrd_header`` bytes of a source file and its attrs that input files carry.

    Raises:
        DataError: the file or its header cannot be read.
    """
    p = Path(path)
    try:
        with h5py.File(p, "r") as hf:
            raw = hf["ismrmrd_header"][()]
            header = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
            attrs = {k: hf.attrs[k] for k in INPUT_ATTRS if k in hf.attrs}
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"expected a readable ismrmrd_header in {p.name}, got {type(e).__name__}: {e}") from None
    return header, attrs


@contextmanager
def input_file(
    path: str | os.PathLike[str],
    *,
    shape: tuple[int, int, int, int],
    mask: np.ndarray,
    header: bytes,
    acceleration: int,
    num_low_frequencies: int,
    slices: Sequence[int],
    attrs: dict[str, Any] | None = None,
) -> Iterator[RowWriter]:
    """Create an input file and yield a writer of its k-space rows; the file appears only when complete.

    Args:
        path: destination ``.h5`` file.
        shape: (rows, coils, H, W) of ``kspace``.
        mask: (W,) the volume's mask (nonzero on sampled columns), stored as bool.
        header: ``ismrmrd_header`` bytes.
        acceleration: the ``acceleration`` attr.
        num_low_frequencies: the ``num_low_frequencies`` attr.
        slices: source slice index of each row (the ``slices`` attr).
        attrs: further attrs (see :data:`INPUT_ATTRS`).

    Yields:
        ``write(start, block)`` with ``block`` complex (n, coils, H, W).

    Raises:
        ValueError: the mask or the slice list does not fit ``shape``.
    """
    p = Path(path)
    m = np.asarray(mask).reshape(-1)
    if m.shape != (shape[-1],) or len(slices) != shape[0]:
        raise ValueError(f"expected a mask of {shape[-1]} columns and {shape[0]} slices, got {m.shape}, {len(slices)}")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.partial{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as hf:
            ks = hf.create_dataset("kspace", shape=shape, dtype=np.complex64)

            def write(start: int, block: np.ndarray) -> None:
                ks[start : start + block.shape[0]] = block

            yield write
            hf.create_dataset("mask", data=m != 0)
            hf.create_dataset("ismrmrd_header", data=np.bytes_(header))
            hf.attrs["acceleration"] = int(acceleration)
            hf.attrs["num_low_frequencies"] = int(num_low_frequencies)
            hf.attrs["slices"] = np.asarray(slices, dtype=np.int64)
            for k, v in (attrs or {}).items():
                hf.attrs[k] = v
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


def read_reconstruction(path: str | os.PathLike[str], rows: Sequence[int], shape: tuple[int, int, int]) -> np.ndarray:
    """Rows of a reconstruction file.

    Args:
        path: the reconstruction file.
        rows: the rows to read (input-file rows), increasing.
        shape: the expected (rows, h, w) of its ``reconstruction`` dataset.

    Returns:
        float32 (len(rows), h, w).

    Raises:
        DataError: the file is missing or unreadable, or its ``reconstruction`` is missing, complex
            or not of ``shape``.
    """
    p = Path(path)
    want = tuple(int(s) for s in shape)
    if not p.is_file():
        raise DataError(f"expected a reconstruction file {p}, got no such file")
    try:
        with h5py.File(p, "r") as hf:
            if RECONSTRUCTION not in hf:
                raise DataError(f"expected a '{RECONSTRUCTION}' dataset in {p.name}, got keys {sorted(hf.keys())}")
            ds = hf[RECONSTRUCTION]
            if tuple(ds.shape) != want:
                raise DataError(
                    f"expected '{RECONSTRUCTION}' of shape {want} (one image per input slice, the target's "
                    f"size) in {p.name}, got {tuple(ds.shape)}"
                )
            if not (np.issubdtype(ds.dtype, np.floating) or np.issubdtype(ds.dtype, np.integer)):
                raise DataError(
                    f"expected a real '{RECONSTRUCTION}' (magnitude images) in {p.name}, got dtype {ds.dtype}"
                )
            idx = [int(r) for r in rows]
            sel: Any = slice(idx[0], idx[-1] + 1) if idx == list(range(idx[0], idx[-1] + 1)) else idx
            return np.asarray(ds[sel], dtype=np.float32)
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise DataError(f"expected a readable HDF5 reconstruction file {p.name}, got {type(e).__name__}: {e}") from None


__all__ = ["INPUT_ATTRS", "RECONSTRUCTION", "RowWriter", "input_file", "read_reconstruction", "source_header"]
