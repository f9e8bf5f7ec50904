"""Baseline recipes: configs, the recipe runner end to end on tiny data, the CLI, shipped checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from mribench.cli.baseline import baseline_app
from mribench.data.index import build_index
from mribench.errors import TaskError
from mribench.tasks import make_splits, parse_task
from mribench.workflows.training.recipe_files import config_yaml
from mribench.workflows.training.recipes import (
    DEFAULTS,
    RECIPES,
    _Data,
    diverse_groups,
    load_recipe_config,
    parse_recipe_config,
    run_recipe,
)

BASELINES = Path(__file__).resolve().parents[1] / "baselines"
TASK = {
    "version": 1,
    "source": {"filter": {"anatomy": "knee"}},
    "target": {"filter": {"anatomy": "brain"}},
    "mask": {"type": "equispaced", "acceleration": 4},
    "splits": {"test_fraction": 0.5},
    "metrics": ["ssim", "psnr"],
}
TINY = {
    "training": {"model": {"chans": 2, "num_pool_layers": 1}, "batch_size": 3, "lr": 3e-3},
    "val_limit": 3,
    "evaluation": {"batch_size": 3, "limit": 3},
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: intra-op threads only add overhead


@pytest.fixture()
def task_yaml(tmp_path: Path) -> Path:
    p = tmp_path / "tiny-anatomy.yaml"
    p.write_text(yaml.safe_dump(TASK))
    return p


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_config_files_equal_the_recipe_defaults(name: str) -> None:
    """recipes.DEFAULTS is the source of truth; the shipped files are generated from it."""
    path = BASELINES / name / "config.yaml"
    assert path.read_text() == config_yaml(name), f"{path} is stale: run `mribench baseline config --write baselines`"
    assert yaml.safe_load(path.read_text()) == DEFAULTS[name]
    assert (BASELINES / name / "README.md").is_file()
    cfg = load_recipe_config(name, path)
    assert cfg.recipe == name and cfg.to_dict()["training"] == DEFAULTS[name]["training"]


def test_shipped_checkpoints_train_with_the_fidelity_settings() -> None:
    """The docs say unet-sim-{knee,brain,joint} are the networks whose shift sizes benchmarks/fidelity.py
    measures: the two override files give every supervised recipe the same configuration."""
    shipped = yaml.safe_load((BASELINES / "anatomy" / "embedded.yaml").read_text())
    fidelity = yaml.safe_load((BASELINES.parent / "benchmarks" / "fidelity.yaml").read_text())
    assert shipped == fidelity
    for recipe in ("sup-p", "sup-q", "joint"):
        a = load_recipe_config(recipe, BASELINES / "anatomy" / "embedded.yaml").to_dict()
        b = load_recipe_config(recipe, BASELINES.parent / "benchmarks" / "fidelity.yaml").to_dict()
        assert a == b and a["training"]["precision"] == "bf16" and a["training"]["model"]["chans"] == 24


def test_recipe_config_overrides_and_errors(tmp_path: Path) -> None:
    cfg = load_recipe_config("sup-p", {"training": {"epochs": 2, "model": {"chans": 4}}}, epochs=3)
    assert cfg.training.epochs == 3 and cfg.training.model == {"chans": 4} and cfg.training.lr == 1e-3
    with pytest.raises(ValueError, match="sup-p"):
        load_recipe_config("sup_p")
    with pytest.raises(ValueError, match="val_limit"):
        load_recipe_config("sup-p", {"val_limt": 3})
    with pytest.raises(ValueError, match="training keys"):
        load_recipe_config("joint", {"training": {"epoch": 3}})
    with pytest.raises(ValueError, match="unet-complex"):
        load_recipe_config("sup-q", {"training": {"loss": "joint"}})
    with pytest.raises(ValueError, match="recipe 'sup-p'"):
        load_recipe_config("sup-p", {"recipe": "joint"})
    with pytest.raises(ValueError, match="group_by"):
        parse_recipe_config({**DEFAULTS["diverse"], "diverse": None})


@pytest.fixture(scope="module")
def diverse_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import make_volume

    root = tmp_path_factory.mktemp("diverse")
    for i in range(4):
        make_volume(root, f"file_knee_pd_{i}", protocol="CORPD_FBK", slices=2, seed=i)
        make_volume(root, f"file_knee_pdfs_{i}", protocol="CORPDFS_FBK", slices=2, seed=10 + i)
        make_volume(root, f"file_brain_{i}", protocol="AXT2", slices=2, seed=20 + i)
    return root


DIVERSE_TASK = {**TASK, "source": {"filter": {"anatomy": "knee", "contrast": "PD"}}}


def test_diverse_groups_exclude_test_and_q_volumes(diverse_root: Path) -> None:
    task = parse_task(dict(DIVERSE_TASK), "t")
    index = build_index(diverse_root)
    splits = make_splits(task, index)
    d = _Data(task, diverse_root, index.table, splits)
    groups = diverse_groups(load_recipe_config("diverse", {"diverse": {"min_volumes": 1}}), d)
    assert set(groups) == {"PD", "PDFS"}  # pool = source filter without `contrast`
    test_files = set(splits["test_P"].rows["file"]) | set(splits["test_Q"].rows["file"])
    for rows in groups.values():
        assert test_files.isdisjoint(rows["file"]) and not rows["file"].str.contains("brain").any()
    assert set(groups["PD"]["file"]) == set(splits["train_P"].rows["file"])
    assert groups["PDFS"]["file"].nunique() == 4
    with pytest.raises(Exception, match="at least two groups"):
        diverse_groups(load_recipe_config("diverse", {"diverse": {"group_by": "anatomy"}}), d)


def test_diverse_groups_of_column_combinations_with_equal_sizes() -> None:
    """P_i = every contrast x scanner present (Lin & Heckel), each subsampled to the same number of slices."""
    rows = []
    sizes = {("PD", "Skyra"): (3, 4), ("PD", "Aera"): (2, 5), ("PDFS", "Skyra"): (4, 3), ("PDFS", "Aera"): (1, 2)}
    for (contrast, scanner), (volumes, slices) in sizes.items():
        for v in range(volumes):
            for sl in range(slices):
                f = f"knee_{contrast}_{scanner}_{v}.h5"
                rows.append({"file": f, "slice": sl, "anatomy": "knee", "contrast": contrast, "system_model": scanner})
    for v in range(4):
        rows += [{"file": f"brain_{v}.h5", "slice": 0, "anatomy": "brain", "contrast": "T2", "system_model": "Skyra"}]
    table = pd.DataFrame(rows)
    task = parse_task({**TASK, "splits": {"test_fraction": 0.01}}, "t")  # (almost) no test volumes
    d = _Data(task, Path("."), table, make_splits(task, table, allow_empty=True))
    by = {"group_by": ["contrast", "system_model"], "min_volumes": 1}
    groups = diverse_groups(load_recipe_config("diverse", {"diverse": by}), d)
    test = set(d.splits["test_P"].rows["file"])
    expect = {f"{c} x {m}": n * k - sum(f"knee_{c}_{m}" in t for t in test) * k for (c, m), (n, k) in sizes.items()}
    assert {k: len(g) for k, g in groups.items()} == expect
    assert all(set(g["contrast"]) == {k.split(" x ")[0]} for k, g in groups.items())
    equal = diverse_groups(load_recipe_config("diverse", {"diverse": {**by, "equal_size": True}}), d)
    n = min(expect.values())
    assert {len(g) for g in equal.values()} == {n} and set(equal) == set(groups)
    again = diverse_groups(load_recipe_config("diverse", {"diverse": {**by, "equal_size": True}}), d)
    assert all(equal[k].equals(again[k]) for k in equal)  # seeded: the same subsample every time
    for k, g in equal.items():  # a subset of the group, in (file, slice) order
        assert g.merge(groups[k]).shape[0] == n and g.sort_values(["file", "slice"]).index.tolist() == list(range(n))
    picked = diverse_groups(
        load_recipe_config(
            "diverse", {"diverse": {**by, "groups": [["PD", "Skyra"], "PDFS x Skyra"], "group_size": 3}}
        ),
        d,
    )
    assert set(picked) == {"PD x Skyra", "PDFS x Skyra"} and {len(g) for g in picked.values()} == {3}
    with pytest.raises(Exception, match="group_size"):
        diverse_groups(load_recipe_config("diverse", {"diverse": {**by, "group_size": 1000}}), d)
    with pytest.raises(ValueError, match="slice-index columns"):
        diverse_groups(load_recipe_config("diverse", {"diverse": {"group_by": ["contrast", "scanner"]}}), d)
    with pytest.raises(ValueError, match="diverse keys"):
        load_recipe_config("diverse", {"diverse": {"group_bye": "contrast"}})


def test_diverse_recipe_end_to_end(diverse_root: Path, tmp_path: Path) -> None:
    task = _write(tmp_path / "t.yaml", DIVERSE_TASK)
    cfg = {**TINY, "diverse": {"min_volumes": 1}}
    r = run_recipe("diverse", str(task), config=cfg, epochs=1, device="cpu", out=tmp_path / "d", data_root=diverse_root)
    summary = json.loads((tmp_path / "d" / "diverse.json").read_text())
    assert set(summary["singles"]) == {"PD", "PDFS"} and summary["best_single"] in ("PD", "PDFS")
    assert (tmp_path / "d" / "singles" / "PDFS" / "run.json").is_file() and (tmp_path / "d" / "run.json").is_file()
    assert r.extra["diverse"]["ood_gain_over_best_single"] is not None


def test_cli_lists_recipes() -> None:
    res = CliRunner().invoke(baseline_app, ["list"])
    assert res.exit_code == 0
    for name in RECIPES:
        assert name in res.output


def test_cli_prints_and_writes_the_config_files(tmp_path: Path) -> None:
    res = CliRunner().invoke(baseline_app, ["config", "ttt-d22"])
    assert res.exit_code == 0 and res.output == config_yaml("ttt-d22")
    res = CliRunner().invoke(baseline_app, ["config", "--write", str(tmp_path)])
    assert res.exit_code == 0
    assert all((tmp_path / n / "config.yaml").read_text() == config_yaml(n) for n in RECIPES)
    res = CliRunner().invoke(baseline_app, ["config", "sup_p"])
    assert res.exit_code == 2 and "sup-p" in res.output


def test_recipe_end_to_end_resumes_and_writes_a_run_dir(tiny_root: Path, task_yaml: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    epochs: list[dict] = []
    r = run_recipe(
        "sup-p",
        str(task_yaml),
        config=TINY,
        epochs=2,
        device="cpu",
        out=out,
        data_root=tiny_root,
        on_epoch=epochs.append,
    )
    assert [e["epoch"] for e in epochs] == [1, 2] and r.chosen_epoch == 2
    for f in (
        "baseline.json",
        "model.safetensors",
        "run.json",
        "summary.json",
        "training/history.json",
        "training/train_state.pt",
        "training/checkpoints/epoch_002.safetensors",
    ):
        assert (out / f).is_file(), f
    doc = json.loads((out / "baseline.json").read_text())
    assert doc["training_data"]["splits"] == ["train_P"] and doc["chosen_epoch"] == 2
    assert 0 < r.scores["test_P"] < 1 and 0 < r.scores["test_Q"] < 1
    run = json.loads((out / "run.json").read_text())
    assert run["model"]["name"] == "sup-p-unet" and run["model"]["details"]["recipe"] == "sup-p"
    from mribench import load_run

    assert set(load_run(out).slices["split"]) == {"test_P", "test_Q"}
    # re-running resumes: nothing retrained, same scores
    again = run_recipe(
        "sup-p",
        str(task_yaml),
        config=TINY,
        epochs=2,
        device="cpu",
        out=out,
        data_root=tiny_root,
        on_epoch=epochs.append,
    )
    assert len(epochs) == 2 and again.scores == r.scores
    with pytest.raises(TaskError, match="same recipe config"):
        run_recipe("sup-p", str(task_yaml), config=TINY, epochs=3, device="cpu", out=out, data_root=tiny_root)
    # the CLI drives the same runner
    res = CliRunner().invoke(
        baseline_app,
        [
            "run",
            "sup-p",
            "--task",
            str(task_yaml),
            "--epochs",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--data-root",
            str(tiny_root),
            "--quiet",
            "--config",
            str(_write(tmp_path / "tiny.yaml", TINY)),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "sup-p-unet" in res.output


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_early_stop_recipe_picks_an_epoch_on_held_out_training_volumes(
    tiny_root: Path, task_yaml: Path, tmp_path: Path
) -> None:
    cfg = {**TINY, "early_stopping": {"patience": 1, "threshold": 0.5, "holdout_fraction": 0.25}}
    r = run_recipe(
        "early-stop", str(task_yaml), config=cfg, epochs=4, device="cpu", out=tmp_path / "es", data_root=tiny_root
    )
    dec = r.extra["early_stopping"]
    assert dec["stop_epoch"] == 2 and len(r.history) == 2  # the huge threshold fires at the first chance
    assert r.chosen_epoch == dec["chosen_epoch"] in (1, 2)
    assert "val_P" in r.history[0]["ssim"] and r.history[0]["id_ssim"] == r.history[0]["ssim"]["val_P"]
    data = json.loads((tmp_path / "es" / "baseline.json").read_text())["training_data"]
    assert data["holdout_volumes"] == 1 and data["n_slices"] + data["holdout_slices"] == 12


def test_shipped_embedded_baselines_are_registered_and_verified(
    tiny_root: Path, task_yaml: Path, tmp_path: Path
) -> None:
    from mribench import EvalOptions, Runtime, evaluate
    from mribench.models import list_models, load_model
    from mribench.models.loader import register_shipped_baselines
    from mribench.models.shipped import REGISTRY, shipped_baselines, verify_shipped_baselines

    entries = shipped_baselines()
    assert {e["name"] for e in entries} == {"unet-sim-knee", "unet-sim-brain", "unet-sim-joint"}
    assert verify_shipped_baselines() == {}
    for e in entries:
        assert (REGISTRY.parent / e["file"]).stat().st_size < 5_000_000
        assert e["task"] == "anatomy" and e["recipe"] in ("sup-p", "sup-q", "joint") and e["training_data"]["splits"]
    assert set(register_shipped_baselines()) == {e["name"] for e in entries}
    assert "unet-sim-knee" in list_models()
    lm = load_model("unet-sim-knee")
    assert lm.info.details["arch"] == "unet" and lm.info.details["extra"]["recipe"] == "sup-p"
    r = evaluate(
        "unet-sim-brain",
        str(task_yaml),
        data=tiny_root,
        run_dir=tmp_path / "e",
        options=EvalOptions(limit=2),
        runtime=Runtime(device="cpu"),
    )
    assert (r.slices["status"] == "ok").all() and r.slices["ssim"].between(0, 1).all()


def test_ttt_recipe_trains_with_the_joint_loss_and_evaluates_with_ttt(
    tiny_root: Path, task_yaml: Path, tmp_path: Path
) -> None:
    pytest.importorskip("sigpy")
    cfg = {
        **TINY,
        "training": {"model": {"chans": 2, "num_pool_layers": 1}, "batch_size": 3, "lr": 3e-3},
        "ttt": {"window": 2, "max_steps": 6},
        "evaluation": {"batch_size": 1, "limit": 1},
    }
    out = tmp_path / "ttt"
    r = run_recipe("ttt-fast", str(task_yaml), config=cfg, epochs=1, device="cpu", out=out, data_root=tiny_root)
    assert r.history[0]["train_loss"] > 0 and 0 < r.scores["test_Q"] < 1
    run = json.loads((out / "run.json").read_text())
    ttt = run["model"]["details"]["ttt"]
    assert run["model"]["details"]["arch"] == "unet-complex" and ttt["window"] == 2
    assert ttt["variant"] == "fast" and ttt["lr"] == 3e-3 and ttt["holdout_in_input"] is True
    n_train = json.loads((out / "baseline.json").read_text())["training_data"]["n_slices"]
    assert len(list((out / "training" / "sens_cache").glob("*.npy"))) == n_train  # one ESPIRiT per slice, cached


def test_ttt_recipe_without_adaptation_evaluates_the_trained_network(
    tiny_root: Path, task_yaml: Path, tmp_path: Path
) -> None:
    pytest.importorskip("sigpy")
    cfg = {
        **TINY,
        "training": {"model": {"chans": 2, "num_pool_layers": 1}, "batch_size": 3},
        "train_on": "Q",
        "ttt": None,
        "evaluation": {"batch_size": 1, "limit": 1},
    }
    out = tmp_path / "ttt-q"
    r = run_recipe("ttt-fast", str(task_yaml), config=cfg, epochs=1, device="cpu", out=out, data_root=tiny_root)
    assert r.config.ttt is None and r.config.train_on == "Q" and 0 < r.scores["test_Q"] < 1
    run = json.loads((out / "run.json").read_text())
    assert run["model"]["details"]["arch"] == "unet-complex" and "ttt" not in run["model"]["details"]
    assert json.loads((out / "baseline.json").read_text())["config"]["ttt"] is None


def test_d22_recipes_train_their_unet_and_evaluate_with_their_ttt(
    tiny_root: Path, task_yaml: Path, tmp_path: Path
) -> None:
    """sup-d22 and ttt-d22 at a tiny size: RSS-magnitude losses, the task's fixed mask, D22 TTT settings."""
    pytest.importorskip("sigpy")
    tiny = {
        **TINY,
        "training": {"model": {"chans": 2, "num_pool_layers": 1}, "batch_size": 3, "lr": 3e-3},
        "evaluation": {"batch_size": 1, "limit": 1},
    }
    sup = run_recipe(
        "sup-d22", str(task_yaml), config=tiny, epochs=1, device="cpu", out=tmp_path / "s", data_root=tiny_root
    )
    assert sup.config.masks == "task" and sup.config.training.loss == "d22-sup" and 0 < sup.scores["test_Q"] < 1
    assert not (tmp_path / "s" / "training" / "sens_cache").exists()  # their input and loss need no maps
    base = json.loads((tmp_path / "s" / "baseline.json").read_text())
    assert base["config"]["training"]["schedule"] == "constant" and base["model"]["config"]["input"] == "rss-real-imag"

    cfg = {**tiny, "ttt": {"shift": "anatomy", "window": 2, "max_steps": 6}}
    out = tmp_path / "t"
    r = run_recipe("ttt-d22", str(task_yaml), config=cfg, epochs=1, device="cpu", out=out, data_root=tiny_root)
    assert r.config.training.loss == "d22-joint" and 0 < r.scores["test_Q"] < 1
    ttt = json.loads((out / "run.json").read_text())["model"]["details"]["ttt"]
    assert ttt["variant"] == "d22" and ttt["stopping_rule"] == "d22" and ttt["maps"] == "bart-ecalib"
    assert ttt["lr"] == 1e-5 and ttt["window"] == 2 and ttt["max_steps"] == 6  # the table's lr, explicit W and cap
    assert ttt["settings"]["shift"] == "anatomy" and ttt["settings"]["overridden"] == {"window": 2, "max_steps": 6}
    cached = list((out / "training" / "sens_cache").glob("*_bart-ecalib.npy"))
    n_train = json.loads((out / "baseline.json").read_text())["training_data"]["n_slices"]
    assert len(cached) == n_train  # the BART-like maps of the self-supervised loss, one per training slice
    with pytest.raises(ValueError, match="shift"):  # the tiny task's card names no shift: no silent default
        run_recipe(
            "ttt-d22", str(task_yaml), config=tiny, epochs=1, device="cpu", out=tmp_path / "u", data_root=tiny_root
        )


def test_task_masks_are_fixed_and_lh24_recipes_use_their_schedule() -> None:
    cfg = load_recipe_config("sup-p")
    t = cfg.training
    assert (t.epochs, t.lr, t.warmup_fraction, t.schedule, t.grad_clip, t.batch_size) == (
        60,
        1e-3,
        0.01,
        "onecycle-lh24",
        1.0,
        1,
    )
    assert cfg.masks == "fresh" and t.model == {"chans": 32, "num_pool_layers": 4, "drop_prob": 0.0}
    d22 = load_recipe_config("sup-d22").training
    assert (d22.lr, d22.schedule, d22.batch_size, d22.grad_clip, d22.model["chans"]) == (1e-5, "constant", 1, 0.0, 64)
    assert d22.model["norm"] == "scale"  # one scale per slice, as D22's scale factor (ours: no NormUnet mean shift)
    kept = load_recipe_config("ttt-d22", {"training": {"model": {"chans": 8}}}).training.model
    assert (kept["input"], kept["maps"], kept["norm"]) == ("rss-real-imag", "bart-ecalib", "scale")
    assert (
        load_recipe_config("ttt-d22", {"training": {"model": {"norm": "instance"}}}).training.model["norm"]
        == "instance"
    )
    with pytest.raises(ValueError, match="masks"):
        load_recipe_config("sup-p", {"masks": "fixed"})
    with pytest.raises(ValueError, match="accelerations"):
        load_recipe_config("sup-d22", {"accelerations": [4, 8]})
    with pytest.raises(ValueError, match="ttt section"):
        load_recipe_config("sup-p", {"ttt": {"window": 2}})


def test_embedded_d22_analysis_uses_d22s_ssim_and_their_fraction(monkeypatch: pytest.MonkeyPatch) -> None:
    """train_embedded.py's D22 analysis reads ssim_d22 for every D22 number; fastMRI's SSIM only beside it."""
    import importlib.util

    import numpy as np
    import pandas as pd

    spec = importlib.util.spec_from_file_location("train_embedded", BASELINES / "anatomy" / "train_embedded.py")
    te = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(te)  # type: ignore[union-attr]
    rng = np.random.default_rng(0)
    index = pd.MultiIndex.from_tuples([(f"v{i}.h5", 8) for i in range(12)], names=["file", "slice"])
    level = {"sup-d22-q": 0.83, "sup-d22": 0.70, "ttt-d22-q": 0.82, "ttt-d22-q-adapt": 0.81, "ttt-d22": 0.79}
    level["ttt-d22-no-adapt"] = 0.72
    noise = {name: rng.normal(0, 0.005, 12) for name in level}
    reads: list[str] = []

    def fake(run_dir: Path, split: str = "test_Q", metric: str = "ssim") -> pd.Series:
        reads.append(metric)
        offset = 0.0 if metric == "ssim_d22" else -0.1  # another convention, other values
        return pd.Series(level[run_dir.name] + noise[run_dir.name] + offset, index=index)

    monkeypatch.setattr(te, "_test_q", fake)
    out = te._ttt_d22_analysis(Path("runs"))
    assert out["metric"] == "ssim_d22" and set(reads) == {"ssim_d22", "ssim"}
    q, p = level["sup-d22-q"] + noise["sup-d22-q"], level["sup-d22"] + noise["sup-d22"]
    qt, pt = level["ttt-d22-q-adapt"] + noise["ttt-d22-q-adapt"], level["ttt-d22"] + noise["ttt-d22"]
    assert out["fraction_closed"] == pytest.approx(1 - (qt - pt).mean() / (q - p).mean(), rel=1e-12)
    assert out["ci"][0] < out["fraction_closed"] < out["ci"][1]
    change = out["in_distribution_ttt_change"]["q_trained_test_Q"]["ssim"]
    assert change == pytest.approx((qt - level["ttt-d22-q"] - noise["ttt-d22-q"]).mean(), rel=1e-12)
    assert out["in_distribution_ttt_change_fastmri_ssim"]["q_trained_test_Q"]["ssim"] == pytest.approx(change)


def test_shipped_d22_results_are_consistent_and_the_cards_quote_them() -> None:
    """baselines/anatomy/results-3.1.json -> ttt_d22 (issue 19's measurement on MRIBench-Sim 3.1, kept when
    results.json moved to 3.2): D22's definitions hold between its own numbers, TTT's in-distribution change is
    within 0.02, and the cards and the README quote the fraction closed and its CI as stored."""
    results = json.loads((BASELINES / "anatomy" / "results-3.1.json").read_text())
    assert results["sim_version"] == "3.1"
    d22 = results["ttt_d22"]
    assert d22["metric"] == "ssim_d22"
    q = d22["ssim_test_Q"]
    gap_before = d22["supervised_gap"]["ssim"]
    assert gap_before == pytest.approx(q["sup_q"] - q["sup_p"], abs=1e-12)
    assert d22["gap_after"] == pytest.approx(q["selfsup_q_ttt"] - q["selfsup_p_ttt"], abs=1e-12)
    assert d22["fraction_closed"] == pytest.approx(1 - d22["gap_after"] / gap_before, rel=1e-12)
    assert d22["ci"][0] < d22["fraction_closed"] < d22["ci"][1]
    for change in d22["in_distribution_ttt_change"].values():
        assert abs(change["ssim"]) < 0.02 and change["n_slices"] >= 10
    quoted = "{:.1%} [{:.1%}, {:.1%}]".format(d22["fraction_closed"], *d22["ci"])
    for doc in (
        BASELINES / "anatomy" / "README.md",
        BASELINES / "ttt-d22" / "README.md",
        BASELINES.parent / "README.md",
    ):
        assert quoted in doc.read_text(), f"{doc} does not quote {quoted}"
