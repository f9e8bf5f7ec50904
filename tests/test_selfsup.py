"""Operators, ESPIRiT sensitivities, the joint / self-supervised losses and the complex U-Net."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import make_volume

from mribench.api.model import SliceMeta
from mribench.models.complex_unet import ComplexUnetRecon
from mribench.physics.fft import center_crop, fft2c, ifft2c, rss
from mribench.physics.operators import adjoint, combine_coils, forward
from mribench.physics.sensitivity import acs_columns, cached_sensitivities, estimate_sensitivities
from mribench.workflows.training.selfsup import joint_loss, selfsup_loss, split_measurements

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: intra-op threads only add overhead


def _rand(shape: tuple[int, ...], g: torch.Generator, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    return torch.randn(shape, generator=g, dtype=dtype)


def _model(chans: int, pools: int, seed: int = 0) -> ComplexUnetRecon:
    with torch.random.fork_rng():  # seeded initialisation without touching the global RNG state
        torch.manual_seed(seed)
        return ComplexUnetRecon(chans=chans, num_pool_layers=pools)


def _column_mask(batch: int, width: int, g: torch.Generator) -> torch.Tensor:
    m = (torch.rand(batch, 1, 1, width, generator=g) < 0.4).float()
    m[..., width // 2 - 2 : width // 2 + 2] = 1
    return m


@pytest.mark.parametrize("point_mask", [False, True])
def test_adjoint_property(point_mask: bool) -> None:
    g = torch.Generator().manual_seed(0)
    b, c, h, w = 2, 3, 16, 12
    x, y, sens = _rand((b, h, w), g), _rand((b, c, h, w), g), _rand((b, c, h, w), g)
    mask = (torch.rand(b, 1, h, w, generator=g) < 0.5).float() if point_mask else _column_mask(b, w, g)
    lhs = torch.vdot(forward(x, sens, mask).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), adjoint(y, sens, mask).flatten())
    assert abs(lhs - rhs) / abs(lhs) < 1e-5


def test_operators_match_fastmri_conventions_in_both_precisions() -> None:
    g = torch.Generator().manual_seed(1)
    x, sens = _rand((1, 8, 6), g), _rand((1, 2, 8, 6), g)
    mask = _column_mask(1, 6, g)
    expected = mask * fft2c(sens * x[:, None])
    assert torch.allclose(forward(x, sens, mask), expected, atol=1e-6)
    y = forward(x, sens, mask)
    assert torch.allclose(adjoint(y, sens, mask), (sens.conj() * ifft2c(y)).sum(1), atol=1e-6)
    k64 = forward(x.to(torch.complex128), sens.to(torch.complex128), mask.double())
    assert k64.dtype == torch.complex128 and torch.allclose(k64.to(torch.complex64), expected, atol=1e-5)
    assert torch.allclose(combine_coils(fft2c(sens * x[:, None]), sens), (sens.abs() ** 2).sum(1) * x, atol=1e-5)


def _volume(tmp_path: Path, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    p = make_volume(tmp_path, f"v{seed}", coils=4, slices=2, seed=seed)
    with h5py.File(p) as f:
        return torch.from_numpy(f["kspace"][()]), torch.from_numpy(f["reconstruction_rss"][()])


@pytest.mark.parametrize("nlf", [3, 6, 12])
def test_espirit_maps_are_unit_norm_on_the_object_and_explain_the_coils(tmp_path: Path, nlf: int) -> None:
    kspace, _ = _volume(tmp_path)
    w = kspace.shape[-1]
    mask = torch.zeros(w)
    mask[slice(*acs_columns(w, nlf))] = 1
    mask[::4] = 1
    sens = estimate_sensitivities(kspace * mask, nlf)
    assert sens.shape == kspace.shape and sens.dtype == torch.complex64
    coil = ifft2c(kspace)
    obj = rss(coil) > 0.2 * rss(coil).amax(dim=(-2, -1), keepdim=True)
    norm = (sens.abs() ** 2).sum(1)
    inside = norm > 0.5
    assert torch.allclose(norm[inside], torch.ones(()), atol=1e-4) and bool((norm[~inside] == 0).all())
    assert inside[obj].float().mean() > 0.99  # unit norm where the object is, zero (cropped) elsewhere
    x = (sens.conj() * coil).sum(1, keepdim=True)
    err = torch.linalg.vector_norm((sens * x - coil)[obj.unsqueeze(1).expand_as(coil)])
    assert err / torch.linalg.vector_norm(coil[obj.unsqueeze(1).expand_as(coil)]) < 0.1
    one = estimate_sensitivities((kspace * mask)[0], nlf)  # (C, H, W) input
    assert torch.allclose(one, sens[0], atol=1e-5)


def test_espirit_rejects_unsampled_calibration_lines_and_bad_input(tmp_path: Path) -> None:
    kspace, _ = _volume(tmp_path)
    mask = torch.zeros(kspace.shape[-1])
    mask[::4] = 1
    with pytest.raises(ValueError, match="auto-calibration"):
        estimate_sensitivities(kspace * mask, 6)
    with pytest.raises(ValueError, match="complex k-space"):
        estimate_sensitivities(kspace.abs(), 6)
    with pytest.raises(ValueError, match="crop"):
        estimate_sensitivities(kspace, 6, crop=1.5)
    with pytest.raises(ValueError, match="num_low_frequencies"):
        estimate_sensitivities(kspace, 0)


def test_cached_sensitivities_key_on_the_calibration_lines_only(tmp_path: Path) -> None:
    kspace, _ = _volume(tmp_path)
    w = kspace.shape[-1]
    acs = torch.zeros(w)
    acs[slice(*acs_columns(w, 6))] = 1
    a = kspace * torch.maximum(acs, (torch.arange(w) % 4 == 0).float())
    b = kspace * torch.maximum(acs, (torch.arange(w) % 4 == 1).float())
    plain = estimate_sensitivities(a, 6)
    with cached_sensitivities(max_bytes=10 * plain[0].numel() * 8) as cache:
        first = estimate_sensitivities(a, 6)
        again = estimate_sensitivities(b, 6)  # other outer lines, same calibration lines: the same maps
        assert cache.misses == 2 and cache.hits == 2 and torch.equal(first, plain) and torch.equal(again, plain)
        again[0, 0, 0, 0] = 1e3  # callers get copies
        assert torch.equal(estimate_sensitivities(a, 6), plain) and cache.hits == 4
        estimate_sensitivities(a, 4)  # another centre size: another key
        with cached_sensitivities() as inner:
            assert inner is cache
        assert cache.misses == 4
    with cached_sensitivities(max_bytes=plain[0].numel() * 8) as small:  # room for one slice's maps
        estimate_sensitivities(a, 6)
        estimate_sensitivities(a[1:], 6)  # the last slice stayed, the first was dropped
        assert small.hits == 1 and small.nbytes <= small.max_bytes
    with pytest.raises(ValueError, match="max_bytes"), cached_sensitivities(max_bytes=0):
        pass


def test_losses_by_hand() -> None:
    g = torch.Generator().manual_seed(2)
    b, c, h, w = 2, 3, 8, 6
    x, sens = _rand((b, h, w), g), _rand((b, c, h, w), g)
    mask = _column_mask(b, w, g)
    y = forward(x, sens, mask)
    assert joint_loss(x, x, y, mask, sens).item() == pytest.approx(0.0, abs=1e-6)
    assert selfsup_loss(x, y, mask, sens).item() == pytest.approx(0.0, abs=1e-6)
    pred = x + 0.1 * _rand((b, h, w), g)

    def l1(z: torch.Tensor) -> np.ndarray:
        return np.abs(z.real.numpy()).sum(axis=tuple(range(1, z.ndim))) + np.abs(z.imag.numpy()).sum(
            axis=tuple(range(1, z.ndim))
        )

    kterm = l1(mask * fft2c(sens * pred[:, None]) - y) / l1(y)
    expected = np.mean(l1(x - pred) / l1(x) + kterm)
    assert joint_loss(pred, x, y, mask, sens).item() == pytest.approx(expected, rel=1e-5)
    assert selfsup_loss(pred, y, mask, sens).item() == pytest.approx(np.mean(kterm), rel=1e-5)
    pts = (torch.rand(b, 1, h, w, generator=g) < 0.5).float()
    sub = pts * mask
    expected_sub = np.mean(l1(sub * fft2c(sens * pred[:, None]) - sub * y) / l1(sub * y))
    assert selfsup_loss(pred, y, mask, sens, point_mask=pts).item() == pytest.approx(expected_sub, rel=1e-5)
    with pytest.raises(ValueError, match="target_image"):
        joint_loss(pred, x[:, :4], y, mask, sens)


def test_joint_loss_trains_the_complex_unet() -> None:
    g = torch.Generator().manual_seed(3)
    b, c, h, w = 2, 2, 16, 16
    x, sens = _rand((b, h, w), g), _rand((b, c, h, w), g)
    sens = sens / (sens.abs() ** 2).sum(1, keepdim=True).sqrt()
    mask = _column_mask(b, w, g)
    y = forward(x, sens, mask)
    model = _model(4, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = joint_loss(model.predict_image(y, mask, sens), x, y, mask, sens)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_split_measurements() -> None:
    g = torch.Generator().manual_seed(4)
    mask = _column_mask(3, 20, g)
    train, val = split_measurements(mask, 10, 0.05, torch.Generator().manual_seed(7))
    assert train.shape == val.shape == (3, 1, 10, 20)
    assert torch.equal(train + val, mask.expand(3, 1, 10, 20))  # disjoint, cover the sampled points
    for b in range(3):
        n = int(mask[b].sum()) * 10
        assert int(val[b].sum()) == max(1, round(0.05 * n))
    again, _ = split_measurements(mask, 10, 0.05, torch.Generator().manual_seed(7))
    other, _ = split_measurements(mask, 10, 0.05, torch.Generator().manual_seed(8))
    assert torch.equal(again, train) and not torch.equal(other, train)
    with pytest.raises(ValueError, match="column mask"):
        split_measurements(mask[:, 0], 10)
    with pytest.raises(ValueError, match="fraction"):
        split_measurements(mask, 10, 1.5)


def test_complex_unet_protocol_equivariance_and_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mribench.models import builtin
    from mribench.models.checkpoints import load_checkpoint, save_checkpoint

    kspace, target = _volume(tmp_path)
    w = kspace.shape[-1]
    mask = torch.zeros(1, 1, 1, w)
    mask[..., slice(*acs_columns(w, 6))] = 1
    mask[..., ::3] = 1
    masked = kspace * mask
    meta = SliceMeta(
        file="v0.h5",
        slices=(0, 1),
        target_size=tuple(target.shape[-2:]),
        padding=(2, w - 2),
        num_low_frequencies=6,
        acceleration=3,
        volume_max=float(target.max()),
    )
    model = _model(4, 2).eval()
    with torch.inference_mode():
        out = model(masked, mask.expand(2, 1, 1, w), meta)
    assert out.shape == (2, *target.shape[-2:]) and not out.is_complex()
    sens = estimate_sensitivities(masked, 6)
    with torch.no_grad():
        image = model.predict_image(masked, mask, sens)
        scaled = model.predict_image(3.0 * masked, mask, sens)
    assert torch.allclose(center_crop(image.abs(), meta.target_size), out, atol=1e-5)
    assert torch.allclose(scaled, 3.0 * image, rtol=1e-4, atol=1e-5 * float(image.abs().max()))
    monkeypatch.setitem(builtin.ARCHITECTURES, "unet-complex", ComplexUnetRecon)
    path = save_checkpoint(model, tmp_path / "m.safetensors", extra={"lr": 1e-3})
    loaded, details = load_checkpoint(path)
    assert isinstance(loaded, ComplexUnetRecon) and details["config"] == model.config
    with torch.no_grad():
        assert torch.equal(loaded.predict_image(masked, mask, sens), image)
