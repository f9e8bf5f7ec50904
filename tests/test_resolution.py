"""Resolution-mismatch adapter: what interleaving does to the image, and exactness on zero-filled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mribench.api.model import ModelInfo, SliceMeta
from mribench.models.builtin import ZeroFilled
from mribench.models.loaded import LoadedModel
from mribench.models.resolution import (
    ResolutionAdapter,
    interleave,
    interleave_mask,
    interleave_window,
    with_resolution,
)
from mribench.physics.fft import fft2c, ifft2c
from mribench.physics.masks import MaskSpec, volume_mask


def _signal(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(3, n, generator=g), torch.randn(3, n, generator=g))


def _tile(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Periodic extension of a centred signal (..., n) over a centred grid of factor * n."""
    n = x.shape[-1]
    big = factor * n
    m = torch.arange(big) - big // 2 + n // 2  # enlarged centred index -> original index
    return x[..., m % n]


@pytest.mark.parametrize("n,factor", [(8, 2), (10, 3), (9, 3), (12, 4)])
def test_repeat_enlarges_fov_with_the_dirichlet_window(n: int, factor: int) -> None:
    x = _signal(n)
    big = ifft2c(interleave(fft2c(x[:, None, :]), factor, -1, "repeat"))[:, 0]
    w = interleave_window(n, factor, "repeat")
    # exact: the enlarged image is the periodic extension of the original times the window
    torch.testing.assert_close(big, _tile(x, factor) * w, atol=1e-5, rtol=0)
    # |w(m)| = |sin(pi m / n) / sin(pi m / (r n))| / sqrt(r), m the centred index of the enlarged grid
    m = (torch.arange(factor * n) - (factor * n) // 2).double()
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.abs(np.sin(np.pi * m.numpy() / n) / np.sin(np.pi * m.numpy() / (factor * n)))
    d[m.numpy() == 0] = factor
    np.testing.assert_allclose(w.abs().numpy(), d / np.sqrt(factor), atol=1e-5)
    # the central copy keeps the anatomy (taper >= 1 inside it); the side copies fade out
    centre = w.abs()[(factor * n - n) // 2 : (factor * n - n) // 2 + n]
    assert centre.min() >= 1 - 1e-5 and centre.max() == pytest.approx(factor**0.5, rel=1e-5)


@pytest.mark.parametrize("n,factor", [(8, 2), (9, 3)])
def test_zero_insertion_tiles_the_image(n: int, factor: int) -> None:
    x = _signal(n, 1)
    big = ifft2c(interleave(fft2c(x[:, None, :]), factor, -1, "zeros"))[:, 0]
    torch.testing.assert_close(big.abs(), _tile(x, factor).abs() / factor**0.5, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        interleave_window(n, factor, "zeros").abs(), torch.full((factor * n,), factor**-0.5), atol=1e-6, rtol=0
    )


def test_mask_interleave_keeps_acceleration_and_centre() -> None:
    spec = MaskSpec("equispaced", 4)
    mask = volume_mask(spec, 40, "file_a")
    for mode in ("repeat", "zeros"):
        m2 = interleave_mask(mask, 2, mode)
        assert m2.shape == (80,) and m2.mean() == pytest.approx(mask.mean().item())
    m2 = interleave_mask(mask, 2, "repeat")
    assert bool(m2[39] == 1) and bool(m2[40] == 1)  # the k-space centre stays sampled at the enlarged centre
    # the mask follows the samples: interleaving masked k-space == masking interleaved k-space
    k = fft2c(_signal(40)[:, None, :])
    torch.testing.assert_close(interleave(k * mask, 2), interleave(k, 2) * m2)


def test_bad_arguments() -> None:
    k = torch.zeros(1, 1, 4, 9, dtype=torch.complex64)
    with pytest.raises(ValueError, match="odd factor"):
        interleave(k, 2)
    with pytest.raises(ValueError, match="mode"):
        interleave(k, 3, mode="nearest")
    with pytest.raises(ValueError, match="factor"):
        ResolutionAdapter(ZeroFilled(), 0)
    assert interleave(k, 1) is k


def _batch(w: int = 24, h: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, SliceMeta]:
    g = torch.Generator().manual_seed(seed)
    img = torch.zeros(2, 3, h, w, dtype=torch.complex64)
    img[..., h // 4 : 3 * h // 4, 3 : w - 3] = torch.complex(
        torch.rand(2, 3, h // 2, w - 6, generator=g), torch.rand(2, 3, h // 2, w - 6, generator=g)
    )
    k = fft2c(img)
    mask = volume_mask(MaskSpec("equispaced", 4), w, "vol", (1, w - 1)).reshape(1, 1, 1, w).expand(2, 1, 1, w)
    meta = SliceMeta("vol", (0, 1), (16, 20), (1, w - 1), 2, 4, 1.0)
    return k * mask, mask.contiguous(), meta


@pytest.mark.parametrize("readout", [False, True])
@pytest.mark.parametrize("mode", ["repeat", "zeros"])
def test_adapter_is_exact_for_zero_filled(readout: bool, mode: str) -> None:
    k, mask, meta = _batch()
    want = ZeroFilled()(k, mask, meta)
    got = ResolutionAdapter(ZeroFilled(), 2, readout=readout, mode=mode)(k, mask, meta)
    assert got.shape == want.shape == (2, 16, 20)
    torch.testing.assert_close(got, want, atol=1e-5 * float(want.max()), rtol=0)
    if mode == "repeat":  # without compensation the taper of the window shows
        raw = ResolutionAdapter(ZeroFilled(), 2, readout=readout, mode=mode, compensate=False)(k, mask, meta)
        assert (raw - want).abs().max() > 0.1 * want.max()


def test_model_sees_the_enlarged_input() -> None:
    seen: dict[str, object] = {}

    def spy(kspace: torch.Tensor, mask: torch.Tensor, meta: SliceMeta) -> torch.Tensor:
        seen.update(k=tuple(kspace.shape), m=tuple(mask.shape), meta=meta)
        return ZeroFilled()(kspace, mask, meta)

    k, mask, meta = _batch()
    ResolutionAdapter(spy, 3, readout=True)(k, mask, meta)
    assert seen["k"] == (2, 3, 96, 72) and seen["m"] == (2, 1, 1, 72)
    inner = seen["meta"]
    assert isinstance(inner, SliceMeta)
    assert inner.num_low_frequencies == 6 and inner.target_size == (16, 20)
    assert inner.padding == (3 * 1 - 1, 3 * 23 - 1)  # acquired columns follow the samples (roll of -1)


def test_with_resolution_records_itself_and_is_off_by_default() -> None:
    lm = LoadedModel(ZeroFilled(), ModelInfo("zero-filled", "builtin", "abc"))
    assert with_resolution(lm) is lm
    wrapped = with_resolution(lm, 2)
    assert wrapped.info.details["resolution"] == {"factor": 2, "readout": False, "mode": "repeat", "compensate": True}
    assert wrapped.info.name != lm.info.name
    k, mask, meta = _batch()
    torch.testing.assert_close(wrapped(k, mask, meta), lm(k, mask, meta), atol=1e-5, rtol=0)
    assert wrapped.to(torch.device("cpu")) is wrapped


def test_adapter_in_the_evaluator_scores_like_the_plain_model(tiny_root, tmp_path) -> None:  # noqa: ANN001
    import mribench.metrics

    if not hasattr(mribench.metrics, "get_metric"):
        pytest.skip("the metric registry is not available yet")
    from mribench import EvalOptions, evaluate
    from mribench.tasks import parse_task

    task = parse_task(
        {
            "version": 1,
            "source": {"filter": {"anatomy": "knee"}},
            "target": {"filter": {"anatomy": "brain"}},
            "splits": {"test_fraction": 0.5},
            "metrics": ["ssim", "psnr"],
        },
        "tiny",
    )
    lm = LoadedModel(ZeroFilled(), ModelInfo("zero-filled", "builtin", "x"))
    two = EvalOptions(limit=2)
    plain = evaluate(lm, task, data=tiny_root, run_dir=tmp_path / "a", options=two)
    wrapped = evaluate(with_resolution(lm, 2, readout=True), task, data=tiny_root, run_dir=tmp_path / "b", options=two)
    assert wrapped.config.model.details["resolution"]["factor"] == 2  # type: ignore[index,call-overload]
    np.testing.assert_allclose(wrapped.slices["ssim"], plain.slices["ssim"], atol=1e-5)
    np.testing.assert_allclose(wrapped.slices["psnr"], plain.slices["psnr"], atol=1e-3)
