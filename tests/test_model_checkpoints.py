"""Checkpoints as the field distributes them: bare fastMRI state dicts, Lightning .ckpt, D22's U-Net."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fastmri.models import Unet, VarNet

from mribench import Runtime, evaluate
from mribench.api.model import SliceMeta
from mribench.errors import ModelError
from mribench.models import UnetRecon, VarNetRecon, load_checkpoint, load_model, save_checkpoint
from mribench.models.architectures import architecture_names, build_architecture
from mribench.models.d22_unet import D22UnetRecon
from mribench.tasks import parse_task

TASK = {
    "version": 1,
    "source": {"filter": {"anatomy": "knee"}},
    "target": {"filter": {"anatomy": "brain"}},
    "mask": {"type": "equispaced", "acceleration": 4},
    "splits": {"test_fraction": 0.5},
    "metrics": ["ssim"],
}


def _seeded(build: Any, seed: int = 0) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _tiny_unet() -> Unet:
    return _seeded(lambda: Unet(in_chans=1, out_chans=1, chans=4, num_pool_layers=2, drop_prob=0.0))


def _tiny_varnet() -> VarNet:
    return _seeded(lambda: VarNet(num_cascades=2, sens_chans=2, sens_pools=1, chans=3, pools=2))


def _per_slice_ssim(model: str, root: Path, run_dir: Path) -> np.ndarray:
    r = evaluate(
        model, parse_task(dict(TASK), "tiny-anatomy"), data=root, run_dir=run_dir, runtime=Runtime(batch_size=2)
    )
    assert (r.slices["status"] == "ok").all()
    return r.slices.sort_values(["split", "file", "slice"])["ssim"].to_numpy()


@pytest.fixture()
def fake_lightning() -> Any:
    """Old-style (PyTorch Lightning 1.x) classes a checkpoint pickles: the hyper-parameter
    ``AttributeDict`` and the ``ModelCheckpoint`` class as a callbacks key, under their real
    module names (modules faked for the time of the save only)."""
    parsing = types.ModuleType("pytorch_lightning.utilities.parsing")
    callbacks = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")

    class AttributeDict(dict):
        def __getattr__(self, key: str) -> Any:
            return self[key]

    class ModelCheckpoint:
        pass

    AttributeDict.__module__, AttributeDict.__qualname__ = parsing.__name__, "AttributeDict"
    ModelCheckpoint.__module__, ModelCheckpoint.__qualname__ = callbacks.__name__, "ModelCheckpoint"
    parsing.AttributeDict = AttributeDict  # type: ignore[attr-defined]
    callbacks.ModelCheckpoint = ModelCheckpoint  # type: ignore[attr-defined]
    modules = {
        "pytorch_lightning": types.ModuleType("pytorch_lightning"),
        "pytorch_lightning.utilities": types.ModuleType("pytorch_lightning.utilities"),
        "pytorch_lightning.callbacks": types.ModuleType("pytorch_lightning.callbacks"),
        parsing.__name__: parsing,
        callbacks.__name__: callbacks,
    }

    def save(obj: Any, path: Path) -> None:
        with pytest.MonkeyPatch.context() as mp:
            for name, mod in modules.items():
                mp.setitem(sys.modules, name, mod)
            torch.save(obj, path)

    return types.SimpleNamespace(AttributeDict=AttributeDict, ModelCheckpoint=ModelCheckpoint, save=save)


def _lightning_checkpoint(net: torch.nn.Module, prefix: str, hparams: Any, callbacks: Any) -> dict[str, Any]:
    """What fastMRI's ``UnetModule`` / ``VarNetModule`` checkpoints hold: the network under ``unet.`` /
    ``varnet.``, VarNetModule's SSIM-loss window ``loss.w``, optimizer and scheduler states, loops,
    callbacks and hyper-parameters."""
    state = OrderedDict((prefix + k, v) for k, v in net.state_dict().items())
    if prefix == "varnet.":
        state["loss.w"] = torch.ones(1, 1, 7, 7) / 49
    opt = torch.optim.Adam(net.parameters(), lr=3e-4)
    sched = torch.optim.lr_scheduler.StepLR(opt, 40, 0.1)
    return {
        "epoch": 49,
        "global_step": 1234,
        "pytorch-lightning_version": "1.0.3",
        "state_dict": state,
        "optimizer_states": [opt.state_dict()],
        "lr_schedulers": [sched.state_dict()],
        "callbacks": callbacks,
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 49}}}},
        "hparams_name": "kwargs",
        "hyper_parameters": hparams,
    }


# ------------------------------------------------------------------------------------------ U-Net


def test_bare_unet_state_dict_scores_like_mribench_format(tiny_root: Path, tmp_path: Path, one_thread: None) -> None:
    net = _tiny_unet()
    torch.save(net.state_dict(), tmp_path / "unet_state_dict.pt")
    own = UnetRecon(chans=4, num_pool_layers=2)
    own.unet.load_state_dict(net.state_dict())
    save_checkpoint(own, tmp_path / "own.safetensors")

    lm = load_model("unet", checkpoint=str(tmp_path / "unet_state_dict.pt"))
    assert lm.info.details["arch"] == "unet" and lm.info.details["config"]["chans"] == 4
    assert "chans=4, num_pool_layers=2 from tensor shapes" in lm.info.details["inferred"]
    bare = _per_slice_ssim(str(tmp_path / "unet_state_dict.pt"), tiny_root, tmp_path / "r1")
    ref = _per_slice_ssim(str(tmp_path / "own.safetensors"), tiny_root, tmp_path / "r2")
    assert len(bare) > 4 and np.array_equal(bare, ref)


def test_lightning_unet_checkpoint_new_and_old_style(tmp_path: Path, fake_lightning: Any) -> None:
    net = _tiny_unet()
    new = _lightning_checkpoint(net, "unet.", {"in_chans": 1, "chans": 4, "num_pool_layers": 2, "drop_prob": 0.0}, {})
    torch.save(new, tmp_path / "new.ckpt")
    hp = fake_lightning.AttributeDict(in_chans=1, out_chans=1, chans=4, num_pool_layers=2, drop_prob=0.0, lr=1e-3)
    cb = {
        fake_lightning.ModelCheckpoint: {"dirpath": pathlib.PosixPath("/runs/x"), "best_model_score": torch.tensor(0.9)}
    }
    old = _lightning_checkpoint(net, "unet.", hp, cb)
    old["hparams"] = argparse.Namespace(mode="train", data_path=pathlib.PosixPath("/data"))
    fake_lightning.save(old, tmp_path / "old.ckpt")

    x = torch.randn(1, 1, 16, 16)
    for name in ("new.ckpt", "old.ckpt"):
        model, details = load_checkpoint(tmp_path / name)
        assert details["arch"] == "unet" and "Lightning checkpoint" in details["inferred"]
        assert "drop_prob=0.0 from hyper-parameters" in details["inferred"]
        with torch.no_grad():
            assert torch.equal(model.unet(x), net.eval()(x))


def test_safetensors_without_metadata_and_wrapper_prefixes(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    net = _tiny_unet()
    save_file(dict(net.state_dict()), str(tmp_path / "unet.safetensors"))
    model, details = load_checkpoint(tmp_path / "unet.safetensors")
    assert details["arch"] == "unet" and "safetensors state dict without mribench metadata" in details["inferred"]
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "ddp.pt")
    model, details = load_checkpoint(tmp_path / "ddp.pt")
    assert "'module.' prefix removed" in details["inferred"]
    x = torch.randn(1, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.unet(x), net.eval()(x))
    with pytest.raises(ModelError, match="expected a varnet checkpoint, got a unet one"):
        load_model("varnet", checkpoint=str(tmp_path / "ddp.pt"))


def test_unexpected_channels_and_leftover_tensors_are_refused(tmp_path: Path) -> None:
    torch.save(Unet(in_chans=3, out_chans=1, chans=2, num_pool_layers=1).state_dict(), tmp_path / "rgb.pt")
    with pytest.raises(ModelError, match="3 -> 1"):
        load_model(str(tmp_path / "rgb.pt"))
    state = {f"unet.{k}": v for k, v in _tiny_unet().state_dict().items()}
    torch.save({"state_dict": {**state, "discriminator.weight": torch.zeros(2)}}, tmp_path / "gan.ckpt")
    with pytest.raises(ModelError, match="discriminator"):
        load_model(str(tmp_path / "gan.ckpt"))
    torch.save({"weights": state}, tmp_path / "odd.pt")
    with pytest.raises(ModelError, match="got keys \\['weights'\\]"):
        load_model(str(tmp_path / "odd.pt"))


# ----------------------------------------------------------------------------------------- VarNet


def test_bare_and_lightning_varnet_score_like_mribench_format(
    tiny_root: Path, tmp_path: Path, one_thread: None, fake_lightning: Any
) -> None:
    net = _tiny_varnet()
    torch.save(net.state_dict(), tmp_path / "varnet_state_dict.pt")
    hp = fake_lightning.AttributeDict(num_cascades=2, pools=2, chans=3, sens_pools=1, sens_chans=2, lr=3e-4)
    fake_lightning.save(_lightning_checkpoint(net, "varnet.", hp, {}), tmp_path / "varnet.ckpt")
    own = VarNetRecon(num_cascades=2, sens_chans=2, sens_pools=1, chans=3, pools=2)
    own.varnet.load_state_dict(net.state_dict())
    save_checkpoint(own, tmp_path / "own.safetensors")

    lm = load_model("varnet", checkpoint=str(tmp_path / "varnet_state_dict.pt"))
    assert lm.info.details["config"] == own.config
    assert lm.info.details["inferred"].startswith("fastMRI VarNet, bare state dict: num_cascades=2")
    ref = _per_slice_ssim(str(tmp_path / "own.safetensors"), tiny_root, tmp_path / "r0")
    bare = _per_slice_ssim(str(tmp_path / "varnet_state_dict.pt"), tiny_root, tmp_path / "r1")
    lightning = _per_slice_ssim(str(tmp_path / "varnet.ckpt"), tiny_root, tmp_path / "r2")
    assert len(ref) > 4 and np.array_equal(bare, ref) and np.array_equal(lightning, ref)


# -------------------------------------------------------------------------------------------- D22


def _d22_reference(net: torch.nn.Module, kspace: torch.Tensor, target_size: tuple[int, int]) -> torch.Tensor:
    """D22's inference written as their notebook does it (fastmri's trailing-2 tensors, k-space rescaled
    in place by the five-step norm matching), then divided by the scale (mribench's contract)."""
    import fastmri

    def net_input(k2: torch.Tensor) -> torch.Tensor:  # (C, H, W, 2) -> (1, 2, H, W)
        im = fastmri.ifft2c(k2)
        return torch.moveaxis(torch.sqrt(torch.sum(torch.abs(im) ** 2, 0))[None], -1, 1)

    k = torch.view_as_real(kspace)
    x = net_input(k)
    scaled = k
    for step in range(5):
        out = torch.moveaxis(net(x), 1, -1)
        ratio = torch.norm(out) / torch.norm(x)
        scaled = (k if step == 0 else scaled) * ratio
        x = net_input(scaled)
    s = torch.norm(scaled) / torch.norm(k)
    out = torch.moveaxis(net(x), 1, -1)
    rec = fastmri.data.transforms.center_crop(fastmri.complex_abs(out[0]), target_size)
    return rec / s


def test_d22_checkpoint_layout_and_input_convention(tmp_path: Path, one_thread: None) -> None:
    net = _seeded(lambda: Unet(in_chans=2, out_chans=2, chans=4, num_pool_layers=2)).eval()
    # D22's notebooks save {'model_state_dict': UnetMRIModel.state_dict()}: the U-Net under 'unet.'
    torch.save({"model_state_dict": {f"unet.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "knee_sup.pt")
    lm = load_model(str(tmp_path / "knee_sup.pt"))
    assert lm.info.details["arch"] == "unet-d22" and lm.info.details["config"]["chans"] == 4
    assert "D22 2-channel U-Net" in lm.info.details["inferred"]
    assert load_model("unet-d22", checkpoint=str(tmp_path / "knee_sup.pt")).info.details["arch"] == "unet-d22"
    with pytest.raises(ModelError, match="expected a unet checkpoint, got a unet-d22 one"):
        load_model("unet", checkpoint=str(tmp_path / "knee_sup.pt"))

    g = torch.Generator().manual_seed(1)
    k = torch.complex(torch.randn(2, 3, 24, 20, generator=g), torch.randn(2, 3, 24, 20, generator=g))
    meta = SliceMeta("f.h5", (0, 1), (16, 16), (0, 20), 4, 4, 1.0)
    with torch.no_grad():
        got = lm(k, torch.ones(2, 1, 1, 20), meta)
        for b in range(2):
            ref = _d22_reference(net, k[b], (16, 16))
            torch.testing.assert_close(got[b], ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()))
        # positively homogeneous: the reconstruction scales with the data
        torch.testing.assert_close(lm(7.0 * k, torch.ones(2, 1, 1, 20), meta), 7.0 * got, rtol=1e-4, atol=1e-6)


def test_architecture_registry_builds_every_architecture() -> None:
    assert {"unet", "varnet", "unet-complex", "unet-d22"} <= set(architecture_names())
    model = build_architecture("unet-d22", chans=8, num_pool_layers=2)
    assert isinstance(model, D22UnetRecon) and model.config == {"chans": 8, "num_pool_layers": 2, "drop_prob": 0.0}
    with pytest.raises(ModelError, match="did you mean 'unet-d22'"):
        build_architecture("unet-d2")
    with pytest.raises(ModelError, match="hyper-parameters"):
        build_architecture("unet", channels=3)


# ------------------------------------------------------------------------------------------ safety


def test_pickles_that_name_other_objects_are_refused_unread(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (os.makedirs, (str(marker),))

    net = _tiny_unet()
    ckpt = _lightning_checkpoint(net, "unet.", {"chans": 4}, {})
    ckpt["hyper_parameters"] = {"chans": 4, "payload": Evil()}
    torch.save(ckpt, tmp_path / "evil.ckpt")
    torch.save({"state_dict": net.state_dict(), "x": Evil()}, tmp_path / "evil.pt")
    for name in ("evil.ckpt", "evil.pt"):
        with pytest.raises(ModelError, match=r"weights_only=True.*os.makedirs"):
            load_model(str(tmp_path / name))
    assert not marker.exists()


def test_stand_ins_run_nothing(tmp_path: Path, fake_lightning: Any) -> None:
    """A pickle that calls a Lightning-named class gets an inert stand-in, whatever the arguments."""
    from mribench.models.safe_load import StandIn, safe_torch_load

    marker = tmp_path / "ran"
    fake_lightning.save(
        {"cb": {fake_lightning.ModelCheckpoint: {"path": pathlib.PosixPath(marker)}}}, tmp_path / "a.ckpt"
    )
    obj = safe_torch_load(tmp_path / "a.ckpt")
    (key,) = obj["cb"]
    assert issubclass(key, StandIn) and key.stands_for.endswith("ModelCheckpoint")
    assert isinstance(obj["cb"][key]["path"], StandIn) and not marker.exists()
