"""SSIM inside fastMRI+ pathology boxes (small / large / all).

fastMRI+ boxes are ``(x, y, width, height)`` in pixels of the VERTICALLY FLIPPED image (the
annotators viewed the reconstructions upside down relative to the stored arrays), so both images
are flipped with ``torch.flip(.., dims=[-2])`` before cropping. Boxes narrower or shorter than the
7x7 SSIM window are enlarged to 7 pixels in that dimension, symmetrically about their centre (the
odd pixel goes to the right / bottom in flipped coordinates) and shifted back inside the image if
that crosses an edge. Boxes are clipped to the image; zero-size boxes and boxes entirely outside
the image are ignored with a :class:`BoxWarning`. The data range is the one given (mribench: the
target volume's max, as for whole-image SSIM). A box is "small" if its annotated area is at most 1%
of the image area, "large" otherwise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Literal

import torch
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


def _grow(lo: int, hi: int, size: int) -> tuple[int, int]:
    """Enlarge [lo, hi) to at least WIN pixels, symmetrically, kept inside [0, size)."""
    deficit = WIN - (hi - lo)
    if deficit <= 0:
        return lo, hi
    lo -= deficit // 2
    hi += deficit - deficit // 2
    if lo < 0:
        lo, hi = 0, hi - lo
    if hi > size:
        lo, hi = lo - (hi - size), size
    return lo, hi


def place_box(box: Sequence[object], height: int, width: int) -> tuple[int, int, int, int] | None:
    """Turn a fastMRI+ box into crop limits on the flipped image, or None if it must be ignored.

    Args:
        box: ``(x, y, width, height)`` in pixels of the vertically flipped image.
        height: image height H (>= 7).
        width: image width W (>= 7).

    Returns:
        ``(row0, row1, col0, col1)`` half-open limits on the FLIPPED image, each side >= 7 pixels;
        None for a zero-size box or one entirely outside the image.

    Raises:
        ValueError: a box that is not four integers or has a negative size.
    """
    if len(box) != 4:
        raise ValueError(f"expected a box (x, y, width, height), got {box!r}")
    x, y, w, h = (_as_int(v, n) for v, n in zip(box, ("x", "y", "width", "height"), strict=True))
    if w < 0 or h < 0:
        raise ValueError(f"expected a box with width, height >= 0, got {box!r}")
    if w == 0 or h == 0:
        return None
    c0, c1 = max(0, x), min(width, x + w)
    r0, r1 = max(0, y), min(height, y + h)
    if c0 >= c1 or r0 >= r1:
        return None
    r0, r1 = _grow(r0, r1, height)
    c0, c1 = _grow(c0, c1, width)
    return r0, r1, c0, c1


def region_ssim(
    target: Tensor,
    recon: Tensor,
    data_range: float | Tensor,
    boxes: Sequence[Sequence[Sequence[object]]],
    *,
    size: BoxSize = "all",
) -> Tensor:
    """Mean SSIM over each slice's fastMRI+ boxes.

    Args:
        target: reference images, (H, W) or (B, H, W), real, H and W >= 7.
        recon: reconstructions, same shape and device.
        data_range: a number or a (B,) tensor (mribench: the target volume's max).
        boxes: one list per slice of ``(x, y, width, height)`` boxes in fastMRI+ (flipped) coordinates.
        size: ``"all"`` boxes, only ``"small"`` ones (area <= 1% of the image) or only ``"large"`` ones.

    Returns:
        (B,) float64 tensor on the input device; NaN for a slice without (usable) boxes of that size.

    Raises:
        ValueError: bad shapes, data range, ``size``, or a ``boxes`` list not of length B.
    """
    if size not in ("all", "small", "large"):
        raise ValueError(f"expected size 'all', 'small' or 'large', got {size!r}")
    target, recon = as_batch(target, recon, min_size=WIN)
    batch, height, width = target.shape
    dr = as_data_range(data_range, batch, target.device)
    if len(boxes) != batch:
        raise ValueError(f"expected one box list per slice ({batch}), got {len(boxes)}")
    limit = SMALL_AREA_FRACTION * height * width
    flipped_t = torch.flip(target, dims=[-2])
    flipped_r = torch.flip(recon, dims=[-2])
    out = torch.full((batch,), math.nan, dtype=torch.float64, device=target.device)
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
                continue
            area = _as_int(box[2], "width") * _as_int(box[3], "height")
            if (size == "small" and area > limit) or (size == "large" and area <= limit):
                continue
            r0, r1, c0, c1 = placed
            values.append(ssim(flipped_t[i, r0:r1, c0:c1], flipped_r[i, r0:r1, c0:c1], dr[i]))
        if values:
            out[i] = torch.cat(values).mean()
    return out


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
