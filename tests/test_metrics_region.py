"""Region SSIM on fastMRI+ boxes: flip convention, tiny boxes, size split, ignored boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fastmri import evaluate

from mribench.metrics import BoxWarning, region_ssim, region_ssim_large, region_ssim_small, ssim
from mribench.metrics.region import place_box

H, W = 64, 48


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    """Target and a reconstruction whose error is confined to the top-left 16x16 of the STORED array."""
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, H, W, generator=g) + 0.5
    recon = target.clone()
    recon[:, :16, :16] += 0.5 * torch.randn(2, 16, 16, generator=g)
    return target, recon


def test_boxes_are_on_the_vertically_flipped_image() -> None:
    target, recon = _images()
    # Stored rows 0..15 are rows H-16..H-1 of the flipped image.
    box_on_error = (0, H - 16, 16, 16)
    box_on_stored_top = (0, 0, 16, 16)  # in flipped coordinates: stored bottom, error-free
    v = region_ssim(target, recon, 2.0, [[box_on_error], [box_on_stored_top]])
    assert float(v[0]) < 0.9
    assert float(v[1]) == pytest.approx(1.0, abs=1e-12)
    # Same value as skimage on the explicitly flipped crop.
    flipped_t = np.flip(target.numpy(), axis=-2)
    flipped_r = np.flip(recon.numpy(), axis=-2)
    ref = evaluate.ssim(
        np.ascontiguousarray(flipped_t[:1, H - 16 :, :16]),
        np.ascontiguousarray(flipped_r[:1, H - 16 :, :16]),
        maxval=2.0,
    )
    assert float(v[0]) == pytest.approx(ref.item(), abs=1e-6)


def test_mean_over_boxes_and_nan_without_boxes() -> None:
    target, recon = _images()
    b1, b2 = (0, H - 16, 16, 16), (20, 10, 20, 30)
    v = region_ssim(target, recon, 2.0, [[b1, b2], []])
    parts = [region_ssim(target[:1], recon[:1], 2.0, [[b]])[0] for b in (b1, b2)]
    assert float(v[0]) == pytest.approx(float(sum(parts)) / 2, abs=1e-12)
    assert math.isnan(float(v[1]))


def test_tiny_boxes_grow_to_seven_pixels_symmetrically_and_stay_inside() -> None:
    assert place_box((10, 20, 3, 2), H, W) == (18, 25, 8, 15)  # 3 -> 7 wide: 2 left, 2 right
    assert place_box((0, 0, 1, 1), H, W) == (0, 7, 0, 7)  # at the corner: shifted inside
    assert place_box((W - 1, H - 1, 1, 1), H, W) == (H - 7, H, W - 7, W)
    assert place_box((40, 60, 20, 20), H, W) == (57, 64, 40, 48)  # clipped to 4 rows, regrown to 7
    target, recon = _images()
    v = region_ssim(target, recon, 2.0, [[(2, H - 3, 1, 1)], [(30, 30, 2, 2)]])
    r0, r1, c0, c1 = place_box((2, H - 3, 1, 1), H, W)  # type: ignore[misc]
    ft, fr = torch.flip(target, dims=[-2]), torch.flip(recon, dims=[-2])
    assert float(v[0]) == pytest.approx(float(ssim(ft[0, r0:r1, c0:c1], fr[0, r0:r1, c0:c1], 2.0)[0]), abs=1e-12)
    assert float(v[1]) == pytest.approx(1.0, abs=1e-12)


def test_small_and_large_split_by_one_percent_of_the_image_area() -> None:
    target, recon = _images()
    limit = 0.01 * H * W  # 30.72 px
    small, large = (0, H - 5, 6, 5), (0, H - 16, 16, 16)  # areas 30 and 256
    assert 6 * 5 <= limit < 16 * 16
    boxes = [[small, large], [small]]
    vs = region_ssim_small(target, recon, 2.0, boxes)
    vl = region_ssim_large(target, recon, 2.0, boxes)
    assert float(vs[0]) == pytest.approx(float(region_ssim(target[:1], recon[:1], 2.0, [[small]])[0]), abs=1e-12)
    assert float(vl[0]) == pytest.approx(float(region_ssim(target[:1], recon[:1], 2.0, [[large]])[0]), abs=1e-12)
    assert not math.isnan(float(vs[1])) and math.isnan(float(vl[1]))


def test_zero_size_and_outside_boxes_are_ignored_with_a_warning() -> None:
    target, recon = _images()
    with pytest.warns(BoxWarning, match="ignoring"):
        v = region_ssim(target, recon, 2.0, [[(5, 5, 0, 10)], [(W + 5, 5, 4, 4), (0, 0, 8, 8)]])
    assert math.isnan(float(v[0])) and not math.isnan(float(v[1]))


@pytest.mark.parametrize(
    "boxes",
    [[[(1, 2, 3)], []], [[(1, 2, -3, 4)], []], [[(1, 2, 3.5, 4)], []], [[(1, 2, 3, 4)]]],
)
def test_bad_boxes_raise(boxes: list) -> None:
    target, recon = _images()
    with pytest.raises(ValueError, match="expected"):
        region_ssim(target, recon, 2.0, boxes)
