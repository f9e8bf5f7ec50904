"""Training data: the slices of a split, a fresh random mask per sample, batches of equal shape.

- :class:`TrainingSlices` reads k-space and target of one slice per item with h5py and masks it
  with a mask drawn afresh for every (epoch, item): the seed comes from
  ``np.random.default_rng((seed, epoch, item))`` and is handed to the fastmri mask function
  (``EquiSpacedMaskFunc``: equispaced lines with a random offset, or ``RandomMaskFunc``), whose
  own ``RandomState`` is local to it. The global NumPy/torch RNGs are never used, and the masks of
  epoch ``e`` are a pure function of ``(seed, e)``, so a resumed training sees the same masks.
  Columns outside the header's ``(padding_left, padding_right)`` are zeroed as in
  :func:`mribench.physics.masks.volume_mask` (they were never acquired).
- :class:`ValidationSlices` uses the task's fixed per-volume mask (exactly what the evaluator uses).
- Batching: fastMRI volumes differ in matrix size and coil count, so a batch may only hold slices of
  equal shape. We collate by shape (:class:`ShapeBatchSampler` groups item indices by their
  k-space/target shape taken from the slice index, shuffles within and across groups with a local
  generator seeded by ``(seed, epoch)``, and shards batches across DDP ranks). With
  ``batch_size=1`` this is the fastMRI setting. We chose this over batch size 1 + gradient
  accumulation because it keeps one optimiser step per batch (the schedule counts steps) and
  uses the hardware better on the common case of equal-shape data.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch
from fastmri.data.subsample import MaskFunc

from mribench.api.model import SliceMeta
from mribench.data.slices import SliceRequest, read_sample, slice_meta, volume_max
from mribench.errors import DataError
from mribench.physics.masks import MASK_TYPES, MaskSpec, volume_mask

SHAPE_COLUMNS = ("coils", "kspace_h", "kspace_w", "target_h", "target_w")


@dataclass(frozen=True)
class MaskSampler:
    """Random training masks at one or several accelerations.

    Attributes:
        type: ``"equispaced"`` or ``"random"`` (fastmri mask functions).
        accelerations: accelerations to draw from (uniformly, per sample).
        center_fractions: matching centre fractions; ``None`` takes the standard ones.
        center_lines: a fixed number of centre lines (Darestani et al.) instead of a fraction.
        center_lines_min_width: below this width the centre lines scale with it.
        task_mask: instead of fresh masks, every sample gets this task mask of its volume
            (:func:`mribench.physics.masks.volume_mask`), the same in every epoch: Darestani et al.
            train on one fixed mask (one acceleration only).
    """

    type: str = "equispaced"
    accelerations: tuple[int, ...] = (4,)
    center_fractions: tuple[float, ...] | None = None
    center_lines: int | None = None
    center_lines_min_width: int | None = None
    task_mask: MaskSpec | None = None

    def __post_init__(self) -> None:
        if self.type not in MASK_TYPES:
            raise ValueError(f"expected mask type in {MASK_TYPES}, got {self.type!r}")
        if not self.accelerations:
            raise ValueError("expected at least one acceleration, got none")
        if self.center_fractions is not None and len(self.center_fractions) != len(self.accelerations):
            raise ValueError(
                f"expected one centre fraction per acceleration {self.accelerations}, got {self.center_fractions}"
            )
        if self.task_mask is not None and len(self.accelerations) != 1:
            raise ValueError(f"expected one acceleration with fixed (task) masks, got {self.accelerations}")
        for spec in self.specs():  # validates accelerations / centre fractions
            del spec

    @classmethod
    def from_spec(cls, spec: MaskSpec, accelerations: Sequence[int] | None = None, fixed: bool = False) -> MaskSampler:
        """The task's mask type at its acceleration (or at ``accelerations``, standard centre fractions).

        ``fixed``: the task's own per-volume masks instead of fresh ones (needs ``accelerations`` unset).
        """
        if accelerations:
            if fixed:
                raise ValueError("expected no training accelerations with the task's fixed masks, got some")
            return cls(spec.type, tuple(int(a) for a in accelerations))
        if fixed:
            return cls(spec.type, (spec.acceleration,), task_mask=spec)
        if spec.center_lines is not None:  # D22: a fixed number of centre lines
            return cls(spec.type, (spec.acceleration,), None, spec.center_lines, spec.center_lines_min_width)
        pairs = spec.choices
        return cls(spec.type, tuple(a for a, _ in pairs), tuple(float(c or 0) for _, c in pairs))

    def specs(self) -> list[MaskSpec]:
        cfs = self.center_fractions or (None,) * len(self.accelerations)
        return [
            MaskSpec(
                self.type,
                int(a),
                cf,
                center_lines=self.center_lines,
                center_lines_min_width=self.center_lines_min_width,
            )
            for a, cf in zip(self.accelerations, cfs, strict=True)
        ]

    def funcs(self) -> list[tuple[MaskSpec, MaskFunc | None]]:
        """(spec, mask function) pairs; the function is None when it depends on the width (centre lines)."""
        return [(s, s.func() if s.center_lines is None else None) for s in self.specs()]


def sample_seed(seed: int, epoch: int, item: int) -> tuple[int, int]:
    """(acceleration choice, mask seed) for one sample, from a local generator keyed by (seed, epoch, item)."""
    rng = np.random.default_rng((int(seed), int(epoch), int(item)))
    return int(rng.integers(1 << 30)), int(rng.integers(1 << 32))


def _limit_padding(mask: torch.Tensor, padding: tuple[int, int]) -> torch.Tensor:
    left, right = padding
    if 0 <= left < right <= mask.shape[-1]:
        mask[:left] = 0
        mask[right:] = 0
    return mask


class _SliceReader(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Shared reading of one slice (k-space, target) from the slice-index rows."""

    def __init__(
        self,
        rows: pd.DataFrame,
        root: str | os.PathLike[str],
        full_kspace: bool = False,
        sens_cache: str | os.PathLike[str] | None = None,
        sens_preset: str = "mribench",
    ) -> None:
        if rows.empty:
            raise DataError("expected slices to train/validate on, got an empty split")
        missing = [
            c
            for c in ("file", "slice", "path", "padding_left", "padding_right", "volume_max", *SHAPE_COLUMNS)
            if c not in rows.columns
        ]
        if missing:
            raise ValueError(f"expected slice-index rows with columns {missing}, got {list(rows.columns)}")
        self.rows = rows.reset_index(drop=True)
        self.root = Path(root)
        self.full_kspace = full_kspace
        self.sens_cache = Path(sens_cache) if sens_cache is not None else None
        self.sens_preset = sens_preset
        self._records = self.rows.to_dict("records")

    def __len__(self) -> int:
        return len(self._records)

    def shape_key(self, i: int) -> tuple[int, ...]:
        """(coils, kspace_h, kspace_w, target_h, target_w) of item ``i`` (from the index)."""
        r = self._records[i]
        return tuple(int(r[c]) for c in SHAPE_COLUMNS)

    def shape_keys(self) -> list[tuple[int, ...]]:
        return [self.shape_key(i) for i in range(len(self))]

    def _read(self, i: int) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
        r = self._records[i]
        path = self.root / str(r["path"])
        try:
            with h5py.File(path, "r") as hf:
                kspace = torch.from_numpy(np.asarray(hf["kspace"][int(r["slice"])], dtype=np.complex64))  # (C, H, W)
                target = torch.from_numpy(
                    np.asarray(hf["reconstruction_rss"][int(r["slice"])], dtype=np.float32)
                )  # (h, w)
        except (OSError, KeyError, ValueError) as e:
            raise DataError(f"expected a readable slice {r['slice']} of {path}, got {type(e).__name__}: {e}") from None
        return r, kspace, target

    def _item(
        self,
        i: int,
        r: dict[str, Any],
        kspace: torch.Tensor,
        target: torch.Tensor,
        mask: torch.Tensor,
        num_low: int,
        acceleration: int,
    ) -> dict[str, Any]:
        w = kspace.shape[-1]
        mask = mask.reshape(1, 1, w)  # (1, 1, W)
        vmax = volume_max(self.root / str(r["path"]), r["volume_max"])
        masked = kspace * mask  # (C, H, W)
        item: dict[str, Any] = {
            "masked_kspace": masked,
            "mask": mask,
            "target": target,
            "volume_max": torch.tensor(vmax),
            "num_low_frequencies": int(num_low),
            "acceleration": int(acceleration),
            "file": str(r["file"]),
            "slice": int(r["slice"]),
            "padding": torch.tensor([int(r["padding_left"]), int(r["padding_right"])]),
        }
        if self.full_kspace:
            item["kspace"] = kspace
        if self.sens_cache is not None:
            item["sens"] = self._sensitivities(self.sens_cache, r, masked, int(num_low), self.sens_preset)
        return item

    @staticmethod
    def _sensitivities(
        cache: Path, r: dict[str, Any], masked_kspace: torch.Tensor, num_low: int, preset: str = "mribench"
    ) -> torch.Tensor:
        """ESPIRiT maps (C, H, W) of a slice (a :data:`mribench.physics.sensitivity.MAP_PRESETS` preset), cached on disk.

        The maps depend on the fully sampled centre only (``num_low`` columns, identical under every
        training mask of that centre size), so one file per (volume, slice, centre size, preset)
        serves all epochs; ESPIRiT is far too slow to rerun per step.
        """
        suffix = "" if preset == "mribench" else f"_{preset}"  # files of the earlier preset keep their names
        f = cache / f"{Path(str(r['file'])).stem}_{int(r['slice'])}_{num_low}{suffix}.npy"
        if f.is_file():
            return torch.from_numpy(np.load(f))
        from mribench.physics.sensitivity import sensitivities

        sens = sensitivities(masked_kspace, num_low, preset)  # complex64 (C, H, W)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f".{f.stem}.tmp{os.getpid()}.npy")
        np.save(tmp, sens.numpy())
        os.replace(tmp, f)
        return sens


class TrainingSlices(_SliceReader):
    """One slice per item, masked with a fresh random mask per (epoch, item) (or the task's, ``fixed``).

    Items are dicts: ``masked_kspace`` complex64 (C, H, W); ``mask`` float32 (1, 1, W); ``target``
    float32 (h, w); ``volume_max`` float32 (); ``num_low_frequencies``, ``acceleration``, ``slice``
    ints; ``file`` str; ``padding`` int64 (2,); with ``full_kspace=True`` also ``kspace`` (C, H, W).

    Args:
        rows: slice-index rows (e.g. ``make_splits(task, index)["train_P"].rows``).
        root: the data root the rows' ``path`` column is relative to.
        masks: what masks to draw: one sampler for all rows, or one per row (joint P+Q training
            when P and Q are acquired differently).
        seed: training seed (masks depend on ``(seed, epoch, item)`` only).
        full_kspace: also return the fully sampled k-space (self-supervised losses need it).
        sens_cache: folder caching ESPIRiT coil sensitivities; when set, items also hold ``sens``
            complex64 (C, H, W) (the complex U-Net's self-supervised losses need them).
        sens_preset: the maps' preset (:data:`mribench.physics.sensitivity.MAP_PRESETS`).
    """

    def __init__(
        self,
        rows: pd.DataFrame,
        root: str | os.PathLike[str],
        masks: MaskSampler | Sequence[MaskSampler],
        seed: int = 0,
        full_kspace: bool = False,
        sens_cache: str | os.PathLike[str] | None = None,
        sens_preset: str = "mribench",
    ) -> None:
        super().__init__(rows, root, full_kspace, sens_cache, sens_preset)
        per_row = [masks] * len(self) if isinstance(masks, MaskSampler) else list(masks)
        if len(per_row) != len(self):
            raise ValueError(f"expected one mask sampler or one per row ({len(self)}), got {len(per_row)}")
        self.masks = per_row
        self.seed = int(seed)
        self.epoch = 0
        self._funcs = {m: m.funcs() for m in set(per_row)}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose masks ``__getitem__`` draws (call before creating the loader iterator)."""
        self.epoch = int(epoch)

    def mask_for(self, i: int, num_cols: int, padding: tuple[int, int]) -> tuple[torch.Tensor, int, int]:
        """The mask of item ``i`` in the current epoch: ``(mask (W,), num_low_frequencies, acceleration)``."""
        sampler = self.masks[i]
        if sampler.task_mask is not None:  # the task's mask of this volume (as the evaluator uses it), every epoch
            file = str(self._records[i]["file"])
            mask = volume_mask(sampler.task_mask, num_cols, file, padding)
            c = sampler.task_mask.choice(num_cols, file)
            return mask, c.num_low_frequencies, c.acceleration
        choice, mseed = sample_seed(self.seed, self.epoch, i)
        funcs = self._funcs[sampler]
        spec, func = funcs[choice % len(funcs)]
        mask, num_low = (func or spec.func(num_cols))((1, num_cols, 1), seed=mseed)
        return _limit_padding(mask.reshape(num_cols).to(torch.float32), padding), int(num_low), spec.acceleration

    def __getitem__(self, i: int) -> dict[str, Any]:
        r, kspace, target = self._read(i)
        mask, num_low, acc = self.mask_for(i, kspace.shape[-1], (int(r["padding_left"]), int(r["padding_right"])))
        return self._item(i, r, kspace, target, mask, num_low, acc)


class ValidationSlices(_SliceReader):
    """One slice per item with the task's fixed per-volume mask, read by the evaluator's slice source
    (:func:`mribench.data.slices.read_sample`), so validation sees exactly what :func:`mribench.evaluate` sees.

    Items as :class:`TrainingSlices`.
    """

    def __init__(
        self, rows: pd.DataFrame, root: str | os.PathLike[str], spec: MaskSpec, full_kspace: bool = False
    ) -> None:
        super().__init__(rows, root, full_kspace)
        self.spec = spec

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self._records[i]
        req = SliceRequest("validation", str(r["file"]), self.root / str(r["path"]), (int(r["slice"]),), self.spec, r)
        s = read_sample(req, full_kspace=self.full_kspace)
        item: dict[str, Any] = {
            "masked_kspace": s.masked_kspace[0],  # (C, H, W)
            "mask": s.mask[0],  # (1, 1, W)
            "target": s.target[0],  # (h, w)
            "volume_max": torch.tensor(s.meta.volume_max),
            "num_low_frequencies": s.meta.num_low_frequencies,
            "acceleration": s.meta.acceleration,
            "file": s.meta.file,
            "slice": s.meta.slices[0],
            "padding": torch.tensor(s.meta.padding),
        }
        if s.kspace is not None:
            item["kspace"] = s.kspace[0]
        return item


class ShapeBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of item indices with equal shape key, reshuffled per epoch, sharded across ranks.

    Args:
        keys: one hashable shape key per item.
        batch_size: items per batch (the last batch of a shape group may be smaller).
        shuffle: shuffle within groups and the batch order (with a generator seeded by (seed, epoch)).
        seed: shuffling seed.
        rank, world_size: this process's shard; batches are padded by wrap-around so that every rank
            gets the same number of batches (as ``DistributedSampler`` does).
    """

    def __init__(
        self,
        keys: Sequence[Hashable],
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"expected batch_size >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"expected 0 <= rank < world_size, got rank {rank} of {world_size}")
        self.keys = list(keys)
        self.batch_size, self.shuffle, self.seed = int(batch_size), shuffle, int(seed)
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch."""
        rng = np.random.default_rng((self.seed, self.epoch, 7))
        groups: dict[Hashable, list[int]] = {}
        for i, k in enumerate(self.keys):
            groups.setdefault(k, []).append(i)
        out: list[list[int]] = []
        for k in sorted(groups, key=repr):
            idx = np.asarray(groups[k])
            if self.shuffle:
                idx = idx[rng.permutation(len(idx))]
            out.extend(idx[j : j + self.batch_size].tolist() for j in range(0, len(idx), self.batch_size))
        if self.shuffle:
            out = [out[j] for j in rng.permutation(len(out))]
        if self.world_size > 1 and out:
            n = -(-len(out) // self.world_size) * self.world_size
            out = (out * (n // len(out) + 1))[:n]
            out = out[self.rank :: self.world_size]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())


def make_loader(dataset: _SliceReader, sampler: ShapeBatchSampler, num_workers: int = 0) -> torch.utils.data.DataLoader:  # type: ignore[type-arg]
    """A DataLoader over ``dataset`` with ``sampler``'s batches.

    It gets its own seeded ``torch.Generator`` (the DataLoader otherwise draws its worker base seed
    from the global RNG); workers are not persistent, so ``set_epoch`` takes effect at every new
    iterator.
    """
    gen = torch.Generator().manual_seed(sampler.seed * 1_000_003 + sampler.epoch)
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=num_workers, generator=gen, persistent_workers=False
    )


def batch_meta(batch: dict[str, Any]) -> SliceMeta:
    """The :class:`SliceMeta` of a collated batch.

    Training batches may mix volumes (same shape only). The per-volume fields (file, padding,
    volume max) then come from the first item; the built-in architectures use only
    ``target_size`` and ``num_low_frequencies``, which is 0 ("derive it from the mask", fastmri's
    convention) when the batch mixes centre sizes.
    """
    lows = batch["num_low_frequencies"]
    lows_list = [int(x) for x in (lows.tolist() if isinstance(lows, torch.Tensor) else lows)]
    accs = batch["acceleration"]
    accs_list = [int(x) for x in (accs.tolist() if isinstance(accs, torch.Tensor) else accs)]
    pad = batch["padding"][0].tolist()
    return slice_meta(
        {"file": str(batch["file"][0]), "padding_left": pad[0], "padding_right": pad[1]},
        [int(s) for s in batch["slice"]],
        (int(batch["target"].shape[-2]), int(batch["target"].shape[-1])),
        num_low_frequencies=lows_list[0] if len(set(lows_list)) == 1 else 0,
        acceleration=accs_list[0],
        volume_max=float(batch["volume_max"][0]),
    )


def split_holdout(rows: pd.DataFrame, fraction: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hold out whole volumes for validation (deterministic: by a stable hash of the file name).

    Args:
        rows: slice-index rows.
        fraction: fraction of volumes to hold out (at least one when there are two or more volumes).
        seed: mixed into the hash.

    Returns:
        ``(train_rows, holdout_rows)``.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"expected a holdout fraction in (0, 1), got {fraction}")
    files = sorted(set(rows["file"]), key=lambda f: hashlib.sha256(f"{seed}:holdout:{f}".encode()).digest())
    if len(files) < 2:
        raise DataError(f"expected at least 2 volumes to hold some out for validation, got {len(files)}")
    n = min(max(1, round(fraction * len(files))), len(files) - 1)
    held = set(files[:n])
    mask = rows["file"].isin(held)
    return rows[~mask].reset_index(drop=True), rows[mask].reset_index(drop=True)


def spread_subset(rows: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """At most ``limit`` rows spread evenly over the (file, slice)-sorted rows (all when ``None``)."""
    rows = rows.sort_values(["file", "slice"]).reset_index(drop=True)
    if limit is None or len(rows) <= limit:
        return rows
    if limit < 1:
        raise ValueError(f"expected a validation limit >= 1, got {limit}")
    idx = np.unique(np.linspace(0, len(rows) - 1, limit).round().astype(int))
    return rows.iloc[idx].reset_index(drop=True)


__all__ = [
    "MaskSampler",
    "ShapeBatchSampler",
    "TrainingSlices",
    "ValidationSlices",
    "batch_meta",
    "make_loader",
    "sample_seed",
    "split_holdout",
    "spread_subset",
]
