"""Train the embedded-benchmark baselines and measure the anatomy gap and what closes it (one command).

    python baselines/anatomy/train_embedded.py                                  # every part (hours on 2 CPU cores)
    python baselines/anatomy/train_embedded.py --recipes sup-p sup-q joint      # the shipped supervised U-Nets
    python baselines/anatomy/train_embedded.py --recipes sup-d22 sup-d22-q ttt-d22 ttt-d22-q   # Darestani et al.
    python baselines/anatomy/train_embedded.py --recipes ttt-fast ttt-fast-q    # mribench's earlier TTT variant

Supervised part: trains a tiny U-Net (``embedded.yaml``) on MRIBench-Sim for the ``anatomy`` task
(knee -> brain) with the recipes ``sup-p`` (-> ``unet-sim-knee``), ``sup-q`` (-> ``unet-sim-brain``)
and ``joint`` (-> ``unet-sim-joint``), evaluates each with ``mribench.evaluate`` on test_P / test_Q,
copies the evaluated weights to ``mribench/_baselines/<name>.safetensors`` and writes
``mribench/_baselines/registry.json`` (name, file, sha256, description, task, recipe, training data).

Darestani et al. (``embedded-d22.yaml``): ``sup-d22`` / ``sup-d22-q`` train their supervised U-Net
on train_P / train_Q (the reference pair of their gap); ``ttt-d22`` / ``ttt-d22-q`` train the same
network self-supervised on train_P / train_Q. The P network is evaluated with their test-time
training (run ``ttt-d22/``) and without (``ttt-d22-no-adapt/``), the Q network without (``ttt-d22-q/``)
and with it on test_Q (``ttt-d22-q-adapt/``). Their fraction of the gap closed,
``1 - gap_after / gap_before`` with ``gap_before`` the *supervised* gap (sup-d22-q vs sup-d22 on
test_Q) and ``gap_after`` the gap between the two self-supervised networks after TTT, is reported
with a cluster-bootstrap CI, with the TTT change of each self-supervised network in distribution
(P network on test_P, Q network on test_Q; the paper: about 0.005 SSIM).

``ttt-fast`` / ``ttt-fast-q`` (``embedded-ttt.yaml``): the same four evaluations for mribench's earlier
self-supervised recipe and TTT variant ``fast`` (not the paper's), with the earlier analysis.

Analysis (:mod:`mribench.analysis.gap`, paired over test_Q slices, cluster bootstrap over volumes).
``--task`` runs the same on another task with the anatomy layout (e.g. a D22 middle-slice task);
then nothing is shipped (``--no-ship`` is implied).

Results go to ``<runs>/results.json`` (and, unless ``--no-ship``, ``baselines/anatomy/results.json``);
a call with a subset of the recipes keeps the other recipes' entries of the existing file.
Re-running resumes finished trainings and evaluations (run directories under ``--runs``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SHIPPED = {  # recipe -> (shipped name, description, training data)
    "sup-p": (
        "unet-sim-knee",
        "Tiny U-Net trained on MRIBench-Sim knee CORPD_FBK (d22-anatomy task, P)",
        "train_P: knee CORPD_FBK",
    ),
    "sup-q": (
        "unet-sim-brain",
        "Tiny U-Net trained on MRIBench-Sim brain AXT2 (d22-anatomy task, Q)",
        "train_Q: brain AXT2",
    ),
    "joint": (
        "unet-sim-joint",
        "Tiny U-Net trained on MRIBench-Sim knee CORPD_FBK + brain AXT2 (d22-anatomy task, P+Q)",
        "train_P + train_Q: knee CORPD_FBK + brain AXT2",
    ),
}
# recipe key -> (model name, recipe run, config option of main(), overrides of that config)
SELFSUP: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "sup-d22": ("unet-d22-sim-knee", "sup-d22", "d22_config", {"train_on": "P"}),
    "sup-d22-q": ("unet-d22-sim-brain", "sup-d22", "d22_config", {"train_on": "Q"}),
    "ttt-d22": ("ttt-d22-sim-knee", "ttt-d22", "d22_config", {"train_on": "P"}),
    "ttt-d22-q": ("selfsup-d22-sim-brain", "ttt-d22", "d22_config", {"train_on": "Q", "ttt": None}),
    "ttt-fast": ("ttt-fast-sim-knee", "ttt-fast", "ttt_config", {"train_on": "P"}),
    "ttt-fast-q": ("unet-complex-sim-brain", "ttt-fast", "ttt_config", {"train_on": "Q", "ttt": None}),
}
# second evaluations of the same networks: (run directory, model name, with test-time training, splits)
EXTRA_EVAL = {
    "ttt-d22": ("ttt-d22-no-adapt", "selfsup-d22-sim-knee", False, ("test_P", "test_Q")),
    "ttt-d22-q": ("ttt-d22-q-adapt", "ttt-d22-sim-brain", True, ("test_Q",)),
    "ttt-fast": ("ttt-fast-no-adapt", "unet-complex-sim-knee", False, ("test_P", "test_Q")),
    "ttt-fast-q": ("ttt-fast-q-adapt", "ttt-fast-sim-brain", True, ("test_Q",)),
}


def _progress_line(name: str) -> Any:
    def on_epoch(rec: dict[str, Any]) -> None:
        print(
            f"[{name}] epoch {rec['epoch']:3d} loss {rec['train_loss']:.4f} ID {rec['id_ssim']:.4f} "
            f"OOD {rec['ood_ssim'] if rec['ood_ssim'] is None else round(rec['ood_ssim'], 4)} "
            f"({rec['seconds']:.1f} s)",
            flush=True,
        )

    return on_epoch


#: Darestani et al.'s SSIM convention (each reconstruction normalised to the target's mean and std): their
#: numbers (gap, fraction closed, TTT's in-distribution change) are in it.
D22_METRIC = "ssim_d22"


def _test_q(run_dir: Path, split: str = "test_Q", metric: str = "ssim") -> Any:
    from mribench import load_run

    s = load_run(run_dir).slices
    if metric not in s.columns:
        raise ValueError(f"expected metric {metric!r} in the run {run_dir}, got {sorted(s.columns)}")
    return s[(s["split"] == split) & (s["status"] == "ok")].set_index(["file", "slice"])[metric].sort_index()


def _model_entry(r: Any, name: str, t0: float) -> dict[str, Any]:
    doc = json.loads((r.out_dir / "baseline.json").read_text())
    return {
        "name": name,
        "run_dir": r.out_dir.name,
        "ssim": r.scores,
        "epochs": r.chosen_epoch,
        "train_seconds": doc["train_seconds"],
        "eval_seconds": doc["eval_seconds"],
        "wall_seconds_this_call": time.perf_counter() - t0,
        "threads": torch.get_num_threads(),
        "history": [{k: h.get(k) for k in ("epoch", "train_loss", "id_ssim", "ood_ssim", "ssim")} for h in r.history],
        "training_data": doc["training_data"],
        "config": doc["config"],
    }


def _ttt_steps(run_dir: Path) -> dict[str, Any]:
    """Adam steps of test-time training per split: mean, median, range, slices stopped by the step cap."""
    from mribench import load_run

    s = load_run(run_dir).slices
    cap = json.loads((run_dir / "run.json").read_text())["model"]["details"]["ttt"]["max_steps"]
    out: dict[str, Any] = {}
    for split, g in s[s["status"] == "ok"].groupby("split"):
        st = g["ttt_steps"].dropna()
        if len(st):
            out[str(split)] = {
                "mean": float(st.mean()),
                "median": float(st.median()),
                "min": int(st.min()),
                "max": int(st.max()),
                "at_max_steps": int((st >= cap).sum()),
                "n_slices": len(st),
                "seconds_per_slice": float(g["seconds"].mean()),
            }
    return out


def _evaluate_network(r: Any, recipe: str, args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate a TTT recipe's network a second time (:data:`EXTRA_EVAL`): without or with adaptation."""
    from dataclasses import replace

    from mribench import EvalOptions, Runtime, evaluate
    from mribench.api.model import ModelInfo
    from mribench.models.checkpoints import checkpoint_identity
    from mribench.models.loaded import LoadedModel
    from mribench.tasks import load_task
    from mribench.workflows.training.recipes import DEFAULTS, wrap_ttt
    from mribench.workflows.training.supervised import build_model, load_weights

    run_dir, name, adapt, splits = EXTRA_EVAL[recipe]
    out = args.runs / run_dir
    t = r.config.training
    path = r.out_dir / "model.safetensors"
    model: Any = build_model(t.arch, t.model, t.seed)
    load_weights(model, path)
    model.eval()
    ttt_config = None
    if adapt:  # the settings the recipe adapts with: its defaults and the config file's ttt section
        recipe_name = SELFSUP[recipe][1]
        overrides = yaml.safe_load(getattr(args, SELFSUP[recipe][2]).read_text()) or {}
        ttt = {**DEFAULTS[recipe_name]["ttt"], **(overrides.get("ttt") or {})}
        model, ttt_config = wrap_ttt(model, replace(r.config, ttt=ttt), load_task(args.task))
    info = ModelInfo(
        name,
        "checkpoint",
        checkpoint_identity(path),
        {
            "arch": t.arch,
            "config": t.model,
            "recipe": r.config.recipe,
            "epoch": r.chosen_epoch,
            "path": str(path),
            **({"ttt": ttt_config} if adapt else {}),
        },
    )
    t0 = time.perf_counter()
    res = evaluate(
        LoadedModel(model, info),
        args.task,
        data=args.data_root,
        run_dir=out,
        mode="resume",
        options=EvalOptions(splits=tuple(splits), limit=r.config.evaluation["limit"]),
        runtime=Runtime(device=args.device, batch_size=int(r.config.evaluation["batch_size"])),
    )
    sp = res.summary.splits
    entry: dict[str, Any] = {
        "name": name,
        "run_dir": run_dir,
        "ttt": ttt_config,
        "ssim": {s: sp[s].metrics["ssim"].mean if s in sp and "ssim" in sp[s].metrics else None for s in splits},
        "eval_seconds": float(res.slices["seconds"].sum()),
        "wall_seconds_this_call": time.perf_counter() - t0,
    }
    if adapt:
        entry["ttt_steps"] = _ttt_steps(out)
    print(f"[{name}] " + "  ".join(f"{s} SSIM {v:.4f}" for s, v in entry["ssim"].items()), flush=True)
    return entry


def _previous(args: argparse.Namespace, sim_version: str) -> dict[str, Any]:
    """The results file this call updates (the shipped one, or ``<runs>/results.json`` with ``--no-ship``),
    to keep the entries of recipes not run now; ``{}`` when absent or from another benchmark version."""
    f = args.runs / "results.json" if args.no_ship else HERE / "results.json"
    prev = json.loads(f.read_text()) if f.is_file() else {}
    return dict(prev) if prev.get("task") == args.task and prev.get("sim_version") == sim_version else {}


def _paired_test_q(*run_dirs: Path, split: str = "test_Q", metric: str = "ssim") -> tuple[list[Any], Any]:
    """Per-slice ``metric`` on ``split`` of several runs on their common slices, and the volume of each slice."""
    cols = [_test_q(d, split, metric) for d in run_dirs]
    common = cols[0].index
    for c in cols[1:]:
        common = common.intersection(c.index)
    cols = [c.reindex(common) for c in cols]
    return cols, common.get_level_values("file")


def _diff(a: Any, b: Any, groups: Any) -> dict[str, Any]:
    """Mean paired difference ``b - a`` with its cluster-bootstrap CI."""
    from mribench.analysis.stats import paired_difference

    d = paired_difference(a.to_numpy(), b.to_numpy(), groups)
    return {"ssim": d.mean, "ci": [d.low, d.high], "p_value": d.p_value, "n_slices": d.n, "n_volumes": d.n_groups}


def _ttt_fast_analysis(runs: Path) -> dict[str, Any]:
    """mribench's earlier analysis of the fast variant: self-supervised gap and what TTT closes of it."""
    from mribench.analysis.gap import fraction_gap_closed_ci, performance_gap_ci

    no_adapt, q_adapt = runs / EXTRA_EVAL["ttt-fast"][0], runs / EXTRA_EVAL["ttt-fast-q"][0]
    (q, p, a, qa), groups = _paired_test_q(runs / "ttt-fast-q", no_adapt, runs / "ttt-fast", q_adapt)
    g = performance_gap_ci(q.to_numpy(), p.to_numpy(), groups)
    f = fraction_gap_closed_ci(q.to_numpy(), p.to_numpy(), q.to_numpy(), a.to_numpy(), groups)
    fb = fraction_gap_closed_ci(q.to_numpy(), p.to_numpy(), qa.to_numpy(), a.to_numpy(), groups)
    (p_plain, p_adapt), groups_p = _paired_test_q(no_adapt, runs / "ttt-fast", split="test_P")
    return {
        "selfsup_gap": {
            "ssim": g.gap,
            "ci": [g.low, g.high],
            "p_value": g.p_value,
            "n_slices": g.n,
            "n_volumes": g.n_groups,
            "q_trained": g.q_trained,
            "p_trained": g.p_trained,
        },
        "ratio_ttt_gain_to_selfsup_gap": f.fraction,  # not D22's fraction closed (see ttt_d22)
        "ratio_ci": [f.low, f.high],
        "both_adapted_selfsup_fraction": fb.fraction,
        "both_adapted_ci": [fb.low, fb.high],
        "both_adapted_gap_after": fb.gap_after.mean,
        "both_adapted_gap_after_ci": [fb.gap_after.low, fb.gap_after.high],
        "gain_p_trained_test_Q": _diff(p, a, groups),
        "gain_q_trained_test_Q": _diff(q, qa, groups),
        "gain_p_trained_test_P": _diff(p_plain, p_adapt, groups_p),
    }


def _in_distribution_ttt_change(runs: Path, metric: str) -> dict[str, Any]:
    """TTT's change of each self-supervised network in distribution (Q network on test_Q, P on test_P)."""
    q_adapt, p_plain = runs / EXTRA_EVAL["ttt-d22-q"][0], runs / EXTRA_EVAL["ttt-d22"][0]
    (q_self, q_self_ttt), groups_q = _paired_test_q(runs / "ttt-d22-q", q_adapt, metric=metric)
    (p_self, p_self_ttt), groups_p = _paired_test_q(p_plain, runs / "ttt-d22", split="test_P", metric=metric)
    return {
        "q_trained_test_Q": _diff(q_self, q_self_ttt, groups_q),
        "p_trained_test_P": _diff(p_self, p_self_ttt, groups_p),
    }


def _ttt_d22_analysis(runs: Path) -> dict[str, Any]:
    """Darestani et al.'s definitions in their SSIM convention (:data:`D22_METRIC`): supervised gap,
    1 - gap_after / gap_before, in-distribution TTT change (also in fastMRI's SSIM, which differs there)."""
    from mribench.analysis.gap import d22_fraction_closed_ci, performance_gap_ci

    m = D22_METRIC
    q_adapt, p_plain = runs / EXTRA_EVAL["ttt-d22-q"][0], runs / EXTRA_EVAL["ttt-d22"][0]
    (q_sup, p_sup, q_ttt, p_ttt), groups = _paired_test_q(
        runs / "sup-d22-q", runs / "sup-d22", q_adapt, runs / "ttt-d22", metric=m
    )
    g = performance_gap_ci(q_sup.to_numpy(), p_sup.to_numpy(), groups)
    # gap_before: the supervised gap; gap_after: Q-trained self-supervised + TTT minus P-trained + TTT
    f = d22_fraction_closed_ci(q_sup.to_numpy(), p_sup.to_numpy(), q_ttt.to_numpy(), p_ttt.to_numpy(), groups)
    (p_self_q, p_self_ttt_q), _ = _paired_test_q(p_plain, runs / "ttt-d22", metric=m)
    return {
        "metric": m,
        "supervised_gap": {
            "ssim": g.gap,
            "ci": [g.low, g.high],
            "p_value": g.p_value,
            "n_slices": g.n,
            "n_volumes": g.n_groups,
            "q_trained": g.q_trained,
            "p_trained": g.p_trained,
        },
        "fraction_closed": f.fraction,
        "ci": [f.low, f.high],
        "gap_after": f.gap_after.mean,
        "gap_after_ci": [f.gap_after.low, f.gap_after.high],
        "ssim_test_Q": {
            "sup_q": float(q_sup.mean()),
            "sup_p": float(p_sup.mean()),
            "selfsup_q_ttt": float(q_ttt.mean()),
            "selfsup_p_ttt": float(p_ttt.mean()),
        },
        # acceptance: TTT changes an in-distribution self-supervised model by < 0.02 SSIM (paper: ~0.005)
        "in_distribution_ttt_change": _in_distribution_ttt_change(runs, m),
        # fastMRI's SSIM (target max as data range) also sees the background level, which data consistency
        # through the coil maps lowers below the RSS target's noise floor
        "in_distribution_ttt_change_fastmri_ssim": _in_distribution_ttt_change(runs, "ssim"),
        "ttt_gain_p_trained_test_Q": _diff(p_self_q, p_self_ttt_q, groups),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=Path("mribench-runs/embedded/anatomy"), help="run directories")
    ap.add_argument("--data-root", type=Path, default=None, help="default: the embedded benchmark (generated once)")
    ap.add_argument("--config", type=Path, default=HERE / "embedded.yaml", help="overrides of the supervised recipes")
    ap.add_argument(
        "--ttt-config",
        type=Path,
        default=HERE / "embedded-ttt.yaml",
        help="overrides of the `ttt-fast` recipe (ttt-fast, ttt-fast-q)",
    )
    ap.add_argument(
        "--d22-config",
        type=Path,
        default=HERE / "embedded-d22.yaml",
        help="overrides of the recipes sup-d22 and ttt-d22 (sup-d22, sup-d22-q, ttt-d22, ttt-d22-q)",
    )
    ap.add_argument("--task", default="anatomy", help="task (another than anatomy implies --no-ship)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (1: tiny convolutions run much faster on one thread, and the "
        "shipped numbers were measured so)",
    )
    ap.add_argument("--recipes", nargs="+", default=[*SHIPPED, *SELFSUP], choices=[*SHIPPED, *SELFSUP])
    ap.add_argument(
        "--no-ship", action="store_true", help="do not write mribench/_baselines/ nor baselines/anatomy/results.json"
    )
    args = ap.parse_args(argv)
    if args.task not in ("anatomy", "d22-anatomy"):
        args.no_ship = True
    if args.threads:
        torch.set_num_threads(args.threads)

    from mribench import evaluate
    from mribench._version import __version__
    from mribench.analysis.gap import fraction_gap_closed_ci, performance_gap_ci
    from mribench.data.synthetic import SIM_VERSION
    from mribench.models.checkpoints import file_sha256
    from mribench.models.shipped import REGISTRY
    from mribench.physics.sensitivity import cached_sensitivities
    from mribench.workflows.training.recipes import run_recipe
    from mribench.workflows.training.ttt import TTTModel  # noqa: F401 (imported up front: one version of the code per run)

    overrides = yaml.safe_load(args.config.read_text()) or {}
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        if set(SELFSUP) & set(args.recipes):
            # the complex U-Net estimates ESPIRiT maps (seconds per slice) on every call: keep them for the
            # per-epoch validation and the evaluations with and without test-time training
            stack.enter_context(cached_sensitivities(max_bytes=2 << 30))
        for recipe in args.recipes:
            t0 = time.perf_counter()
            if recipe in SHIPPED:
                name = SHIPPED[recipe][0]
                r = run_recipe(
                    recipe,
                    args.task,
                    config={**overrides, "model_name": name},
                    epochs=args.epochs,
                    device=args.device,
                    out=args.runs / recipe,
                    data_root=args.data_root,
                    on_epoch=_progress_line(name),
                )
            else:
                name, recipe_name, config_option, extra = SELFSUP[recipe]
                selfsup_overrides = yaml.safe_load(getattr(args, config_option).read_text()) or {}
                if recipe_name == "sup-d22":  # one file serves sup-d22 and ttt-d22; sup-d22 has no TTT
                    selfsup_overrides.pop("ttt", None)
                r = run_recipe(
                    recipe_name,
                    args.task,
                    config={**selfsup_overrides, **extra, "model_name": name},
                    epochs=args.epochs,
                    device=args.device,
                    out=args.runs / recipe,
                    data_root=args.data_root,
                    on_epoch=_progress_line(name),
                )
            results[recipe] = _model_entry(r, name, t0)
            print(f"[{name}] test_P SSIM {r.scores['test_P']:.4f}  test_Q SSIM {r.scores['test_Q']:.4f}", flush=True)
            if recipe in ("ttt-d22", "ttt-fast"):
                results[recipe]["ttt_steps"] = _ttt_steps(r.out_dir)
            if recipe in EXTRA_EVAL:
                results[recipe]["second_evaluation"] = _evaluate_network(r, recipe, args)

    zf = evaluate("zero-filled", args.task, data=args.data_root, run_dir=args.runs / "zero-filled", mode="resume")
    summary: dict[str, Any] = _previous(args, SIM_VERSION)
    summary.update(
        {
            "task": args.task,
            "mribench": __version__,
            "torch": torch.__version__,
            "sim_version": SIM_VERSION,
            "threads": torch.get_num_threads(),
            "models": {**summary.get("models", {}), **results},
            "zero_filled": {s: v.metrics["ssim"].mean for s, v in zf.summary.splits.items()},
        }
    )
    if {"sup-p", "sup-q"} <= set(results):
        (q, p), groups = _paired_test_q(args.runs / "sup-q", args.runs / "sup-p")
        g = performance_gap_ci(q.to_numpy(), p.to_numpy(), groups)
        summary["gap"] = {
            "ssim": g.gap,
            "ci": [g.low, g.high],
            "p_value": g.p_value,
            "n_slices": g.n,
            "n_volumes": g.n_groups,
        }
        if "joint" in results:
            (q, p, j), groups = _paired_test_q(args.runs / "sup-q", args.runs / "sup-p", args.runs / "joint")
            f = fraction_gap_closed_ci(q.to_numpy(), p.to_numpy(), q.to_numpy(), j.to_numpy(), groups)
            summary["joint"] = {  # mribench's ratio for joint training (not Darestani et al.'s TTT fraction)
                "gap_after": float((q - j).mean()),
                "supervised_gap_share_closed": f.fraction,
                "ci": [f.low, f.high],
            }
    if {"ttt-fast", "ttt-fast-q"} <= set(results):
        summary["ttt_fast"] = _ttt_fast_analysis(args.runs)
        # the same part measured when the recipe was called `ttt` (superseded by this run)
        for key in ("selfsup_gap", "ttt"):
            summary.pop(key, None)
        for key in ("ttt", "ttt-q"):
            summary["models"].pop(key, None)
    if {"sup-d22", "sup-d22-q", "ttt-d22", "ttt-d22-q"} <= set(results):
        summary["ttt_d22"] = _ttt_d22_analysis(args.runs)
    text = json.dumps(summary, indent=2, sort_keys=True, default=float) + "\n"
    args.runs.mkdir(parents=True, exist_ok=True)
    (args.runs / "results.json").write_text(text)
    if not args.no_ship:
        (HERE / "results.json").write_text(text)
    print(
        json.dumps(
            {k: v for k, v in summary.items() if k in ("gap", "joint", "ttt_fast", "ttt_d22")}, indent=2, default=float
        )
    )

    shipped = {r: res for r, res in results.items() if r in SHIPPED}
    if not args.no_ship and shipped:
        entries = json.loads(REGISTRY.read_text())["models"] if REGISTRY.is_file() else []
        entries = [e for e in entries if e["name"] not in {res["name"] for res in shipped.values()}]
        for recipe, res in shipped.items():
            name, desc, data = SHIPPED[recipe]
            dst = REGISTRY.parent / f"{name}.safetensors"
            shutil.copyfile(args.runs / recipe / "model.safetensors", dst)
            entries.append(
                {
                    "name": name,
                    "file": dst.name,
                    "sha256": file_sha256(dst),
                    "description": desc,
                    "task": "anatomy",
                    "recipe": recipe,
                    "training_data": {"description": data, **res["training_data"]},
                    "arch": res["config"]["training"]["arch"],
                    "config": res["config"]["training"]["model"],
                    "epochs": res["epochs"],
                    "ssim": res["ssim"],
                    "dataset": f"MRIBench-Sim {SIM_VERSION} (default size)",
                    "mribench": __version__,
                    "size_bytes": dst.stat().st_size,
                }
            )
        entries.sort(key=lambda e: e["name"])
        REGISTRY.write_text(json.dumps({"schema_version": 1, "models": entries}, indent=2, sort_keys=True) + "\n")
        print(f"wrote {REGISTRY.relative_to(REPO)} ({', '.join(e['name'] for e in entries)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
