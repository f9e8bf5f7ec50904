"""Region SSIM on fastMRI+ boxes (Lin & Heckel): flip convention, upsampled small crops, one score per
box, size split, ignored boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fastmri import evaluate

from mribench.metrics import BoxWarning, region_ssim, region_ssim_boxes, region_ssim_large, region_ssim_small
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


def test_a_5x4_box_equals_the_lin_heckel_rule_computed_by_hand() -> None:
    """Box (x=10, y=20, w=5, h=4): flip, crop 4x5, upsample by 7/4 nearest -> 7x8, SSIM with the volume max."""
    target, recon = _images()
    recon = recon.clone()
    recon[:, H - 24 : H - 20, 10:15] += 0.3  # error inside the box (stored rows of flipped rows 20..23)
    vmax = 2.0
    box = (10, 20, 5, 4)
    ours = region_ssim_boxes(target, recon, vmax, [[box], [box]])
    # By hand: the flipped image's rows 20..23 and columns 10..14; nearest upsampling by s = 7/4
    # gives floor(4 s) = 7 rows and floor(5 s) = 8 columns, source index floor(i / s).
    rows = [int(i / 1.75) for i in range(7)]  # [0, 0, 1, 1, 2, 2, 3]
    cols = [int(j / 1.75) for j in range(8)]  # [0, 0, 1, 1, 2, 2, 3, 4]
    assert rows == [0, 0, 1, 1, 2, 2, 3] and cols == [0, 0, 1, 1, 2, 2, 3, 4]
    for i in range(2):
        ft = np.flip(target[i].numpy(), axis=0)[20:24, 10:15]
        fr = np.flip(recon[i].numpy(), axis=0)[20:24, 10:15]
        up_t, up_r = ft[np.ix_(rows, cols)], fr[np.ix_(rows, cols)]  # (7, 8)
        ref = evaluate.ssim(up_t[None].astype(np.float64), up_r[None].astype(np.float64), maxval=vmax)
        assert ours[i] == [pytest.approx(ref.item(), abs=1e-6)]
    assert ours[0][0] < 0.99
    # the box is never grown: tissue outside it does not change the score
    outside = recon.clone()
    outside[:, : H - 24] += 1.0
    outside[:, H - 20 :] += 1.0
    assert region_ssim_boxes(target, outside, vmax, [[box], [box]]) == ours


def test_boxes_are_clipped_never_grown() -> None:
    assert place_box((10, 20, 3, 2), H, W) == (20, 22, 10, 13)
    assert place_box((40, 60, 20, 20), H, W) == (60, 64, 40, 48)  # clipped to the image
    assert place_box((0, 0, 1, 1), H, W) == (0, 1, 0, 1)
    target, recon = _images()
    v = region_ssim(target, target.clone(), 2.0, [[(2, H - 3, 1, 1)], [(30, 30, 2, 2)]])
    assert float(v[0]) == pytest.approx(1.0, abs=1e-12) and float(v[1]) == pytest.approx(1.0, abs=1e-12)


def test_one_score_per_box_in_annotation_order() -> None:
    target, recon = _images()
    small, large = (0, H - 5, 6, 5), (0, H - 16, 16, 16)  # areas 30 and 256 (limit 30.72)
    with pytest.warns(BoxWarning):
        allb = region_ssim_boxes(target, recon, 2.0, [[large, small, (5, 5, 0, 3)], []])
    assert len(allb[0]) == 3 and allb[1] == [] and math.isnan(allb[0][2])
    sm = region_ssim_boxes(target, recon, 2.0, [[large, small], []], size="small")
    lg = region_ssim_boxes(target, recon, 2.0, [[large, small], []], size="large")
    assert math.isnan(sm[0][0]) and sm[0][1] == allb[0][1]
    assert lg[0][0] == allb[0][0] and math.isnan(lg[0][1])


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
