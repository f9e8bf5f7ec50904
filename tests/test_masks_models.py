from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from mribench.errors import ModelError
from mribench.models import UnetRecon, VarNetRecon, load_model, save_checkpoint
from mribench.physics.masks import MaskSpec, volume_mask


def test_mask_is_fixed_per_volume_and_differs_between_volumes() -> None:
    spec = MaskSpec("equispaced", 4)
    a1, a2 = volume_mask(spec, 100, "file_a.h5"), volume_mask(spec, 100, "file_a.h5")
    assert not torch.equal(a1, volume_mask(MaskSpec("random", 4), 100, "file_a.h5"))
    assert torch.equal(a1, a2)
    center = a1[50 - 4 : 50 + 4]
    assert center.all()  # 8% of 100 columns fully sampled around the centre
    assert 100 / a1.sum() == pytest.approx(4, rel=0.35)
    assert volume_mask(spec, 100, "file_a.h5", padding=(10, 90))[:10].sum() == 0


def test_masks_leave_global_rng_untouched() -> None:
    np_state, torch_state = np.random.get_state(), torch.get_rng_state()
    for t in ("equispaced", "random"):
        volume_mask(MaskSpec(t, 8), 64, "f.h5")
    assert (np.random.get_state()[1] == np_state[1]).all() and torch.equal(torch.get_rng_state(), torch_state)


@pytest.mark.parametrize(
    "arch",
    [UnetRecon(chans=4, num_pool_layers=2), VarNetRecon(num_cascades=1, sens_chans=2, sens_pools=1, chans=2, pools=1)],
)
def test_checkpoint_round_trip(arch: torch.nn.Module, tmp_path: Path) -> None:
    p = save_checkpoint(arch, tmp_path / "m.safetensors", {"epoch": 3})
    lm = load_model(arch.arch, checkpoint=str(p))
    for (k, v), (k2, v2) in zip(arch.state_dict().items(), lm.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert lm.info.details["extra"] == {"epoch": 3} and len(lm.info.sha256) == 64


def test_arbitrary_pickles_are_never_loaded(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (print, ("pwned",))

    torch.save({"state_dict": {}, "obj": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ModelError, match="weights_only"):
        load_model(str(tmp_path / "evil.pt"))


def test_unet_without_checkpoint_is_refused() -> None:
    with pytest.raises(ModelError, match="--checkpoint"):
        load_model("unet")


def test_user_model_from_file(tmp_path: Path) -> None:
    f = tmp_path / "my_model.py"
    f.write_text(
        textwrap.dedent("""
        import torch
        from mribench.physics import zero_filled
        class Model:
            def __call__(self, masked_kspace, mask, meta):
                return zero_filled(masked_kspace, meta.target_size) * 2
        def build():
            return Model()
    """)
    )
    lm = load_model(f"{f}:build")
    assert lm.info.kind == "user" and callable(lm.model)
    with pytest.raises(ModelError, match="no such attribute"):
        load_model(f"{f}:missing")
