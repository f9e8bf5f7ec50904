"""Under-sampling masks from ``fastmri.data.subsample``, seeded per volume.

The seed of a volume's mask derives from its file name (and the task's mask seed), so every slice
of a volume, and every model evaluated on it, sees the same mask, as in the papers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from fastmri.data.subsample import EquiSpacedMaskFunc, MaskFunc, RandomMaskFunc

#: Centre fraction by acceleration, as in the fastMRI challenge and both papers.
# 6x is not in the papers; 0.06 sits between their 4x and 8x values so that robustness curves
# over acceleration can include it.
CENTER_FRACTIONS: dict[int, float] = {2: 0.16, 3: 0.12, 4: 0.08, 6: 0.06, 8: 0.04, 16: 0.02}

MASK_TYPES = ("equispaced", "random")


@dataclass(frozen=True)
class MaskSpec:
    """A 1D Cartesian under-sampling pattern along the phase-encoding (last) dimension.

    Attributes:
        type: ``"equispaced"`` (fastmri EquiSpacedMaskFunc, random offset) or ``"random"``
            (fastmri RandomMaskFunc).
        acceleration: nominal acceleration factor.
        center_fraction: fraction of fully sampled central lines; ``None`` takes the standard value
            for the acceleration (:data:`CENTER_FRACTIONS`).
        seed: extra seed mixed with the file name (lets a task ask for other masks).
    """

    type: str = "equispaced"
    acceleration: int = 4
    center_fraction: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.type not in MASK_TYPES:
            raise ValueError(f"expected mask type in {MASK_TYPES}, got {self.type!r}")
        if not isinstance(self.acceleration, int) or self.acceleration < 1:
            raise ValueError(f"expected a positive integer acceleration, got {self.acceleration!r}")
        if self.center_fraction is None and self.acceleration not in CENTER_FRACTIONS:
            raise ValueError(
                f"expected an explicit center_fraction for acceleration {self.acceleration} "
                f"(standard ones: {sorted(CENTER_FRACTIONS)}), got none"
            )
        if self.center_fraction is not None and not 0 < self.center_fraction < 1:
            raise ValueError(f"expected center_fraction in (0, 1), got {self.center_fraction}")

    @property
    def cf(self) -> float:
        """The centre fraction in effect."""
        return self.center_fraction if self.center_fraction is not None else CENTER_FRACTIONS[self.acceleration]

    def func(self) -> MaskFunc:
        """The fastmri mask function for this spec."""
        cls = EquiSpacedMaskFunc if self.type == "equispaced" else RandomMaskFunc
        return cls(center_fractions=[self.cf], accelerations=[self.acceleration])

    def to_dict(self) -> dict[str, object]:
        return {"type": self.type, "acceleration": self.acceleration, "center_fraction": self.cf, "seed": self.seed}


def volume_seed(file_name: str, extra: int = 0) -> int:
    """Stable 32-bit seed from a file name (independent of Python's hash randomisation)."""
    digest = hashlib.sha256(f"{file_name}:{extra}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def volume_mask(spec: MaskSpec, num_cols: int, file_name: str, padding: tuple[int, int] | None = None) -> torch.Tensor:
    """The mask of one volume.

    Args:
        spec: the mask spec.
        num_cols: number of phase-encoding columns W of the k-space.
        file_name: the volume's file name (seeds the mask).
        padding: ``(padding_left, padding_right)`` from the header; columns outside are zeroed,
            as fastmri's VarNet transform does, since they were never acquired.

    Returns:
        float32 mask of shape (W,) with ones on sampled columns.
    """
    mask, _ = spec.func()((1, num_cols, 1), seed=volume_seed(file_name, spec.seed))
    mask = mask.reshape(num_cols).to(torch.float32)
    if padding is not None:
        left, right = padding
        if 0 <= left < right <= num_cols:
            mask[:left] = 0
            mask[right:] = 0
    return mask
