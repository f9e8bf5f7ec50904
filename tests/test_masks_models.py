from __future__ import annotations

import textwrap
from dataclasses import replace
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


# ----------------------------------------------------------------------------- the papers' masks


@pytest.mark.parametrize("name", ["lh24-anatomy", "lh24-field", "lh24-coils", "lh24-acceleration"])
@pytest.mark.parametrize("fname", ["file1000000.h5", "file_brain_AXT2_200_6002026.h5", "file1002377.h5"])
@pytest.mark.parametrize("width", [368, 372, 320, 396])
def test_lh24_masks_are_fastmris_with_the_file_name_seed(name: str, fname: str, width: int) -> None:
    """Lin & Heckel's test masks: EquiSpacedMaskFunc(centre fractions, accelerations) called by
    fastmri's transforms with ``seed = tuple(map(ord, fname))`` on (coils, H, W, 2) k-space."""
    from fastmri.data.subsample import EquiSpacedMaskFunc

    from mribench.tasks import load_task

    lh24 = {2: 0.16, 3: 0.12, 4: 0.08, 8: 0.04, 16: 0.02}  # their mask_func_params
    task = load_task(name)
    for side in (task.source, task.target):
        accs = list(side.mask.accelerations or (side.mask.acceleration,))
        func = EquiSpacedMaskFunc(center_fractions=[lh24[a] for a in accs], accelerations=accs)
        want, num_low = func((15, 640, width, 2), seed=tuple(map(ord, fname)))
        assert torch.equal(volume_mask(side.mask, width, fname), want.reshape(width))
        choice = side.mask.choice(width, fname)
        assert choice.num_low_frequencies == num_low and choice.acceleration in accs


@pytest.mark.parametrize("width", [320, 368, 372, 396])
def test_d22_masks_have_the_papers_centre_lines_and_are_fixed_per_task(width: int) -> None:
    """Darestani et al.'s masks: random, 33 fully sampled centre lines at 4x, 68 at 2x (their
    stored masks at widths 320-396), one mask for every volume of a dataset."""
    from mribench.tasks import load_task

    for name, lines in [("d22-anatomy", {"P": 33, "Q": 33}), ("d22-acceleration", {"P": 33, "Q": 68})]:
        task = load_task(name)
        for side, spec in (("P", task.source.mask), ("Q", task.target.mask)):
            n = lines[side]
            mask = volume_mask(spec, width, "file1000000.h5")
            pad = (width - n + 1) // 2  # fastmri's centre placement, as in the paper's masks
            assert mask[pad : pad + n].all() and spec.choice(width, "x.h5").num_low_frequencies == n
            assert spec.type == "random" and abs(width / float(mask.sum()) - spec.acceleration) < 0.5
            assert torch.equal(mask, volume_mask(spec, width, "file_brain_AXT2_200_6002026.h5"))  # one fixed mask
    # the per-volume option: a different mask per file, same centre
    per_volume = replace(load_task("d22-anatomy").target.mask, seed_rule="file_hash")
    a, b = volume_mask(per_volume, width, "a.h5"), volume_mask(per_volume, width, "b.h5")
    assert not torch.equal(a, b) and a[(width - 32) // 2 : (width - 32) // 2 + 33].all()


def test_d22_centre_lines_scale_on_narrow_kspace_only() -> None:
    spec = MaskSpec("random", 4, center_lines=33, center_lines_min_width=320, seed_rule="fixed")
    assert spec.lines(368) == 33 and spec.lines(320) == 33 and spec.lines(136) == 14 and spec.lines(72) == 7
    assert MaskSpec("random", 4, center_lines=33, seed_rule="fixed").lines(136) == 33


def test_mask_spec_round_trips_and_rejects_nonsense() -> None:
    for spec in [
        MaskSpec("equispaced", 4),
        MaskSpec("random", 2, center_lines=68, center_lines_min_width=320, seed_rule="fixed", seed=3),
        MaskSpec.from_dict({"acceleration": [2, 3], "seed_rule": "fastmri"}),
    ]:
        back = MaskSpec.from_dict(spec.to_dict())  # run.json's record reads back as the same masks
        assert back.to_dict() == spec.to_dict() and back.choices == spec.choices
        assert torch.equal(volume_mask(back, 320, "f.h5"), volume_mask(spec, 320, "f.h5"))
    with pytest.raises(ValueError, match="seed 0 with seed_rule fastmri"):
        MaskSpec(seed=1, seed_rule="fastmri")
    with pytest.raises(ValueError, match="seed_rule"):
        MaskSpec(seed_rule="per_slice")
    with pytest.raises(ValueError, match="either center_lines or a centre fraction"):
        MaskSpec("random", 4, center_fraction=0.08, center_lines=33)
    with pytest.raises(ValueError, match="random masks"):
        MaskSpec("equispaced", 4, center_lines=33)
    with pytest.raises(ValueError, match="one centre fraction"):
        _ = MaskSpec.from_dict({"acceleration": [2, 3]}).cf
