"""SSIM inside fastMRI+ pathology boxes, one score per box (Lin & Heckel 2024).

The rule is LH24's (``cut_out_pathology`` in MLI-lab/mri_data_diversity, ``main.py``):

1. fastMRI+ boxes are ``(x, y, width, height)`` in pixels of the VERTICALLY FLIPPED image (the
   annotators viewed the reconstructions upside down relative to the stored arrays), so both images
   are flipped with ``torch.flip(.., dims=[-2])`` and the box is cropped, ``[y:y+h, x:x+w]``
   (clipped to the image, as Python slicing does);
2. when the crop's shorter side ``m = min(h, w)`` is below the 7x7 SSIM window, both crops are
   **upsampled** by ``7 / m`` with ``torch.nn.functional.interpolate(.., scale_factor=7 / m)``
   (nearest neighbour, the call LH24 make); the box is never grown into the surrounding tissue;
3. SSIM (``ssim@fastmri-v1``: 7x7 uniform window, K1 0.01, K2 0.03) with the given data range
   (mribench and LH24: the target volume's max);
4. one score **per box**; a box is "small" if its annotated area ``w * h`` is at most 1% of the
   image area ``H * W``, "large" otherwise (LH24 select boxes by ``min_area < area <= max_area`` on
   the same ratio; the 1% threshold is mribench's).

Zero-size boxes and boxes entirely outside the image are not scored (a :class:`BoxWarning`).
:func:`region_ssim_boxes` returns the per-box scores (NaN for boxes not scored or of the other size
class), :func:`region_ssim` their mean per slice.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from mribench.metrics._checks import as_batch, as_data_range
from mribench.metrics.structural import WIN, ssim

Box = tuple[int, int, int, int]  # (x, y, width, height) on the vertically flipped image
BoxSize = Literal["all", "small", "large"]
SMALL_AREA_FRACTION = 0.01


class BoxWarning(UserWarning):
    """A fastMRI+ box was ignored (zero size or outside the image)."""


def _as_int(v: object, what: str) -> int:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"expected an integer box {what}, got {v!r}") from None
    if not math.isfinite(f) or f != int(f):
        raise ValueError(f"expected an integer box {what}, got {v!r}")
    return int(f)


def _parse_box(box: Sequence[object]) -> Box:
    if len(box) != 4:
        raise ValueError(f"expected a box (x, y, width, height), got {box!r}")
    x, y, w, h = (_as_int(v, n) for v, n in zip(box, ("x", "y", "width", "height"), strict=True))
    if w < 0 or h < 0:
        raise ValueError(f"expected a box with width, height >= 0, got {box!r}")
    return x, y, w, h


def place_box(box: Sequence[object], height: int, width: int) -> tuple[int, int, int, int] | None:
    """Crop limits of a fastMRI+ box on the flipped image, or None if it must be ignored.

    Args:
        box: ``(x, y, width, height)`` in pixels of the vertically flipped image.
        height: image height H.
        width: image width W.

    Returns:
        ``(row0, row1, col0, col1)`` half-open limits on the FLIPPED image, clipped to it (never
        enlarged); None for a zero-size box or one entirely outside the image.

    Raises:
        ValueError: a box that is not four integers or has a negative size.
    """
    x, y, w, h = _parse_box(box)
    if w == 0 or h == 0:
        return None
    c0, c1 = max(0, x), min(width, x + w)
    r0, r1 = max(0, y), min(height, y + h)
    if c0 >= c1 or r0 >= r1:
        return None
    return r0, r1, c0, c1


def upsample_small_crop(crop: Tensor) -> Tensor:
    """LH24's rule for crops smaller than the SSIM window: nearest upsampling by ``7 / min(h, w)``.

    Args:
        crop: (h, w) real tensor.

    Returns:
        The crop itself when ``min(h, w) >= 7``, else ``interpolate(crop, scale_factor=7 / m)``
        (nearest; output ``floor(h * 7 / m) x floor(w * 7 / m)``, both >= 7).
    """
    m = min(crop.shape[-2], crop.shape[-1])
    if m >= WIN:
        return crop
    return F.interpolate(crop[None, None], scale_factor=WIN / m, mode="nearest")[0, 0]


def region_ssim_boxes(
    target: Tensor,
    recon: Tensor,
    data_range: float | Tensor,
    boxes: Sequence[Sequence[Sequence[object]]],
    *,
    size: BoxSize = "all",
) -> list[list[float]]:
    """SSIM of every fastMRI+ box (LH24's rule), per slice, in annotation order.

    Args:
        target: reference images, (H, W) or (B, H, W), real.
        recon: reconstructions, same shape and device.
        data_range: a number or a (B,) tensor (mribench: the target volume's max).
        boxes: one list per slice of ``(x, y, width, height)`` boxes in fastMRI+ (flipped) coordinates.
        size: score ``"all"`` boxes, only ``"small"`` ones (area <= 1% of the image) or only ``"large"``.

    Returns:
        B lists, one float per box of the slice (same order as ``boxes``): its SSIM, or NaN for a box
        of the other size class or one that is ignored (zero size, outside the image).

    Raises:
        ValueError: bad shapes, data range, ``size``, or a ``boxes`` list not of length B.
    """
    if size not in ("all", "small", "large"):
        raise ValueError(f"expected size 'all', 'small' or 'large', got {size!r}")
    target, recon = as_batch(target, recon)
    batch, height, width = target.shape
    dr = as_data_range(data_range, batch, target.device)
    if len(boxes) != batch:
        raise ValueError(f"expected one box list per slice ({batch}), got {len(boxes)}")
    limit = SMALL_AREA_FRACTION * height * width
    flipped_t = torch.flip(target, dims=[-2])
    flipped_r = torch.flip(recon, dims=[-2])
    out: list[list[float]] = []
    for i, slice_boxes in enumerate(boxes):
        values = []
        for box in slice_boxes:
            placed = place_box(box, height, width)
            if placed is None:
                warnings.warn(
                    f"ignoring fastMRI+ box {tuple(box)!r} of slice {i}: zero size or outside the "
                    f"{height}x{width} image",
                    BoxWarning,
                    stacklevel=2,
                )
                values.append(math.nan)
                continue
            _, _, w, h = _parse_box(box)
            if (size == "small" and w * h > limit) or (size == "large" and w * h <= limit):
                values.append(math.nan)
                continue
            r0, r1, c0, c1 = placed
            t = upsample_small_crop(flipped_t[i, r0:r1, c0:c1])
            r = upsample_small_crop(flipped_r[i, r0:r1, c0:c1])
            values.append(float(ssim(t, r, dr[i])[0]))
        out.append(values)
    return out


def mean_per_slice(per_box: list[list[float]], device: torch.device | str = "cpu") -> Tensor:
    """(B,) float64 mean of each slice's finite box scores; NaN for a slice with none."""
    out = []
    for values in per_box:
        finite = [v for v in values if math.isfinite(v)]
        out.append(sum(finite) / len(finite) if finite else math.nan)
    return torch.tensor(out, dtype=torch.float64, device=device)


def region_ssim(
    target: Tensor,
    recon: Tensor,
    data_range: float | Tensor,
    boxes: Sequence[Sequence[Sequence[object]]],
    *,
    size: BoxSize = "all",
) -> Tensor:
    """Mean over each slice's boxes of :func:`region_ssim_boxes` (the per-slice view).

    Summaries should average over boxes, not slices (LH24 score each box once): the evaluator stores
    the per-box scores and :func:`mribench.results.summarize` weighs slices by their box count.

    Args:
        target: reference images, (H, W) or (B, H, W), real.
        recon: reconstructions, same shape and device.
        data_range: a number or a (B,) tensor (mribench: the target volume's max).
        boxes: one list per slice of ``(x, y, width, height)`` boxes in fastMRI+ (flipped) coordinates.
        size: ``"all"`` boxes, only ``"small"`` ones (area <= 1% of the image) or only ``"large"`` ones.

    Returns:
        (B,) float64 tensor on the input device; NaN for a slice without (usable) boxes of that size.
    """
    per_box = region_ssim_boxes(target, recon, data_range, boxes, size=size)
    return mean_per_slice(per_box, target.device)


def region_ssim_small(
    target: Tensor, recon: Tensor, data_range: float | Tensor, boxes: Sequence[Sequence[Sequence[object]]]
) -> Tensor:
    """:func:`region_ssim` over boxes of area <= 1% of the image; (B,) float64, NaN if none."""
    return region_ssim(target, recon, data_range, boxes, size="small")


def region_ssim_large(
    target: Tensor, recon: Tensor, data_range: float | Tensor, boxes: Sequence[Sequence[Sequence[object]]]
) -> Tensor:
    """:func:`region_ssim` over boxes of area > 1% of the image; (B,) float64, NaN if none."""
    return region_ssim(target, recon, data_range, boxes, size="large")
