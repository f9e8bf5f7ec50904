"""The training and self-supervised losses of Darestani, Liu & Heckel (ICML 2022).

With ``A = mask * FFT * sensitivities``, ``y`` the measured multi-coil k-space and ``x`` the
root-sum-of-squares (RSS) magnitude of the fully sampled coil images, D22 train a network ``f``
(input: a zero-filled image, :mod:`mribench.models.complex_unet`) supervised with

    L_sup = |x - |f||_1 / |x|_1                                     (:func:`rss_l1_loss`)

and self-supervised with ``L_sup + |y - A f|_1 / |y|_1`` (:func:`d22_joint_loss`); at test time
``f`` is adapted on the k-space term alone (:mod:`mribench.workflows.training.ttt`). The
denominators are constants (D22 detach them). :func:`joint_loss` is mribench's earlier variant (the
``ttt-fast`` recipe): its image term compares the complex output with the coil-combined complex
image ``x_c = sum_c conj(S_c) IFFT(k_c)``, which carries none of the RSS image's background where
the maps are cropped. ``|.|_1`` of complex data is
the sum of the absolute real and imaginary parts (the L1 norm of the real view, as the paper's
code computes it on tensors with a trailing real/imaginary dimension). All losses are computed per
slice and averaged over the batch.

Self-validation (:func:`split_measurements`) holds out sampled k-space *locations* ``(row, column)``,
the same in every coil: all coils see the same object Fourier coefficient at a location, so holding
it out in some coils only would let the others leak it into the reconstruction through the
sensitivity-weighted combination.
"""

from __future__ import annotations

import torch

from mribench.physics.operators import forward


def _l1(z: torch.Tensor) -> torch.Tensor:
    """Per-slice L1 norm of the real view. complex or real (B, ...) -> real (B,)."""
    r = torch.view_as_real(z) if z.is_complex() else z
    return r.abs().flatten(1).sum(1)


def _check(name: str, t: torch.Tensor, ndim: int) -> None:
    if t.ndim != ndim:
        raise ValueError(f"expected {name} with {ndim} dims, got shape {tuple(t.shape)}")


def _reduce(per_slice: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_slice.mean()
    if reduction == "none":
        return per_slice
    raise ValueError(f"expected reduction 'mean' or 'none', got {reduction!r}")


def selfsup_loss(
    pred_image: torch.Tensor,
    masked_kspace: torch.Tensor,
    mask: torch.Tensor,
    sens: torch.Tensor,
    point_mask: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """The self-supervised loss ``|P (y - A f)|_1 / |P y|_1``, batch mean.

    Args:
        pred_image: complex (B, H, W) ``f(A^H y)``.
        masked_kspace: complex (B, C, H, W) measured k-space ``y``.
        mask: (B, 1, 1, W) or (B, 1, H, W) sampling mask of ``A``.
        sens: complex (B, C, H, W) coil sensitivities.
        point_mask: optional (B, 1, H, W) or (B, 1, 1, W) subset ``P`` of the sampled points
            (e.g. the training or the validation part of :func:`split_measurements`); default all
            sampled points.
        reduction: ``"mean"`` over the batch or ``"none"`` (per slice).

    Returns:
        real scalar, or (B,) with ``reduction="none"``.
    """
    _check("pred_image", pred_image, 3)
    _check("masked_kspace", masked_kspace, 4)
    points = mask if point_mask is None else mask * point_mask
    points = points.to(pred_image.real.dtype)
    measured = points * masked_kspace
    return _reduce(_l1(forward(pred_image, sens.to(pred_image.dtype), points) - measured) / _l1(measured), reduction)


def joint_loss(
    pred_image: torch.Tensor,
    target_image: torch.Tensor,
    masked_kspace: torch.Tensor,
    mask: torch.Tensor,
    sens: torch.Tensor,
    reduction: str = "mean",
) -> torch.Tensor:
    """The training loss ``|x - f|_1/|x|_1 + |y - A f|_1/|y|_1``, batch mean.

    Args:
        pred_image: complex (B, H, W) ``f(A^H y)`` (e.g. ``ComplexUnetRecon.predict_image``).
        target_image: complex (B, H, W) ``x``: the fully sampled k-space combined with the same
            sensitivities (:func:`mribench.physics.operators.combine_coils`).
        masked_kspace: complex (B, C, H, W) ``y``.
        mask: (B, 1, 1, W).
        sens: complex (B, C, H, W).
        reduction: ``"mean"`` over the batch or ``"none"`` (per slice).

    Returns:
        real scalar, or (B,) with ``reduction="none"``.
    """
    _check("target_image", target_image, 3)
    if target_image.shape != pred_image.shape:
        raise ValueError(f"expected target_image of shape {tuple(pred_image.shape)}, got {tuple(target_image.shape)}")
    image_term = _l1(target_image - pred_image) / _l1(target_image)
    points = mask.to(pred_image.real.dtype)
    measured = points * masked_kspace
    kspace_term = _l1(forward(pred_image, sens.to(pred_image.dtype), points) - measured) / _l1(measured)
    return _reduce(image_term + kspace_term, reduction)


def rss_l1_loss(pred_image: torch.Tensor, rss_target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """D22's supervised loss ``|x - |f||_1 / |x|_1`` against the RSS magnitude ``x``.

    Args:
        pred_image: complex (B, H, W) ``f``.
        rss_target: real (B, H, W), e.g. ``mribench.physics.rss(coil_images(kspace))`` at the
            encoded size (D22 compute it from the fully sampled k-space, not the cropped file target).
        reduction: ``"mean"`` over the batch or ``"none"``.

    Returns:
        real scalar, or (B,).
    """
    _check("pred_image", pred_image, 3)
    if rss_target.shape != pred_image.shape or rss_target.is_complex():
        raise ValueError(
            f"expected a real RSS target of shape {tuple(pred_image.shape)}, got {rss_target.dtype} "
            f"{tuple(rss_target.shape)}"
        )
    return _reduce(_l1(rss_target - pred_image.abs()) / _l1(rss_target).detach(), reduction)


def d22_joint_loss(
    pred_image: torch.Tensor,
    rss_target: torch.Tensor,
    masked_kspace: torch.Tensor,
    mask: torch.Tensor,
    sens: torch.Tensor,
    reduction: str = "mean",
) -> torch.Tensor:
    """D22's self-supervised training loss ``|x - |f||_1/|x|_1 + |y - A f|_1/|y|_1``.

    Args:
        pred_image: complex (B, H, W).
        rss_target: real (B, H, W) RSS magnitude of the fully sampled coil images.
        masked_kspace: complex (B, C, H, W) ``y``.
        mask: (B, 1, 1, W) sampling mask of ``A``.
        sens: complex (B, C, H, W) maps of ``A`` (D22: ``bart-ecalib``, zero entries filled).
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        real scalar, or (B,).
    """
    image_term = rss_l1_loss(pred_image, rss_target, reduction="none")
    kspace_term = selfsup_loss(pred_image, masked_kspace, mask, sens, reduction="none")
    return _reduce(image_term + kspace_term, reduction)


def split_measurements(
    mask: torch.Tensor,
    num_rows: int,
    fraction: float = 0.05,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hold out a random ``fraction`` of the sampled k-space locations for self-validation.

    Sampled locations are the ``(row, column)`` pairs of sampled columns (every row of a sampled
    column is measured); each slice holds out ``round(fraction * n_sampled)`` of them (at least
    one), the same locations in every coil.

    Args:
        mask: (B, 1, 1, W) column mask (ones where sampled).
        num_rows: H, the number of read-out rows.
        fraction: held-out share in (0, 1).
        generator: local random generator (default: a fresh one seeded with 0).

    Returns:
        ``(train_points, val_points)``: float (B, 1, H, W) point masks, disjoint, summing to the mask.
    """
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2] != 1:
        raise ValueError(f"expected a column mask (B, 1, 1, W), got shape {tuple(mask.shape)}")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"expected fraction in (0, 1), got {fraction}")
    if num_rows < 1:
        raise ValueError(f"expected num_rows >= 1, got {num_rows}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    batch, width = mask.shape[0], mask.shape[-1]
    sampled = (mask.reshape(batch, 1, width) != 0).expand(batch, num_rows, width).reshape(batch, -1).cpu()
    val = torch.zeros(batch, num_rows * width, dtype=torch.bool)
    for b in range(batch):
        idx = sampled[b].nonzero().squeeze(1)
        if idx.numel() < 2:
            raise ValueError(f"expected at least 2 sampled k-space locations to split, got {idx.numel()} in slice {b}")
        n_val = min(idx.numel() - 1, max(1, round(fraction * idx.numel())))
        val[b, idx[torch.randperm(idx.numel(), generator=generator)[:n_val]]] = True
    train = sampled & ~val
    shape = (batch, 1, num_rows, width)
    dtype = mask.dtype if mask.is_floating_point() else torch.float32
    return train.reshape(shape).to(mask.device, dtype), val.reshape(shape).to(mask.device, dtype)
