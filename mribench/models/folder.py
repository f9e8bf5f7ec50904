"""Reconstructions computed elsewhere, served as a model: the scoring side of ``mribench score``.

A model from any framework reconstructs the input files of ``mribench export-inputs`` and writes
one reconstruction file per input file (fastMRI's submission layout, see
:mod:`mribench.data.exchange`). :class:`ReconstructionFolder` hands those images to the ordinary
evaluator, so they are scored, stored, summarised, compared and submitted exactly like the output
of any other model.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from mribench.api.model import SliceMeta
from mribench.data.exchange import read_reconstruction
from mribench.errors import DataError
from mribench.physics.masks import MaskSpec, volume_mask


@dataclass(frozen=True)
class ExpectedVolume:
    """A volume whose reconstruction the folder must hold.

    Attributes:
        split: its split (the file lies in the folder ``<split>/``).
        file: the volume's file name (also the reconstruction's file name).
        slices: the source slice index of each input row, increasing.
        mask: the split's mask (tells splits apart when a split file puts a volume in two).
    """

    split: str
    file: str
    slices: tuple[int, ...]
    mask: MaskSpec

    @property
    def relpath(self) -> str:
        """Path of its reconstruction file under the folder."""
        return f"{self.split}/{self.file}"


class ReconstructionFolder:
    """A :class:`~mribench.api.model.ReconModel` that reads its output from reconstruction files.

    A call for slices of volume ``meta.file`` returns their rows of ``<folder>/<split>/<file>``'s
    ``reconstruction`` dataset, whose shape must be (input rows, *meta.target_size*). A missing,
    unreadable or mis-shaped file raises :class:`~mribench.errors.DataError`, which the evaluator
    records as the failure of those slices; non-finite values fail only their slices.

    Args:
        folder: the reconstruction folder.
        volumes: the volumes the evaluation reads.
    """

    def __init__(self, folder: str | os.PathLike[str], volumes: Iterable[ExpectedVolume]) -> None:
        self.folder = Path(folder)
        self._by_file: dict[str, list[ExpectedVolume]] = {}
        for v in volumes:
            self._by_file.setdefault(v.file, []).append(v)

    def volume(self, meta: SliceMeta, mask: torch.Tensor) -> ExpectedVolume:
        """The expected volume a batch comes from (its file, and its mask when the file is in two splits)."""
        cands = self._by_file.get(meta.file, [])
        if len(cands) > 1:
            given = mask.reshape(-1, mask.shape[-1])[0].detach().cpu() != 0
            same = [
                v
                for v in cands
                if torch.equal(volume_mask(v.mask, int(mask.shape[-1]), v.file, meta.padding) != 0, given)
            ]
            cands = same or cands
        if not cands:
            raise DataError(f"expected {meta.file} among the volumes of the evaluation, got an unplanned volume")
        return cands[0]

    def __call__(self, masked_kspace: torch.Tensor, mask: torch.Tensor, meta: SliceMeta) -> torch.Tensor:
        v = self.volume(meta, mask)
        row = {s: i for i, s in enumerate(v.slices)}
        missing = [s for s in meta.slices if s not in row]
        if missing:
            raise DataError(f"expected slices of {v.relpath} among its input rows {list(v.slices)}, got {missing}")
        shape = (len(v.slices), *meta.target_size)
        path = self.folder / v.relpath
        if not path.is_file():
            raise DataError(f"expected a reconstruction file {v.relpath} in {self.folder}, got no such file")
        recon = read_reconstruction(path, [row[s] for s in meta.slices], shape)
        return torch.from_numpy(recon).to(masked_kspace.device)


def folder_identity(folder: str | os.PathLike[str], volumes: Iterable[ExpectedVolume]) -> tuple[str, list[str]]:
    """sha256 over the reconstruction files the evaluation reads (their paths and bytes), in order.

    Returns:
        ``(sha256, missing)``: the hash and the expected files that are absent.
    """
    root = Path(folder)
    h = hashlib.sha256()
    missing: list[str] = []
    for rel in sorted({v.relpath for v in volumes}):
        p = root / rel
        if not p.is_file():
            missing.append(rel)
            continue
        h.update(f"{rel}\0{p.stat().st_size}\0".encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest(), missing


__all__ = ["ExpectedVolume", "ReconstructionFolder", "folder_identity"]
