"""The reconstruction-model contract every evaluated model implements (no heavy imports: torch only for typing)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SliceMeta:
    """What a model may know about the slices of one batch (all from one volume).

    Attributes:
        file: volume file name.
        slices: slice indices in the batch, length B.
        target_size: (h, w) the reconstruction must have.
        padding: (padding_left, padding_right) acquired phase-encoding columns.
        num_low_frequencies: fully sampled central columns of the mask.
        acceleration: nominal acceleration of the mask.
        volume_max: the target volume max (SSIM data range), for models that need a scale.
        attrs: the file's remaining metadata (protocol, field strength, coils, ...).
    """

    file: str
    slices: tuple[int, ...]
    target_size: tuple[int, int]
    padding: tuple[int, int]
    num_low_frequencies: int
    acceleration: int
    volume_max: float
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """A batch of slices of one volume as a model sees them, with the target it is scored against.

    Attributes:
        masked_kspace: complex64 (B, C, H, W), zeros where not sampled.
        mask: float32 (B, 1, 1, W), ones on sampled phase-encoding columns.
        target: float32 (B, h, w), the RSS reference.
        meta: :class:`SliceMeta` of the batch.
        kspace: complex64 (B, C, H, W), the fully sampled k-space, only when asked for
            (self-supervised validation losses need it); else ``None``.
    """

    masked_kspace: torch.Tensor
    mask: torch.Tensor
    target: torch.Tensor
    meta: SliceMeta
    kspace: torch.Tensor | None = None


@runtime_checkable
class ReconModel(Protocol):
    """A reconstruction model.

    ``__call__(masked_kspace, mask, meta)``:

    Args:
        masked_kspace: complex64 (B, C, H, W), zeros where not sampled.
        mask: float32 (B, 1, 1, W), ones on sampled phase-encoding columns.
        meta: :class:`SliceMeta` of the batch.

    Returns:
        real float tensor (B, h, w) with (h, w) = ``meta.target_size``, on any device.

    Models that adapt at test time (TTT) implement the same protocol.
    """

    def __call__(self, masked_kspace: torch.Tensor, mask: torch.Tensor, meta: SliceMeta) -> torch.Tensor: ...


@runtime_checkable
class ReportsSliceStats(Protocol):
    """Optional: a model that reports statistics per slice of its last call (e.g. test-time-training steps).

    ``slice_stats()`` returns one mapping per slice of the last ``__call__``, in the order of
    ``meta.slices``; the evaluator records the key ``steps`` (an int) as the slice's ``ttt_steps``.
    """

    def slice_stats(self) -> Sequence[Mapping[str, Any]]: ...


@dataclass(frozen=True)
class ModelInfo:
    """Identity of a loaded model, recorded in every result.

    Attributes:
        name: how the user named it.
        kind: ``builtin``, ``checkpoint`` or ``user``.
        sha256: hash of the weights / source that defines it.
        details: architecture, config, source path, ...
    """

    name: str
    kind: str
    sha256: str
    details: dict[str, Any] = field(default_factory=dict)
