"""Under-sampling masks from ``fastmri.data.subsample``, seeded per volume or per task.

Three seed rules say which mask a volume gets (every slice of a volume, and every model evaluated on
it, always sees the same mask, as in both papers):

- ``file_hash`` (mribench's default): seed = sha256(file name : mask seed), one mask per volume;
- ``fastmri``: seed = ``tuple(map(ord, file_name))``, exactly what fastmri's data transforms do with
  ``use_seed=True`` and what Lin & Heckel (2024) use at test time, so their masks are reproduced;
- ``fixed``: seed = the mask seed alone, one mask per task (per k-space width), as Darestani, Liu
  & Heckel (2022) use one fixed random mask per dataset.

The centre of k-space is either a fraction of the columns (fastMRI, LH24) or a fixed number of
lines (D22's masks: 33 lines at 4x, 68 at 2x, whatever the width).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch
from fastmri.data.subsample import EquiSpacedMaskFunc, MaskFunc, RandomMaskFunc, temp_seed

#: Centre fraction by acceleration, as in the fastMRI challenge and Lin & Heckel's code
#: (``mask_func_params``: {2: 0.16, 3: 0.12, 4: 0.08, 8: 0.04, 16: 0.02}).
# 6x is not in the papers; 0.06 sits between their 4x and 8x values so that robustness curves
# over acceleration can include it.
CENTER_FRACTIONS: dict[int, float] = {2: 0.16, 3: 0.12, 4: 0.08, 6: 0.06, 8: 0.04, 16: 0.02}

MASK_TYPES = ("equispaced", "random")
SEED_RULES = ("file_hash", "fastmri", "fixed")


@dataclass(frozen=True)
class MaskChoice:
    """What a mask spec gives one volume: the acceleration, centre fraction and centre lines in effect."""

    acceleration: int
    center_fraction: float
    num_low_frequencies: int


@dataclass(frozen=True)
class MaskSpec:
    """A 1D Cartesian under-sampling pattern along the phase-encoding (last) dimension.

    Attributes:
        type: ``"equispaced"`` (fastmri EquiSpacedMaskFunc, random offset) or ``"random"``
            (fastmri RandomMaskFunc).
        acceleration: nominal acceleration factor (the first of :attr:`accelerations` for a mix).
        center_fraction: fraction of fully sampled central lines; ``None`` takes the standard value
            for the acceleration (:data:`CENTER_FRACTIONS`).
        seed: mixed with the file name (``file_hash``) or the whole seed (``fixed``); 0 for ``fastmri``.
        center_lines: a fixed number of fully sampled central lines instead of a fraction (D22).
        center_lines_min_width: with ``center_lines``: on k-space narrower than this many columns
            the count scales down to keep the fraction ``center_lines / center_lines_min_width``
            (mribench's rule for the embedded benchmark's small matrices; ``None``: never scale).
        seed_rule: ``file_hash``, ``fastmri`` or ``fixed`` (see the module docstring).
        accelerations: a mix of accelerations (fastmri picks one per volume with the seeded
            generator, as its MaskFunc does with several); empty for a single acceleration.
        center_fractions: the mix's centre fractions (default: the standard ones).
    """

    type: str = "equispaced"
    acceleration: int = 4
    center_fraction: float | None = None
    seed: int = 0
    center_lines: int | None = None
    center_lines_min_width: int | None = None
    seed_rule: str = "file_hash"
    accelerations: tuple[int, ...] = ()
    center_fractions: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in MASK_TYPES:
            raise ValueError(f"expected mask type in {MASK_TYPES}, got {self.type!r}")
        if self.seed_rule not in SEED_RULES:
            raise ValueError(f"expected mask seed_rule in {SEED_RULES}, got {self.seed_rule!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"expected a non-negative integer mask seed, got {self.seed!r}")
        if self.seed_rule == "fastmri" and self.seed != 0:
            raise ValueError(
                f"expected mask seed 0 with seed_rule fastmri (the file name is the seed), got {self.seed}"
            )
        accs = self.accelerations or (self.acceleration,)
        for a in accs:
            if not isinstance(a, int) or isinstance(a, bool) or a < 1:
                raise ValueError(f"expected positive integer accelerations, got {a!r}")
        if self.accelerations and self.acceleration != self.accelerations[0]:
            raise ValueError(
                f"expected acceleration to be the first of accelerations {self.accelerations}, got {self.acceleration}"
            )
        if self.center_fractions and len(self.center_fractions) != len(accs):
            raise ValueError(f"expected one centre fraction per acceleration {accs}, got {self.center_fractions}")
        if self.center_lines is not None:
            if self.center_fraction is not None or self.center_fractions:
                raise ValueError("expected either center_lines or a centre fraction, got both")
            if not isinstance(self.center_lines, int) or self.center_lines < 1:
                raise ValueError(f"expected a positive integer center_lines, got {self.center_lines!r}")
            if self.type != "random":
                raise ValueError("expected center_lines with random masks (D22's masks), got an equispaced mask")
            if len(accs) != 1:
                raise ValueError("expected center_lines with a single acceleration, got a mix")
        elif self.center_lines_min_width is not None:
            raise ValueError("expected center_lines_min_width only together with center_lines")
        if self.center_lines_min_width is not None and self.center_lines_min_width < 1:
            raise ValueError(f"expected a positive center_lines_min_width, got {self.center_lines_min_width}")
        if self.center_lines is None:
            fractions = self.center_fractions or (
                (self.center_fraction,) * len(accs) if self.center_fraction is not None else ()
            )
            for a, cf in zip(accs, fractions or (None,) * len(accs)):
                if cf is None and a not in CENTER_FRACTIONS:
                    raise ValueError(
                        f"expected an explicit center_fraction for acceleration {a} "
                        f"(standard ones: {sorted(CENTER_FRACTIONS)}), got none"
                    )
                if cf is not None and not 0 < cf < 1:
                    raise ValueError(f"expected center_fraction in (0, 1), got {cf}")

    # ------------------------------------------------------------------ what the spec means

    @property
    def choices(self) -> list[tuple[int, float | None]]:
        """(acceleration, centre fraction) pairs fastmri chooses from; the fraction is ``None`` for
        ``center_lines`` (it depends on the width)."""
        accs = self.accelerations or (self.acceleration,)
        if self.center_lines is not None:
            return [(accs[0], None)]
        if self.center_fractions:
            return list(zip(accs, self.center_fractions))
        if self.center_fraction is not None and len(accs) == 1:
            return [(accs[0], self.center_fraction)]
        return [(a, CENTER_FRACTIONS[a]) for a in accs]

    @property
    def cf(self) -> float:
        """The centre fraction of a single-acceleration fraction-based spec.

        Raises:
            ValueError: for ``center_lines`` specs or a mix (use :meth:`choice`).
        """
        if self.center_lines is not None or len(self.choices) != 1:
            raise ValueError(
                "expected a mask with one centre fraction, got "
                + ("a fixed number of centre lines" if self.center_lines is not None else "a mix of accelerations")
                + " (hint: MaskSpec.choice(num_cols, file_name) gives a volume's)"
            )
        cf = self.choices[0][1]
        assert cf is not None
        return cf

    def lines(self, num_cols: int) -> int:
        """The number of centre lines of a ``center_lines`` spec on ``num_cols`` columns."""
        if self.center_lines is None:
            raise ValueError("expected a spec with center_lines, got a centre fraction")
        n = self.center_lines
        if self.center_lines_min_width is not None and num_cols < self.center_lines_min_width:
            n = max(1, round(n * num_cols / self.center_lines_min_width))
        if n >= num_cols:
            raise ValueError(f"expected fewer than {num_cols} centre lines, got {n}")
        return n

    def func(self, num_cols: int | None = None) -> MaskFunc:
        """The fastmri mask function of this spec (``num_cols`` needed for ``center_lines``)."""
        cls = EquiSpacedMaskFunc if self.type == "equispaced" else RandomMaskFunc
        if self.center_lines is not None:
            if num_cols is None:
                raise ValueError("expected num_cols for a mask with a fixed number of centre lines, got None")
            # fastmri takes round(num_cols * fraction) centre lines: this fraction gives exactly lines()
            return cls(center_fractions=[self.lines(num_cols) / num_cols], accelerations=[self.acceleration])
        pairs = self.choices
        return cls(center_fractions=[cf for _, cf in pairs], accelerations=[a for a, _ in pairs])

    def mask_seed(self, file_name: str) -> int | tuple[int, ...]:
        """The seed fastmri's mask function gets for the volume ``file_name``."""
        if self.seed_rule == "fastmri":
            return tuple(map(ord, file_name))
        if self.seed_rule == "fixed":
            return self.seed
        return volume_seed(file_name, self.seed)

    def choice(self, num_cols: int, file_name: str) -> MaskChoice:
        """The acceleration, centre fraction and centre lines that volume ``file_name`` gets."""
        f = self.func(num_cols)
        with temp_seed(f.rng, self.mask_seed(file_name)):
            cf, acc = f.choose_acceleration()  # the first draw of fastmri's MaskFunc.__call__
        return MaskChoice(int(acc), float(cf), round(num_cols * float(cf)))

    # ------------------------------------------------------------------ (de)serialisation

    def to_dict(self) -> dict[str, object]:
        """A JSON-able record (what run.json stores); :meth:`from_dict` reads it back."""
        cf: float | None = None
        if self.center_lines is None and len(self.choices) == 1:
            cf = self.cf
        d: dict[str, object] = {
            "type": self.type,
            "acceleration": self.acceleration,
            "center_fraction": cf,
            "seed": self.seed,
        }
        if self.seed_rule != "file_hash":
            d["seed_rule"] = self.seed_rule
        if self.center_lines is not None:
            d["center_lines"] = self.center_lines
            if self.center_lines_min_width is not None:
                d["center_lines_min_width"] = self.center_lines_min_width
        if self.accelerations:
            d["accelerations"] = list(self.accelerations)
            d["center_fractions"] = [c for _, c in self.choices]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MaskSpec:
        """A spec from :meth:`to_dict` output or a task YAML's ``mask`` mapping.

        In YAML, ``acceleration`` may be a list (a mix) and ``center_fraction`` a matching list.

        Raises:
            ValueError: unknown keys or invalid values.
        """
        known = set(MASK_KEYS)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"expected mask keys {sorted(known)}, got {sorted(unknown)}")
        kw = dict(d)
        acc = kw.pop("acceleration", 4)
        accs = kw.pop("accelerations", None)
        cf = kw.pop("center_fraction", None)
        cfs = kw.pop("center_fractions", None)
        if isinstance(acc, (list, tuple)):
            accs, acc = list(acc), (acc[0] if acc else 4)
            if isinstance(cf, (list, tuple)):
                cfs, cf = list(cf), None
        if accs:
            accs = tuple(accs)
            if cfs is None and cf is not None:
                raise ValueError("expected a list of centre fractions for a mix of accelerations, got one number")
            if cfs is not None and kw.get("center_lines") is None:
                cfs = tuple(float(c) for c in cfs)
            else:
                cfs = ()
            if len(accs) == 1:  # a one-element list is a single acceleration
                return cls(acceleration=accs[0], center_fraction=(cfs[0] if cfs else cf), **kw)
            return cls(acceleration=accs[0], accelerations=accs, center_fractions=cfs, **kw)
        if kw.get("center_lines") is not None:
            cf = None  # to_dict writes center_fraction None for center_lines specs
        return cls(acceleration=acc, center_fraction=cf, **kw)


MASK_KEYS = (
    "type",
    "acceleration",
    "center_fraction",
    "seed",
    "center_lines",
    "center_lines_min_width",
    "seed_rule",
    "accelerations",
    "center_fractions",
)
"""Keys of a mask mapping (task YAML ``mask:`` and run.json ``masks``)."""


def volume_seed(file_name: str, extra: int = 0) -> int:
    """Stable 32-bit seed from a file name (independent of Python's hash randomisation)."""
    digest = hashlib.sha256(f"{file_name}:{extra}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def volume_mask(spec: MaskSpec, num_cols: int, file_name: str, padding: tuple[int, int] | None = None) -> torch.Tensor:
    """The mask of one volume.

    Args:
        spec: the mask spec.
        num_cols: number of phase-encoding columns W of the k-space.
        file_name: the volume's file name (seeds the mask unless the spec's rule is ``fixed``).
        padding: ``(padding_left, padding_right)`` from the header; columns outside are zeroed,
            as fastmri's VarNet transform does, since they were never acquired.

    Returns:
        float32 mask of shape (W,) with ones on sampled columns.
    """
    mask, _ = spec.func(num_cols)((1, num_cols, 1), seed=spec.mask_seed(file_name))
    mask = mask.reshape(num_cols).to(torch.float32)
    if padding is not None:
        left, right = padding
        if 0 <= left < right <= num_cols:
            mask[:left] = 0
            mask[right:] = 0
    return mask
