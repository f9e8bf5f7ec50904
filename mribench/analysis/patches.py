"""Random foreground patches of RSS target images (input of the CLIP similarity analysis).

Rule (documented, deterministic):

* Intensities: each image is divided by its own ``norm_percentile``-th percentile (99.9 by default,
  as for LPIPS/DISTS) and clipped to [0, 1]; patches are cut from this normalised image.
* Background: a pixel is foreground when it exceeds ``threshold`` (10%) of the image's
  ``percentile``-th percentile (99th); a patch is kept when at least ``min_foreground`` (50%) of its
  pixels are foreground. Mostly-background patches are discarded.
* Positions: top-left corners are drawn uniformly from a generator seeded by
  ``sha256(seed, file, slice)``, so an image's patches do not depend on which other images are
  processed with it. Up to ``tries_per_patch * per_image`` candidates are drawn; the first
  ``per_image`` distinct candidates that pass the rule are kept, in draw order (an image with little
  foreground yields fewer patches, possibly none).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from mribench.analysis._checks import AnalysisInputError, check_positive_int

ALGORITHM_VERSION = 1


class PatchRecord(NamedTuple):
    """Where a patch came from: image id, patch index within the image and top-left corner."""

    file: str
    slice: int
    patch_index: int
    top: int
    left: int


@dataclass(frozen=True)
class BackgroundRule:
    """When a patch counts as mostly background (see the module docstring).

    Attributes:
        threshold: a pixel is foreground above ``threshold * percentile(image, percentile)``.
        percentile: reference percentile of the image intensities.
        min_foreground: minimum foreground fraction of a kept patch.
    """

    threshold: float = 0.1
    percentile: float = 99.0
    min_foreground: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold:
            raise AnalysisInputError(f"expected threshold >= 0, got {self.threshold}")
        if not 0.0 <= self.percentile <= 100.0:
            raise AnalysisInputError(f"expected percentile in [0, 100], got {self.percentile}")
        if not 0.0 <= self.min_foreground <= 1.0:
            raise AnalysisInputError(f"expected min_foreground in [0, 1], got {self.min_foreground}")

    def key(self) -> str:
        """Stable string identifying the rule (used in cache keys)."""
        return f"t{self.threshold!r}-p{self.percentile!r}-f{self.min_foreground!r}"


@dataclass(frozen=True)
class PatchSpec:
    """Everything that determines which patches an image yields and their pixel values.

    Attributes:
        size: patch side length in pixels.
        per_image: number of patches wanted per image.
        seed: base seed (combined with each image's id).
        rule: the background rule.
        norm_percentile: intensity normalisation percentile.
        tries_per_patch: candidate positions drawn per wanted patch.
    """

    size: int = 80
    per_image: int = 8
    seed: int = 0
    rule: BackgroundRule = BackgroundRule()
    norm_percentile: float = 99.9
    tries_per_patch: int = 16

    def __post_init__(self) -> None:
        check_positive_int("size", self.size)
        check_positive_int("per_image", self.per_image)
        check_positive_int("tries_per_patch", self.tries_per_patch)
        if not 0.0 < self.norm_percentile <= 100.0:
            raise AnalysisInputError(f"expected norm_percentile in (0, 100], got {self.norm_percentile}")

    def positions_key(self) -> str:
        """Stable string identifying how positions are chosen."""
        return (
            f"v{ALGORITHM_VERSION}-s{self.size}-k{self.per_image}-seed{self.seed}-{self.rule.key()}"
            f"-n{self.norm_percentile!r}-r{self.tries_per_patch}"
        )

    def pixels_key(self) -> str:
        """Stable string identifying how a patch's pixels are derived from its position."""
        return f"v{ALGORITHM_VERSION}-s{self.size}-n{self.norm_percentile!r}"


def image_seed(seed: int, file: str, slice_: int) -> int:
    """A 63-bit seed derived from the base seed and a stable image id (file, slice)."""
    digest = hashlib.sha256(f"{seed}\x00{file}\x00{slice_}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def as_image(image: Any) -> np.ndarray:
    """Return a real image as a float32 array (H, W); raise on other shapes or complex input."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise AnalysisInputError(f"expected an image of shape (H, W), got shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise AnalysisInputError("expected a real (RSS magnitude) image, got a complex array")
    return arr.astype(np.float32, copy=False)


def normalise_image(image: np.ndarray, norm_percentile: float) -> np.ndarray:
    """Divide (H, W) by its ``norm_percentile``-th percentile and clip to [0, 1] (zeros if that is <= 0)."""
    ref = float(np.percentile(image, norm_percentile))
    if not ref > 0:
        return np.zeros_like(image, dtype=np.float32)
    return np.clip(image / ref, 0.0, 1.0).astype(np.float32)


def patch_positions(image: np.ndarray, spec: PatchSpec, file: str, slice_: int) -> list[tuple[int, int]]:
    """Top-left corners of the patches kept for one image.

    Args:
        image: (H, W) real image (any intensity scale; the rule is scale-invariant).
        spec: patch specification.
        file: stable id of the image's volume.
        slice_: slice index in that volume.

    Returns:
        Up to ``spec.per_image`` distinct ``(top, left)`` tuples.
    """
    img = as_image(image)
    h, w = img.shape
    if h < spec.size or w < spec.size:
        raise AnalysisInputError(
            f"expected images of at least {spec.size}x{spec.size}, got {h}x{w} ({file}, slice {slice_})"
        )
    ref = float(np.percentile(img, spec.rule.percentile))
    if not ref > 0:
        return []
    fg = (img > spec.rule.threshold * ref).astype(np.int64)
    integral = np.zeros((h + 1, w + 1), dtype=np.int64)
    integral[1:, 1:] = fg.cumsum(0).cumsum(1)
    rng = np.random.default_rng(image_seed(spec.seed, file, slice_))
    n_cand = spec.per_image * spec.tries_per_patch
    tops = rng.integers(0, h - spec.size + 1, size=n_cand)
    lefts = rng.integers(0, w - spec.size + 1, size=n_cand)
    s = spec.size
    fg_count = (
        integral[tops + s, lefts + s] - integral[tops, lefts + s] - integral[tops + s, lefts] + integral[tops, lefts]
    )
    ok = fg_count >= spec.rule.min_foreground * s * s
    kept: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for t, lf in zip(tops[ok].tolist(), lefts[ok].tolist(), strict=True):
        if (t, lf) not in seen:
            seen.add((t, lf))
            kept.append((t, lf))
            if len(kept) == spec.per_image:
                break
    return kept


def cut_patches(normalised: np.ndarray, positions: Sequence[tuple[int, int]], size: int) -> np.ndarray:
    """Cut square patches. (H, W) normalised image -> (P, size, size) float32."""
    out = np.empty((len(positions), size, size), dtype=np.float32)
    for i, (t, lf) in enumerate(positions):
        out[i] = normalised[t : t + size, lf : lf + size]
    return out


def extract_patches(
    images: Sequence[Any] | np.ndarray,
    size: int = 80,
    per_image: int = 8,
    seed: int = 0,
    rule: BackgroundRule | None = None,
    ids: Sequence[tuple[str, int]] | None = None,
    norm_percentile: float = 99.9,
) -> tuple[np.ndarray, list[PatchRecord]]:
    """Random foreground patches of several images.

    Args:
        images: sequence of (H, W) arrays/tensors, or one (N, H, W) array/tensor, of RSS targets.
        size: patch side length.
        per_image: number of patches wanted per image (fewer when foreground is scarce).
        seed: base seed; each image's generator is seeded by ``(seed, file, slice)``.
        rule: background rule (default :class:`BackgroundRule`()).
        ids: (N,) stable ``(file, slice)`` ids of the images; default ``("", i)``.
        norm_percentile: intensity normalisation percentile (patches are in [0, 1]).

    Returns:
        ``(patches, provenance)``: float32 (P, size, size) in [0, 1] and P :class:`PatchRecord`.
    """
    spec = PatchSpec(
        size=size, per_image=per_image, seed=seed, rule=rule or BackgroundRule(), norm_percentile=norm_percentile
    )
    n = len(images)
    id_list = list(ids) if ids is not None else [("", i) for i in range(n)]
    if len(id_list) != n:
        raise AnalysisInputError(f"expected one id per image ({n}), got {len(id_list)}")
    chunks: list[np.ndarray] = []
    records: list[PatchRecord] = []
    for image, (file, sl) in zip(images, id_list, strict=True):
        img = as_image(image)
        pos = patch_positions(img, spec, file, int(sl))
        chunks.append(cut_patches(normalise_image(img, spec.norm_percentile), pos, size))
        records.extend(PatchRecord(file, int(sl), i, t, lf) for i, (t, lf) in enumerate(pos))
    patches = np.concatenate(chunks) if chunks else np.empty((0, size, size), np.float32)
    return patches, records
