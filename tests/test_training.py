"""Training building blocks: fresh masks, shape batching, schedule, early stopping, checkpoints, resume."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mribench.data.index import build_index
from mribench.errors import ResultsError
from mribench.models import load_checkpoint
from mribench.tasks import make_splits, parse_task
from mribench.workflows.training.data import (
    MaskSampler,
    ShapeBatchSampler,
    TrainingSlices,
    ValidationSlices,
    split_holdout,
    spread_subset,
)
from mribench.workflows.training.early_stopping import early_stopping_epoch, should_stop
from mribench.workflows.training.schedule import (
    OneCycleLinear,
    WarmupLinearDecay,
    make_scheduler,
    warmup_steps_for,
)
from mribench.workflows.training.supervised import STATE_FILE, TrainConfig, ValSet, checkpoint_path, read_history, train

TASK = {
    "version": 1,
    "source": {"filter": {"anatomy": "knee"}},
    "target": {"filter": {"anatomy": "brain"}},
    "mask": {"type": "equispaced", "acceleration": 4},
    "splits": {"test_fraction": 0.5},
}
TINY = {"chans": 2, "num_pool_layers": 1}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: intra-op threads only add overhead


@pytest.fixture(scope="module")
def splits(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: ANN001
    task = parse_task(dict(TASK), "tiny-anatomy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MRIBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        return {"task": task, **make_splits(task, build_index(tiny_root))}


def _rng_state() -> tuple[np.ndarray, torch.Tensor]:
    return np.random.get_state()[1].copy(), torch.get_rng_state().clone()


def _same_rng(a: tuple[np.ndarray, torch.Tensor]) -> bool:
    b = _rng_state()
    return bool((a[0] == b[0]).all()) and torch.equal(a[1], b[1])


# --------------------------------------------------------------------------- data


def test_fresh_mask_per_sample_and_epoch_without_global_rng(splits: dict, tiny_root: Path) -> None:
    rows = splits["train_P"].rows
    ds = TrainingSlices(rows, tiny_root, MaskSampler("equispaced", (4,)), seed=3)
    before = _rng_state()
    masks = {}
    for epoch in range(4):
        ds.set_epoch(epoch)
        masks[epoch] = [ds[i]["mask"].flatten() for i in range(len(ds))]
    assert _same_rng(before)
    w = masks[0][0].numel()
    # fresh per (epoch, item): the 4 epochs' masks of one item are not all equal, nor are items of one epoch
    assert any(not torch.equal(masks[0][i], masks[e][i]) for e in (1, 2, 3) for i in range(len(ds)))
    assert len({tuple(m.tolist()) for m in masks[0]}) > 1
    # deterministic given (seed, epoch, item)
    ds.set_epoch(2)
    assert torch.equal(ds[1]["mask"].flatten(), masks[2][1])
    item = ds[0]
    pl, pr = int(rows.iloc[0]["padding_left"]), int(rows.iloc[0]["padding_right"])
    m = item["mask"].flatten()
    assert m[:pl].sum() == 0 and m[pr:].sum() == 0  # never-acquired columns stay zero
    assert m[w // 2 - 1 : w // 2 + 1].all()  # centre fully sampled
    assert torch.equal(item["masked_kspace"], item["masked_kspace"] * item["mask"])  # zeros where unsampled
    assert item["masked_kspace"].dtype == torch.complex64 and item["target"].shape == (32, 32)
    assert item["num_low_frequencies"] == round(w * 0.08) and item["acceleration"] == 4


def test_several_accelerations_and_fixed_validation_masks(splits: dict, tiny_root: Path) -> None:
    rows = splits["train_P"].rows
    ds = TrainingSlices(rows, tiny_root, MaskSampler("equispaced", (4, 8)), seed=0)
    accs = set()
    for epoch in range(3):
        ds.set_epoch(epoch)
        accs |= {ds[i]["acceleration"] for i in range(len(ds))}
    assert accs == {4, 8}
    spec = splits["task"].mask_for("test_P")
    val = ValidationSlices(splits["test_P"].rows, tiny_root, spec)
    from mribench.physics.masks import volume_mask

    it = val[0]
    w = it["mask"].shape[-1]
    exp = volume_mask(spec, w, it["file"], tuple(it["padding"].tolist()))
    assert torch.equal(it["mask"].flatten(), exp)


def test_shape_batches_equal_shapes_cover_once_and_shard() -> None:
    keys = [(4, 64, 40, 32, 32)] * 7 + [(8, 64, 40, 32, 32)] * 5
    s = ShapeBatchSampler(keys, 3, seed=1)
    b0 = s.batches()
    assert all(len({keys[i] for i in b}) == 1 for b in b0)
    assert sorted(i for b in b0 for i in b) == list(range(12))
    s.set_epoch(1)
    assert s.batches() != b0  # reshuffled per epoch
    s.set_epoch(0)
    assert s.batches() == b0  # and a function of (seed, epoch)
    shards = [ShapeBatchSampler(keys, 3, seed=1, rank=r, world_size=2).batches() for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 3
    assert {i for sh in shards for b in sh for i in b} == set(range(12))
    with pytest.raises(ValueError, match="batch_size"):
        ShapeBatchSampler(keys, 0)


def test_holdout_and_spread_subset(splits: dict) -> None:
    rows = splits["train_P"].rows
    tr, ho = split_holdout(rows, 0.25, seed=0)
    assert set(tr["file"]).isdisjoint(ho["file"]) and len(tr) + len(ho) == len(rows) and len(ho) > 0
    assert split_holdout(rows, 0.25, seed=0)[1].equals(ho)
    sub = spread_subset(rows, 5)
    assert len(sub) == 5 and sub.iloc[0]["file"] == rows.iloc[0]["file"]


# --------------------------------------------------------------------------- schedule and early stopping


def test_warmup_then_linear_decay_values() -> None:
    f = WarmupLinearDecay(total_steps=10, warmup_steps=2)
    assert [f(s) for s in range(10)] == pytest.approx([0.5, 1.0, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8])
    assert WarmupLinearDecay(4, 0)(0) == 1.0 and WarmupLinearDecay(4, 0)(3) == 0.25
    assert warmup_steps_for(100, 0.05) == 5 and warmup_steps_for(100, 0.0) == 0 and warmup_steps_for(3, 0.01) == 1
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=0.1)
    sched = make_scheduler(opt, 10, 2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.1 * f(s) for s in range(10)])
    with pytest.raises(ValueError, match="warmup_steps"):
        WarmupLinearDecay(5, 5)
    with pytest.raises(ValueError, match="warmup_fraction"):
        warmup_steps_for(10, 1.0)


def _lrs(opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    out = []
    for i in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if i < steps - 1:  # torch's OneCycleLR refuses a step past its total
            sched.step()
    return out


@pytest.mark.parametrize("total", [250, 1000, 3017])
def test_lh24_schedule_equals_torch_onecycle_as_lin_and_heckel_configure_it(total: int) -> None:
    """Lin & Heckel's main.py: OneCycleLR(pct_start=0.01, linear, div_factor=25, final_div_factor=1, no momentum)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=0.0)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=1e-3,
        total_steps=total,
        pct_start=0.01,
        anneal_strategy="linear",
        cycle_momentum=False,
        base_momentum=0.0,
        max_momentum=0.0,
        div_factor=25.0,
        final_div_factor=1.0,
    )
    want = _lrs(opt, ref, total)
    opt2 = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    got = _lrs(opt2, make_scheduler(opt2, total, 0, "onecycle-lh24", 0.01), total)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-15)
    assert (
        got[0] == pytest.approx(4e-5) and got[-1] == pytest.approx(4e-5) and max(got) == pytest.approx(1e-3, rel=5e-3)
    )


def test_onecycle_short_trainings_and_constant_schedule() -> None:
    f = OneCycleLinear(100, 0.01)  # torch divides by zero here (its warm-up ends at step 0)
    assert f(0) == pytest.approx(0.04) and f(1) == 1.0 and f(99) == pytest.approx(0.04)
    assert all(0.04 - 1e-12 <= f(s) <= 1.0 for s in range(100))
    assert OneCycleLinear(1, 0.01)(0) == pytest.approx(0.04)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-5)
    assert _lrs(opt, make_scheduler(opt, 7, 0, "constant"), 7) == [1e-5] * 7
    with pytest.raises(ValueError, match="schedule"):
        make_scheduler(opt, 7, 0, "cosine")
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(schedule="cosine")


def test_task_masks_are_the_volume_masks_in_every_epoch(splits: dict, tiny_root: Path) -> None:
    """``fixed`` samplers (recipes' ``masks: task``, Darestani et al.'s fixed mask) give the evaluator's masks."""
    spec = splits["task"].mask_for("train_P")
    rows = splits["train_P"].rows
    ds = TrainingSlices(rows, tiny_root, MaskSampler.from_spec(spec, fixed=True), seed=3)
    val = ValidationSlices(rows, tiny_root, spec)
    for epoch in (1, 2):
        ds.set_epoch(epoch)
        for i in range(len(rows)):
            a, b = ds[i], val[i]
            assert torch.equal(a["mask"], b["mask"]) and a["num_low_frequencies"] == b["num_low_frequencies"]
    with pytest.raises(ValueError, match="accelerations"):
        MaskSampler.from_spec(spec, [4, 8], fixed=True)


def test_d22_losses_train_the_complex_unet(splits: dict, tiny_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("sigpy")
    model = {**TINY, "input": "rss-real-imag", "maps": "bart-ecalib"}
    for loss in ("d22-sup", "d22-joint"):
        cfg = TrainConfig(
            arch="unet-complex",
            model=model,
            loss=loss,
            epochs=2,
            lr=3e-3,
            schedule="constant",
            batch_size=2,
            grad_clip=0.0,
        )
        res = train(cfg, splits["train_P"].rows, tiny_root, tmp_path / loss, masks=MaskSampler())
        losses = [h["train_loss"] for h in res.history]
        assert all(np.isfinite(losses)) and losses[-1] < losses[0]
        maps = list((tmp_path / loss / "sens_cache").glob("*_bart-ecalib.npy"))
        assert len(maps) == (len(splits["train_P"].rows) if loss == "d22-joint" else 0)
    with pytest.raises(ValueError, match="unet-complex"):
        TrainConfig(arch="unet", loss="d22-sup")


def _hist(values: list[float]) -> list[dict]:
    return [{"epoch": i + 1, "id_ssim": v} for i, v in enumerate(values)]


def test_early_stopping_rule() -> None:
    h = _hist([0.50, 0.60, 0.65, 0.6505, 0.6508, 0.651, 0.70])
    d = early_stopping_epoch(h, patience=2, threshold=1e-3)
    # improvements of the best over 2 epochs: e3 .15, e4 .0505, e5 .0008 < 1e-3 -> stop after epoch 5
    assert (d.stop_epoch, d.chosen_epoch) == (5, 5) and d.improvement == pytest.approx(0.0008)
    assert should_stop(h[:5], patience=2, threshold=1e-3) and not should_stop(h[:4], patience=2, threshold=1e-3)
    # relative threshold: 1% of the earlier best
    d = early_stopping_epoch(h, patience=1, threshold=0.01, mode="relative")
    assert (d.stop_epoch, d.chosen_epoch) == (4, 4)
    # a decline picks the best epoch before the stop
    d = early_stopping_epoch(_hist([0.5, 0.7, 0.69, 0.68, 0.67]), patience=2, threshold=1e-3)
    assert (d.stop_epoch, d.chosen_epoch) == (4, 2)
    # never fires: best overall; losses: lower is better
    d = early_stopping_epoch(_hist([0.1, 0.2, 0.3]), patience=1)
    assert not d.stopped and d.chosen_epoch == 3
    d = early_stopping_epoch(
        [{"epoch": e, "loss": v} for e, v in [(1, 0.9), (2, 0.5), (3, 0.5)]],
        key="loss",
        patience=1,
        higher_is_better=False,
    )
    assert (d.stop_epoch, d.chosen_epoch) == (3, 2)
    with pytest.raises(ValueError, match="finite"):
        early_stopping_epoch([{"epoch": 1, "id_ssim": None}])
    with pytest.raises(ValueError, match="mode"):
        early_stopping_epoch(h, mode="percent")


# --------------------------------------------------------------------------- training


def _train(splits: dict, tiny_root: Path, out: Path, epochs: int = 2, **kw) -> object:  # noqa: ANN003
    task = splits["task"]
    cfg = TrainConfig(model=TINY, epochs=epochs, batch_size=2, lr=3e-3, seed=5, **kw)
    val = {s: ValSet(spread_subset(splits[s].rows, 3), task.mask_for(s)) for s in ("test_P", "test_Q")}
    return train(
        cfg,
        splits["train_P"].rows,
        tiny_root,
        out,
        masks=MaskSampler.from_spec(task.source.mask),
        val_sets=val,
        id_sets=["test_P"],
        ood_sets=["test_Q"],
        device="cpu",
    )


def test_training_writes_loadable_checkpoints_state_and_history(splits: dict, tiny_root: Path, tmp_path: Path) -> None:
    before = _rng_state()
    r = _train(splits, tiny_root, tmp_path / "t", epochs=2)
    assert _same_rng(before)  # init, dropout seeding, loaders: global RNG untouched
    state = torch.load(tmp_path / "t" / STATE_FILE, weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 2 * 6 and {"optimizer", "scheduler"} <= set(state)
    for e in (1, 2):
        model, details = load_checkpoint(checkpoint_path(tmp_path / "t", e))
        assert details["arch"] == "unet" and details["extra"]["epoch"] == e
    model, _ = load_checkpoint(r.checkpoint())
    for k, v in r.model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k])
    hist = read_history(tmp_path / "t")
    assert [h["epoch"] for h in hist] == [1, 2]
    for h in hist:
        assert 0 < h["id_ssim"] < 1 and 0 < h["ood_ssim"] < 1 and h["train_loss"] > 0 and h["seconds"] > 0
        assert set(h["ssim"]) == {"test_P", "test_Q"}
    assert json.loads((tmp_path / "t" / "history.json").read_text())["ood_sets"] == ["test_Q"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    with pytest.raises(ResultsError, match="same training config"):
        _train(splits, tiny_root, tmp_path / "t", epochs=3)


def test_bf16_training_option_keeps_old_hashes_and_trains_like_fp32(
    splits: dict, tiny_root: Path, tmp_path: Path
) -> None:
    # the default's hash as it was before the option existed: old trainings resume, provenance holds
    assert TrainConfig().sha256() == "83c2ba8e89194fa935c78020af760b74d1e321887286658d992ca7e1e65d3fa1"
    assert "precision" not in TrainConfig().to_dict()
    bf = TrainConfig(precision="bf16")
    assert bf.to_dict()["precision"] == "bf16" and TrainConfig.from_dict(bf.to_dict()) == bf
    with pytest.raises(ValueError, match="expected precision in"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="expected precision 'fp32' with loss 'd22-sup'"):
        TrainConfig(arch="unet-complex", loss="d22-sup", precision="bf16")
    r32 = _train(splits, tiny_root, tmp_path / "fp32", epochs=1)
    r16 = _train(splits, tiny_root, tmp_path / "bf16", epochs=1, precision="bf16")
    l32, l16 = r32.history[0]["train_loss"], r16.history[0]["train_loss"]
    assert math.isfinite(l16) and abs(l16 - l32) < 1e-3 * l32  # same init, batches and masks
    assert abs(r16.history[0]["id_ssim"] - r32.history[0]["id_ssim"]) < 1e-3
    assert all(p.dtype == torch.float32 for p in r16.model.parameters())  # weights and Adam stay fp32
    with pytest.raises(ResultsError, match="same training config"):
        _train(splits, tiny_root, tmp_path / "bf16", epochs=1)  # fp32 cannot resume a bf16 training


_KILL = """
import os, signal, sys
import torch
torch.set_num_threads(1)  # same as the test process: bitwise equality needs the same reduction order
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_training import TASK, TINY
from mribench.data.index import build_index
from mribench.tasks import make_splits, parse_task
from mribench.workflows.training.data import MaskSampler, spread_subset
from mribench.workflows.training.supervised import TrainConfig, ValSet, train
task = parse_task(dict(TASK), "tiny-anatomy")
sp = make_splits(task, build_index(Path({root!r})))
cfg = TrainConfig(model=TINY, epochs=3, batch_size=2, lr=3e-3, seed=5)
val = {{s: ValSet(spread_subset(sp[s].rows, 3), task.mask_for(s)) for s in ("test_P", "test_Q")}}
def on_epoch(rec):
    if rec["epoch"] == 2:
        os.kill(os.getpid(), signal.SIGKILL)
train(cfg, sp["train_P"].rows, Path({root!r}), Path({out!r}), masks=MaskSampler.from_spec(task.source.mask),
      val_sets=val, id_sets=["test_P"], ood_sets=["test_Q"], device="cpu", on_epoch=on_epoch)
"""


def test_killed_training_resumes_and_reproduces_the_uninterrupted_run(
    splits: dict, tiny_root: Path, tmp_path: Path
) -> None:
    full = _train(splits, tiny_root, tmp_path / "full", epochs=3)
    script = tmp_path / "kill.py"
    out = tmp_path / "killed"
    script.write_text(
        textwrap.dedent(_KILL.format(tests=str(Path(__file__).parent), root=str(tiny_root), out=str(out)))
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert torch.load(out / STATE_FILE, weights_only=True)["epoch"] == 2 and not checkpoint_path(out, 3).exists()
    resumed = _train(splits, tiny_root, out, epochs=3)
    a, b = load_file(str(full.checkpoint(3))), load_file(str(resumed.checkpoint(3)))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda h: [{k: v for k, v in r.items() if "seconds" not in k} for r in h]  # noqa: E731
    assert strip(full.history) == strip(resumed.history)


_DDP = """
import hashlib, os, sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from pathlib import Path
from test_training import TASK, TINY
from mribench.data.index import build_index
from mribench.tasks import make_splits, parse_task
from mribench.workflows.training.data import MaskSampler, spread_subset
from mribench.workflows.training.supervised import TrainConfig, ValSet, train
root, out = Path({root!r}), Path({out!r})
task = parse_task(dict(TASK), "tiny-anatomy")
sp = make_splits(task, build_index(root))
cfg = TrainConfig(model=TINY, epochs=2, batch_size=2, lr=3e-3, seed=5)
val = {{s: ValSet(spread_subset(sp[s].rows, 3), task.mask_for(s)) for s in ("test_P", "test_Q")}}
r = train(cfg, sp["train_P"].rows, root, out, masks=MaskSampler.from_spec(task.source.mask),
          val_sets=val, id_sets=["test_P"], ood_sets=["test_Q"], device="cpu")
h = hashlib.sha256(b"".join(v.numpy().tobytes() for v in r.model.state_dict().values())).hexdigest()
(out / ("rank" + os.environ["RANK"] + ".txt")).write_text(h)
"""


@pytest.mark.slow
def test_torchrun_ddp_on_cpu_with_gloo(tiny_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(_DDP.format(tests=str(Path(__file__).parent), root=str(tiny_root), out=str(out))))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "rank0.txt").read_text() == (out / "rank1.txt").read_text()  # gradients all-reduced
    hist = read_history(out)
    assert [h["step"] for h in hist] == [3, 6]  # 6 batches per epoch sharded over 2 ranks
    assert checkpoint_path(out, 2).is_file()
