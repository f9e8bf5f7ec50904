"""The built-in metric definitions: profile ids, pinned parameters, references and adapters.

Changing anything a number depends on (window, constants, data-range rule, preprocessing, weights)
must bump the profile id's version so stored results are never compared across definitions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from mribench.metrics import perceptual, pixel, region
from mribench.metrics.artifact import laplacian_variance
from mribench.metrics.normalize import normalize_output
from mribench.metrics.structural import K1, K2, WIN, ssim
from mribench.metrics.weights import SPECS as WEIGHT_SPECS
from mribench.metrics.weights import require_weights

FASTMRI = "Zbontar et al. 2018, fastMRI: An Open Dataset and Benchmarks for Accelerated MRI (fastmri.evaluate)"
SKIMAGE = "scikit-image structural_similarity (defaults: win_size=7, uniform filter, use_sample_covariance=True)"
WANG = "Wang et al. 2004, Image Quality Assessment: From Error Visibility to Structural Similarity"
LIN_HECKEL = "Lin & Heckel 2024, Robustness of Deep Learning for Accelerated MRI: Benefits of Diverse Training Data"
LPIPS_REF = "Zhang et al. 2018, The Unreasonable Effectiveness of Deep Features as a Perceptual Metric (lpips v0.1)"
DISTS_REF = (
    "Ding et al. 2020, Image Quality Assessment: Unifying Structure and Texture Similarity "
    "(the authors' DISTS_pytorch 0.1)"
)
FASTMRI_PLUS = "Zhao et al. 2022, fastMRI+: Clinical pathology annotations for knee and brain MRI"
DARESTANI = (
    "Darestani, Liu & Heckel 2022, Test-Time Training Can Close the Natural Distribution Shift Performance Gap "
    "in Deep Learning Based Compressed Sensing (public notebooks: normalize() then compare_ssim with "
    "data_range=gt.max())"
)

VOLUME_MAX = "max of the target volume (fastMRI's default maxval), passed per slice"
PERCENTILE_PREP = (
    "each image / its own 99.9th percentile (torch.quantile, linear), clipped to [0, 1], repeated to 3 channels"
)

SSIM_PARAMS: dict[str, Any] = {
    "window": f"{WIN}x{WIN} uniform",
    "K1": K1,
    "K2": K2,
    "covariance": f"sample, normalised by NP/(NP-1) with NP={WIN * WIN}",
    "mean_over": f"valid region: pixels whose window fits (border of {(WIN - 1) // 2} px excluded, as skimage's crop)",
    "data_range": VOLUME_MAX,
    "precision": "float64",
    "equals": "fastmri.evaluate.ssim(gt[None], pred[None], maxval) per slice, to 1e-6",
}

SSIM_CAVEATS = (
    "- window: skimage/fastMRI use a 7x7 uniform window; Wang et al. 2004 (and torchmetrics, piq,",
    "  pytorch_msssim, MATLAB ssim) use an 11x11 Gaussian (sigma 1.5).",
    "- covariance: skimage uses the sample covariance NP/(NP-1); the paper uses the population one.",
    "- borders: skimage averages only where the window fits; others pad (zero/reflect) or crop differently.",
    "- data range: fastMRI uses the target VOLUME max; per-slice max, 1.0 after normalisation or the",
    "  dtype range give different C1/C2 and can shift SSIM by several 0.01 on dark slices.",
    "- input: magnitude vs normalised images, float32 vs float64 and cropping to 320x320 all change values.",
    "Compare SSIM across papers only when all of these match; mribench pins them in the profile id.",
)


# When two values of a metric are the same number (mribench.metrics.registry.Tolerance: equal when
# |a - b| <= absolute + relative * |a|). Used by `mribench check` (a metric is always allowed at least
# this drop, so float-level differences never fail) and `mribench leaderboard audit` (a re-evaluated
# slice must match within it). Measured on MRIBench-Sim anatomy (zero-filled, 65 slices): perturbing
# every reconstructed pixel by a relative 1e-5 (about 80 float32 ulps; another BLAS or GPU kernel)
# changes SSIM by <= 1.1e-6, PSNR by <= 4.8e-7 relative, NMSE by <= 1.5e-6 relative and the
# Laplacian variance by <= 6.6e-6 relative. The tolerances leave a margin of about 100x above that and
# stay 20x below the smallest drop a gate usually allows (SSIM 0.002). Not part of the hashed
# definition: they say how results are compared, not how they are computed.
_SSIM_TOL = {"absolute": 1e-4, "why": "bounded in [-1, 1]; float-level changes move it by ~1e-6"}
_REL_TOL = {"relative": 1e-4, "why": "scale-dependent; float-level changes move it by ~1e-6 relative"}
_NET_TOL = {"absolute": 1e-4, "why": "float32 network distance of order 0.1"}
TOLERANCES: dict[str, dict[str, Any]] = {
    "ssim": _SSIM_TOL,
    "ssim_d22": _SSIM_TOL,
    "region_ssim": _SSIM_TOL,
    "region_ssim_small": _SSIM_TOL,
    "region_ssim_large": _SSIM_TOL,
    "psnr": {"relative": 1e-4, "why": "dB, a log of the MSE: 1e-4 relative is 0.003 dB at 30 dB"},
    "nmse": _REL_TOL,
    "laplacian_variance": _REL_TOL,
    "lpips_vgg": _NET_TOL,
    "lpips_alex": _NET_TOL,
    "dists": _NET_TOL,
}
"""Keyword arguments of each built-in metric's :class:`~mribench.metrics.registry.Tolerance`."""


def _ssim(target: Tensor, recon: Tensor, *, data_range: Tensor, boxes: Any = None) -> Tensor:
    return ssim(target, recon, data_range)


def _ssim_d22(target: Tensor, recon: Tensor, *, data_range: Tensor, boxes: Any = None) -> Tensor:
    # D22's convention: the reconstruction is mapped to the target's mean and population std, and
    # the data range is the SLICE target's max (the volume max passed in is not used)
    t = target.to(torch.float64)
    r = normalize_output(recon.to(torch.float64), t)
    return ssim(t, r, t.amax(dim=(-2, -1)))


def _psnr(target: Tensor, recon: Tensor, *, data_range: Tensor, boxes: Any = None) -> Tensor:
    return pixel.psnr(target, recon, data_range)


def _nmse(target: Tensor, recon: Tensor, *, data_range: Tensor, boxes: Any = None) -> Tensor:
    return pixel.nmse(target, recon)


def _laplacian(target: Tensor, recon: Tensor, *, data_range: Tensor, boxes: Any = None) -> Tensor:
    return laplacian_variance(target, recon, data_range)


def _region(size: region.BoxSize) -> Callable[..., Tensor]:
    def fn(target: Tensor, recon: Tensor, *, data_range: Tensor, boxes: Any = None) -> Tensor:
        return region.region_ssim(target, recon, data_range, boxes, size=size)

    return fn


def _region_boxes(size: region.BoxSize) -> Callable[..., list[list[float]]]:
    def fn(target: Tensor, recon: Tensor, *, data_range: Tensor, boxes: Any = None) -> list[list[float]]:
        return region.region_ssim_boxes(target, recon, data_range, boxes, size=size)

    return fn


def _lpips(net: perceptual.Net) -> Callable[..., Tensor]:
    def fn(target: Tensor, recon: Tensor, *, data_range: Tensor, boxes: Any = None) -> Tensor:
        return perceptual.lpips(target, recon, net=net)

    return fn


def _dists(target: Tensor, recon: Tensor, *, data_range: Tensor, boxes: Any = None) -> Tensor:
    return perceptual.dists(target, recon)


def _needs(metric: str) -> Callable[[], None]:
    def check() -> None:
        require_weights(metric)

    return check


def _weights_params(names: tuple[str, ...]) -> dict[str, str]:
    return {
        n: f"{WEIGHT_SPECS[n].description}; sha256 of upstream file {WEIGHT_SPECS[n].package.member_sha256}"
        for n in names
    }


def builtin_specs(cls: type) -> list[Any]:
    """The built-in :class:`~mribench.metrics.registry.MetricSpec` objects (``cls`` is that class)."""
    region_common = {
        "ssim": "ssim@fastmri-v1 inside each box (same window, constants, float64)",
        "boxes": "fastMRI+ (x, y, width, height) on the vertically flipped image (torch.flip dims=[-2])",
        "crop": "[y:y+h, x:x+w] clipped to the image, never enlarged",
        "small_boxes": f"when min(h, w) < {WIN}: both crops upsampled by {WIN}/min(h, w), nearest "
        "(torch.nn.functional.interpolate(scale_factor=...), as Lin & Heckel's cut_out_pathology)",
        "ignored_boxes": "zero-size or fully outside the image (with a BoxWarning)",
        "aggregate": "one SSIM per box; run summaries average over boxes (slices weighted by their box "
        "count); the per-slice value is the mean of its boxes, NaN if it has none",
        "size_split": "small: annotated area w*h <= 1% of the image area H*W; large: otherwise",
        "previous": "@fastmriplus-v1 grew boxes under 7 px into the surrounding tissue and averaged per slice",
        "data_range": VOLUME_MAX,
        "references": [FASTMRI_PLUS, LIN_HECKEL, SKIMAGE],
    }
    lpips_common = {
        "implementation": "lpips 0.1.4 LPIPS(version='0.1', lpips=True) with its shipped linear layers",
        "preprocessing": PERCENTILE_PREP + "; input 2x - 1",
        "data_range": "not used (per-image percentile normalisation)",
        "check": "reproduces the published LPIPS distances on the authors' example images",
        "references": [LPIPS_REF, LIN_HECKEL],
    }
    return [
        cls(
            "ssim",
            "ssim@fastmri-v1",
            True,
            False,
            True,
            False,
            "Structural similarity exactly as fastMRI (skimage defaults), per slice, volume max as data range",
            _ssim,
            {**SSIM_PARAMS, "references": [FASTMRI, SKIMAGE, WANG]},
        ),
        cls(
            "ssim_d22",
            "ssim@darestani-v1",
            True,
            False,
            True,
            False,
            "SSIM as Darestani, Liu & Heckel (2022) score it: reconstruction normalised to the target's mean "
            "and std, the slice target's max as data range",
            _ssim_d22,
            {
                **SSIM_PARAMS,
                "preprocessing": "recon <- (recon - mean(recon)) / std(recon) * std(target) + mean(target), "
                "population std (ddof 0), float64",
                "data_range": "max of the target SLICE (not the volume max)",
                "equals": "skimage structural_similarity(gt, normalised pred, data_range=gt.max()) per slice, to 1e-6",
                "references": [DARESTANI, SKIMAGE],
            },
        ),
        cls(
            "psnr",
            "psnr@fastmri-v1",
            True,
            False,
            True,
            False,
            "Peak signal-to-noise ratio in dB, volume max as peak (fastMRI / skimage)",
            _psnr,
            {
                "formula": "10 log10(data_range^2 / MSE), MSE = mean over H x W in float64",
                "data_range": VOLUME_MAX,
                "identical_slices": "inf",
                "references": [FASTMRI],
            },
        ),
        cls(
            "nmse",
            "nmse@fastmri-v1",
            False,
            False,
            True,
            False,
            "Normalised MSE ||target - recon||^2 / ||target||^2 per slice (fastMRI)",
            _nmse,
            {
                "formula": "||target - recon||_2^2 / ||target||_2^2 per slice, float64",
                "data_range": "not used",
                "references": [FASTMRI],
            },
        ),
        cls(
            "laplacian_variance",
            "laplacian_variance@linheckel-vmax255-v2",
            False,
            False,
            True,
            False,
            "Variance of the 3x3 Laplacian of |target - recon| in 1/255 of the volume max (artifact measure, "
            "lower is better)",
            _laplacian,
            {
                "stencil": "[[0, 1, 0], [1, -4, 1], [0, 1, 0]] (scipy.ndimage.laplace)",
                "input": "|target - recon| / data_range * 255 in float64 (8-bit display scale, no rounding)",
                "boundary": "scipy 'reflect' (half-sample symmetric = edge replication for a 3-tap stencil)",
                "variance": "population (ddof=0) over all H x W pixels",
                "data_range": VOLUME_MAX,
                "scale_source": "mribench's assumption: Lin & Heckel 2024 (Table 4: 117-434) state no scale and "
                "their code has no Laplacian; the usual cv2 variance of the Laplacian works on 8-bit images. "
                "laplacian_variance@linheckel-v1 used raw intensities (~1e-9, scaling with intensity squared)",
                "references": [LIN_HECKEL],
            },
        ),
        cls(
            "region_ssim",
            "region_ssim@fastmriplus-linheckel-v2",
            True,
            False,
            False,
            True,
            "SSIM inside each fastMRI+ pathology box (Lin & Heckel: small crops upsampled), averaged over boxes",
            _region("all"),
            {**region_common, "boxes_used": "all"},
            per_box=_region_boxes("all"),
        ),
        cls(
            "region_ssim_small",
            "region_ssim_small@fastmriplus-linheckel-v2",
            True,
            False,
            False,
            True,
            "SSIM inside each small fastMRI+ box (area <= 1% of the image), averaged over boxes",
            _region("small"),
            {**region_common, "boxes_used": "small"},
            per_box=_region_boxes("small"),
        ),
        cls(
            "region_ssim_large",
            "region_ssim_large@fastmriplus-linheckel-v2",
            True,
            False,
            False,
            True,
            "SSIM inside each large fastMRI+ box (area > 1% of the image), averaged over boxes",
            _region("large"),
            {**region_common, "boxes_used": "large"},
            per_box=_region_boxes("large"),
        ),
        cls(
            "lpips_vgg",
            "lpips_vgg@lpips0.1-p99.9-v1",
            False,
            True,
            False,
            False,
            "LPIPS v0.1 distance, VGG16 ImageNet backbone, on 99.9th-percentile-normalised slices",
            _lpips("vgg"),
            {**lpips_common, "backbone": "vgg16", "weights": _weights_params(("vgg16_imagenet",))},
            _needs("lpips_vgg"),
        ),
        cls(
            "lpips_alex",
            "lpips_alex@lpips0.1-p99.9-v1",
            False,
            True,
            False,
            False,
            "LPIPS v0.1 distance, AlexNet ImageNet backbone, on 99.9th-percentile-normalised slices",
            _lpips("alex"),
            {**lpips_common, "backbone": "alexnet", "weights": _weights_params(("alexnet_imagenet",))},
            _needs("lpips_alex"),
        ),
        cls(
            "dists",
            "dists@dists0.1-p99.9-v2",
            False,
            True,
            False,
            False,
            "DISTS distance (the authors' network), VGG16 ImageNet backbone, on 99.9th-percentile-normalised "
            "slices at their own size",
            _dists,
            {
                "implementation": "DISTS_pytorch 0.1 DISTS (Ding et al.: L2 pooling, ImageNet mean/std inside, "
                "alpha/beta normalised by their joint sum), built offline with mribench's converted weights",
                "resizing": "none at any size (dists@piq-p99.9-v1 went through piq, which resizes the shorter "
                "side to 256 when larger: a 320x320 slice scored on a 256x256 resize)",
                "preprocessing": PERCENTILE_PREP + "; input [0, 1]",
                "data_range": "not used (per-image percentile normalisation)",
                "weights": _weights_params(("vgg16_imagenet", "dists_alpha_beta")),
                "references": [DISTS_REF, LIN_HECKEL],
            },
            _needs("dists"),
        ),
    ]
