"""D22 fidelity of test-time training: settings as data, the network input, coil maps, losses."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import fastmri
import h5py
import pytest
import torch
from conftest import make_volume

from mribench.models.complex_unet import ComplexUnetRecon, ScaleNormUnet, rss_real_imag
from mribench.physics.fft import ifft2c, rss
from mribench.physics.masks import MaskSpec, volume_mask
from mribench.physics.operators import combine_coils
from mribench.physics.sensitivity import (
    MAP_PRESETS,
    acs_columns,
    estimate_sensitivities,
    fill_zero_entries,
    rotate_to_lowres_phase,
    sensitivities,
)
from mribench.workflows.training.selfsup import d22_joint_loss, rss_l1_loss, selfsup_loss, split_measurements
from mribench.workflows.training.ttt import TTTModel
from mribench.workflows.training.ttt_settings import SETTINGS_FILE, load_table, ttt_settings

pytestmark = pytest.mark.usefixtures("one_thread")

#: FIDELITY.md section 5, written out: (lr, W) per shift and architecture; at most 2500 steps, ~5% held out.
FIDELITY_SECTION_5 = {
    ("anatomy", "unet"): (1e-5, 100),
    ("anatomy", "varnet"): (1e-4, 100),
    ("acceleration", "unet"): (1e-5, 100),
    ("acceleration", "varnet"): (1e-4, 100),
    ("dataset", "unet"): (1e-5, 20),
    ("dataset", "varnet"): (1e-4, 20),
    ("modality", "unet"): (1e-5, 20),
    ("modality", "varnet"): (1e-4, 100),
}


def test_shipped_settings_equal_fidelity_section_5() -> None:
    table = load_table()
    keys = {(s, a) for s, archs in table["shifts"].items() for a in archs}
    assert keys == set(FIDELITY_SECTION_5)
    for (shift, arch), (lr, window) in FIDELITY_SECTION_5.items():
        st = ttt_settings(shift, arch)
        assert (st.lr, st.window, st.max_steps, st.val_fraction) == (lr, window, 2500, 0.05)
        assert st.provenance()["file"] == SETTINGS_FILE.name and len(st.sha256) == 64
    # mribench's task cards call the modality shift "contrast"; checkpoints name the U-Net "unet-complex"
    assert ttt_settings("contrast", "unet-complex").window == 20 and ttt_settings("contrast", "varnet").window == 100
    with pytest.raises(ValueError, match="field"):
        ttt_settings("field", "unet")  # the paper defines none: no silent default
    with pytest.raises(ValueError, match="architecture"):
        ttt_settings("anatomy", "vit")


def test_settings_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "t.yaml"
    bad.write_text("shifts: {anatomy: {unet: {lr: 1.0e-5, window: 100}}}\n")
    with pytest.raises(ValueError, match="max_steps"):
        ttt_settings("anatomy", "unet", bad)
    bad.write_text("shifts: {anatomy: {unet: {lr: 0, window: 100, max_steps: 5, val_fraction: 0.05}}}\n")
    with pytest.raises(ValueError, match="lr > 0"):
        load_table(bad)
    with pytest.raises(ValueError, match="no file"):
        load_table(tmp_path / "missing.yaml")


def _batch(tmp_path: Path, slices: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    p = make_volume(tmp_path, "file_d22", coils=4, slices=slices, seed=3)
    with h5py.File(p) as f:
        kspace = torch.from_numpy(f["kspace"][()])
    w = kspace.shape[-1]
    spec = MaskSpec("equispaced", 4, 0.16)
    mask = volume_mask(spec, w, "file_d22").reshape(1, 1, 1, w).expand(slices, 1, 1, w).contiguous()
    return kspace, kspace * mask, mask, round(w * spec.cf)


def _model(**kw: Any) -> ComplexUnetRecon:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return ComplexUnetRecon(chans=4, num_pool_layers=2, **kw)


@pytest.mark.parametrize("net_input", ["rss-real-imag", "coil-combined"])
def test_held_out_points_reach_the_network_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, net_input: str
) -> None:
    """D22 zero the self-validation points in the loss only: the network still sees them."""
    _, masked, mask, nlf = _batch(tmp_path)
    model = _model(input=net_input, maps="bart-ecalib")
    sens = model.estimate_maps(masked, nlf)
    seen: dict[str, torch.Tensor] = {}
    original = TTTModel._adapt_part

    def spy(self: TTTModel, part: Any, full: torch.Tensor, params: Any) -> Any:
        seen[self.variant] = part["input"].clone()
        seen["val_points"] = part["val_points"].clone()
        return original(self, part, full, params)

    monkeypatch.setattr(TTTModel, "_adapt_part", spy)
    for variant in ("d22", "fast"):
        TTTModel(model, variant=variant, lr=1e-4, window=1, max_steps=2).adapt_images(masked, mask, sens, [7, 8])
    held = seen["val_points"]
    assert held.sum() > 0
    with_all = model.zero_filled_input(masked, mask, sens)
    without = model.zero_filled_input(masked, mask - held, sens)
    assert torch.equal(seen["d22"], with_all)  # d22: the input holds every measured point
    assert torch.equal(seen["fast"], without)  # fast (ours): the held-out points are removed
    assert not torch.allclose(with_all, without)
    # ... and the held-out points are exactly where the validation loss looks, zeroed in the training loss
    tr, va = split_measurements(mask[:1], masked.shape[-2], 0.05, torch.Generator().manual_seed(7))
    assert torch.equal(va, held[:1]) and torch.equal(tr + va, mask[:1].expand_as(tr))


def test_ttt_model_records_its_settings_and_variant(tmp_path: Path) -> None:
    model = _model(input="rss-real-imag", maps="bart-ecalib")
    ttt = TTTModel.from_settings(model, "dataset", vectorized=False)
    cfg = ttt.config
    assert (ttt.lr, ttt.window, ttt.max_steps) == (1e-5, 20, 2500)
    assert cfg["variant"] == "d22" and cfg["stopping_rule"] == "d22" and cfg["holdout_in_input"] is False
    assert cfg["input"] == "rss-real-imag" and cfg["maps"] == "bart-ecalib" and cfg["model"]["input"] == "rss-real-imag"
    assert cfg["settings"]["source"] == "table" and cfg["settings"]["shift"] == "dataset"
    assert cfg["settings"]["arch"] == "unet" and "overridden" not in cfg["settings"]
    over = TTTModel.from_settings(model, "anatomy", window=5).config["settings"]
    assert over["overridden"] == {"window": 5} and over["window"] == 100  # the table's value and the override
    assert TTTModel(model).config["settings"] == {"source": "explicit"}
    assert TTTModel(model, variant="fast").config["holdout_in_input"] is True
    with pytest.raises(ValueError, match="variant"):
        TTTModel(model, variant="paper")
    with pytest.raises(ValueError, match="shift"):
        TTTModel.from_settings(model, "coils")


def test_rss_real_imag_is_d22s_rss_torch(tmp_path: Path) -> None:
    """D22's input: ``rss_torch(ifft2(k))`` on (C, H, W, 2), i.e. RSS over coils of each part."""
    _, masked, mask, _ = _batch(tmp_path)
    got = rss_real_imag(masked)
    for b in range(masked.shape[0]):
        coil = fastmri.ifft2c(torch.view_as_real(masked[b]))  # (C, H, W, 2)
        ref = torch.sqrt(torch.sum(torch.abs(coil) ** 2, 0))  # their rss_torch
        assert torch.allclose(torch.view_as_real(got[b]), ref, rtol=1e-5, atol=1e-7)
    pts = mask.clone()
    pts[..., : pts.shape[-1] // 2] = 0
    assert torch.allclose(rss_real_imag(masked, pts), rss_real_imag(masked * pts))


def test_fill_zero_entries_is_d22s_replacement() -> None:
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(2, 3, 5, 4, generator=g, dtype=torch.complex64)
    maps[:, :, :2] = 0  # cropped region
    maps.real[0, 1, 3, 0] = 0  # one zero real part inside
    got = fill_zero_entries(maps)
    for b in range(2):  # D22: for j, s in enumerate(S): ss = s.clone(); ss[abs(ss) == 0] = abs(ss).max()
        for j, s in enumerate(torch.view_as_real(maps[b])):
            ss = s.clone()
            ss[torch.abs(ss) == 0.0] = torch.abs(ss).max()
            assert torch.equal(torch.view_as_real(got[b, j]), ss)
    assert not (torch.view_as_real(got) == 0).any()
    assert torch.equal(fill_zero_entries(maps[0]), got[0])
    with pytest.raises(ValueError, match="complex maps"):
        fill_zero_entries(maps.real)


def test_bart_ecalib_preset_calls_sigpy_with_barts_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sigpy.mri

    kspace, _, _, _ = _batch(tmp_path, slices=1)
    w = kspace.shape[-1]
    preset = MAP_PRESETS["bart-ecalib"]
    assert (preset.crop, preset.calib_size, preset.fill_zeros) == (0.8, 24, True)
    assert preset.thresh == pytest.approx(math.sqrt(0.001))  # BART keeps s_i / s_0 > sqrt(t), sigpy s_i / s_0 > t
    calls: list[dict[str, Any]] = []
    real = sigpy.mri.app.EspiritCalib

    def record(ksp: Any, **kw: Any) -> Any:
        calls.append({**kw, "acs": int((abs(ksp).sum(axis=(0, 1)) > 0).sum())})
        return real(ksp, **kw)

    monkeypatch.setattr(sigpy.mri.app, "EspiritCalib", record)
    nlf = 30  # more auto-calibration lines than BART's 24
    mask = torch.zeros(w)
    mask[slice(*acs_columns(w, nlf))] = 1
    mask[::3] = 1
    maps = sensitivities(kspace * mask, nlf, "bart-ecalib")
    assert calls[-1]["calib_width"] == 24 and calls[-1]["kernel_width"] == 6 and calls[-1]["acs"] == 24
    assert calls[-1]["crop"] == 0.8 and calls[-1]["thresh"] == pytest.approx(0.0316227766)
    assert not (torch.view_as_real(maps) == 0).any()  # zero entries filled
    plain = sensitivities(kspace * mask, nlf, "mribench")
    assert calls[-1]["calib_width"] == nlf and calls[-1]["crop"] == 0.95 and calls[-1]["thresh"] == 0.02
    assert (plain == 0).any()  # cropped, not filled
    with pytest.raises(ValueError, match="preset"):
        sensitivities(kspace * mask, nlf, "bart")


def test_lowres_phase_maps_remove_the_image_phase(tmp_path: Path) -> None:
    """Ours: one unit phase per pixel, common to all coils, makes the auto-calibration image real and >= 0."""
    _, masked, _, nlf = _batch(tmp_path)
    bart = MAP_PRESETS["bart-ecalib"]
    maps = estimate_sensitivities(masked, nlf, crop=bart.crop, thresh=bart.thresh, calib_size=bart.calib_size)
    rot = rotate_to_lowres_phase(maps, masked, nlf)
    assert torch.allclose(rot.abs(), maps.abs(), atol=1e-6)  # same magnitudes and support
    support = maps.abs().square().sum(1) > 0
    common = (rot * maps.conj()).sum(1) / maps.abs().square().sum(1).clamp_min(1e-30)  # the per-pixel rotation
    assert torch.allclose(common.abs()[support], torch.ones(()), atol=1e-5)
    assert torch.allclose(rot, maps * common.unsqueeze(1), atol=1e-6)
    start, stop = acs_columns(masked.shape[-1], nlf)
    acs = torch.zeros_like(masked)
    acs[..., start:stop] = masked[..., start:stop]
    x_lr = combine_coils(acs, maps)
    got = combine_coils(acs, rot)
    assert torch.allclose(got.real, x_lr.abs(), rtol=1e-5, atol=1e-6 * float(x_lr.abs().max()))
    assert float(got.imag.abs().max()) <= 1e-5 * float(x_lr.abs().max())
    # a global phase of the data (MRIBench-Sim draws one per volume) no longer reaches the combined image
    turned = masked * complex(math.cos(2.0), math.sin(2.0))
    again = combine_coils(turned, rotate_to_lowres_phase(maps, turned, nlf))
    assert torch.allclose(again, combine_coils(masked, rot), atol=1e-5 * float(x_lr.abs().max()))
    # the preset: ESPIRiT with BART's options, this rotation, then D22's zero filling
    assert torch.equal(sensitivities(masked, nlf, "bart-ecalib-lowres-phase"), fill_zero_entries(rot))
    with pytest.raises(ValueError, match="shaped like"):
        rotate_to_lowres_phase(maps[:, :-1], masked, nlf)


def test_d22_losses_by_hand(tmp_path: Path) -> None:
    kspace, masked, mask, nlf = _batch(tmp_path)
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(masked.shape[0], *masked.shape[-2:], generator=g, dtype=torch.complex64)
    target = rss(ifft2c(kspace))  # RSS magnitude of the fully sampled coil images, encoded size
    ref = [float((target[b] - pred[b].abs()).abs().sum() / target[b].abs().sum()) for b in range(2)]
    assert rss_l1_loss(pred, target, reduction="none").tolist() == pytest.approx(ref, rel=1e-5)
    sens = sensitivities(masked, nlf, "bart-ecalib")
    joint = d22_joint_loss(pred, target, masked, mask, sens, reduction="none")
    assert torch.allclose(
        joint, rss_l1_loss(pred, target, "none") + selfsup_loss(pred, masked, mask, sens, reduction="none")
    )
    with pytest.raises(ValueError, match="RSS target"):
        rss_l1_loss(pred, target[:, :-1])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_d22_ttt_on_cuda_equals_cpu_in_float64(tmp_path: Path) -> None:
    _, masked, mask, nlf = _batch(tmp_path)
    model = _model(input="rss-real-imag", maps="bart-ecalib").double()
    sens = model.estimate_maps(masked, nlf)
    kw = {"lr": 1e-2, "window": 2, "max_steps": 10}
    img_c, st_c = TTTModel(model, **kw).adapt_images(masked, mask, sens, [1, 2])
    gpu = TTTModel(copy.deepcopy(model), **kw).to("cuda")
    img_g, st_g = gpu.adapt_images(masked.cuda(), mask.cuda(), sens.cuda(), [1, 2])
    assert img_g.device.type == "cuda" and [s["steps"] for s in st_g] == [s["steps"] for s in st_c]
    assert torch.allclose(img_g.cpu(), img_c, rtol=0, atol=1e-9 * float(img_c.abs().max()))


@pytest.mark.parametrize(("variant", "norm"), [("d22", "instance"), ("fast", "instance"), ("d22", "scale")])
def test_both_variants_vectorised_engines_equal_the_loop_in_float64(tmp_path: Path, variant: str, norm: str) -> None:
    _, masked, mask, nlf = _batch(tmp_path, slices=3)
    model = _model(input="rss-real-imag", maps="bart-ecalib", norm=norm).double()
    sens = model.estimate_maps(masked, nlf)
    kw = {"lr": 1e-2, "window": 2, "max_steps": 12, "variant": variant}
    img_l, st_l = TTTModel(model, vectorized=False, **kw).adapt_images(masked, mask, sens, [1, 2, 3])
    assert all(s["steps"] > 6 for s in st_l)
    for engine in ("grouped", "vmap"):
        img_v, st_v = TTTModel(model, engine=engine, max_parallel=2, **kw).adapt_images(masked, mask, sens, [1, 2, 3])
        assert [s["steps"] for s in st_v] == [s["steps"] for s in st_l]
        assert torch.allclose(img_v, img_l, rtol=0, atol=1e-10 * float(img_l.abs().max()))


def test_scale_norm_is_one_scale_per_slice_without_a_mean_shift(tmp_path: Path) -> None:
    from mribench.models.checkpoints import load_checkpoint, save_checkpoint

    torch.manual_seed(0)
    model = ComplexUnetRecon(chans=4, num_pool_layers=2, input="rss-real-imag", maps="bart-ecalib", norm="scale")
    assert model.config["norm"] == "scale" and isinstance(model.net, ScaleNormUnet)
    # the default keeps the config of checkpoints written before the option
    assert "norm" not in ComplexUnetRecon(chans=4, num_pool_layers=2).config
    x = torch.rand(2, 2, 12, 10, dtype=torch.float64) + 1.0  # non-negative channels, as D22's input
    y, mean, std = model.net.norm(x)
    rms = x.flatten(1).pow(2).mean(1).sqrt()
    assert mean.shape == std.shape == (2, 2, 1, 1) and torch.all(mean == 0)
    assert torch.allclose(std[:, 0, 0, 0], rms) and torch.allclose(std[:, 1, 0, 0], rms)
    assert torch.allclose(y, x / rms.view(2, 1, 1, 1))
    image = torch.randn(2, 12, 10, dtype=torch.complex128)
    model = model.double()
    assert torch.allclose(model.image_to_image(3.0 * image), 3.0 * model.image_to_image(image), rtol=0, atol=1e-12)
    loaded, details = load_checkpoint(save_checkpoint(model, tmp_path / "m.safetensors"))
    assert isinstance(loaded.net, ScaleNormUnet) and details["config"] == model.config
    with torch.no_grad():
        assert torch.equal(loaded.double().image_to_image(image), model.image_to_image(image))
    with pytest.raises(ValueError, match="expected norm in"):
        ComplexUnetRecon(norm="group")
