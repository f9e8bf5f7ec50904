"""Train the embedded-benchmark baselines and measure the anatomy gap and what closes it (one command).

    python baselines/anatomy/train_embedded.py                      # all recipes, ~2.5 h on 2 CPU cores
    python baselines/anatomy/train_embedded.py --recipes ttt ttt-q  # the self-supervised part alone

Supervised part: trains a tiny U-Net (``embedded.yaml``) on MRIBench-Sim for the ``anatomy`` task
(knee -> brain) with the recipes ``sup-p`` (-> ``unet-sim-knee``), ``sup-q`` (-> ``unet-sim-brain``)
and ``joint`` (-> ``unet-sim-joint``), evaluates each with ``mribench.evaluate`` on test_P / test_Q,
copies the evaluated weights to ``mribench/_baselines/<name>.safetensors`` and writes
``mribench/_baselines/registry.json`` (name, file, sha256, description, task, recipe, training data).

Self-supervised part (Darestani et al.): trains the complex U-Net of ``embedded-ttt.yaml`` with the
joint supervised + self-supervised loss on train_P (recipe ``ttt``: evaluated with test-time
training on test_P and test_Q, run ``ttt/``, and without it, run ``ttt-no-adapt/``) and on train_Q
(``ttt-q``: the in-distribution reference, evaluated without adaptation, run ``ttt-q/``, and with
it on test_Q, run ``ttt-q-adapt/``). These checkpoints stay in the run directories (the complex
U-Net is not a loadable built-in architecture, so nothing is shipped).

Analysis (:mod:`mribench.analysis.gap`, paired over test_Q slices, cluster bootstrap over volumes):

- supervised gap ``SSIM(sup-q, test_Q) - SSIM(sup-p, test_Q)``, and the share of it joint training
  closes, ``1 - (SSIM(sup-q) - SSIM(joint)) / supervised gap`` (mribench's ratio for joint training);
- **Darestani et al.'s fraction of the gap closed by test-time training**, ``1 - gap_after /
  gap_before`` with gap_before the supervised gap and gap_after = ``SSIM(ttt-q adapted) -
  SSIM(ttt)`` (both self-supervised models after TTT), all on the same test_Q slices;
- self-supervised gap ``SSIM(ttt-q, test_Q) - SSIM(ttt without adaptation, test_Q)`` and two ratios
  over it that are NOT Darestani et al.'s fraction and carry their own names: with both models
  adapted, ``1 - (SSIM(ttt-q adapted) - SSIM(ttt)) / self-supervised gap``, and with only the P model
  adapted, ``(SSIM(ttt) - SSIM(ttt without adaptation)) / self-supervised gap``; plus the gains of
  test-time training in distribution (P model on test_P, Q model on test_Q).

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
        "Tiny U-Net trained on MRIBench-Sim knee PD 3T (anatomy task, P)",
        "train_P: knee PD 3T SITE_A",
    ),
    "sup-q": (
        "unet-sim-brain",
        "Tiny U-Net trained on MRIBench-Sim brain 3T (anatomy task, Q)",
        "train_Q: brain 3T SITE_A",
    ),
    "joint": (
        "unet-sim-joint",
        "Tiny U-Net trained on MRIBench-Sim knee + brain (anatomy task, P+Q)",
        "train_P + train_Q: knee PD 3T + brain 3T SITE_A",
    ),
}
SELFSUP = {  # recipe -> (model name, overrides of embedded-ttt.yaml); both run the `ttt` recipe
    "ttt": ("ttt-sim-knee", {"train_on": "P"}),
    "ttt-q": ("unet-complex-sim-brain", {"train_on": "Q", "ttt": None}),
}
# second evaluations of the same networks: (run directory, model name, with test-time training, splits)
EXTRA_EVAL = {
    "ttt": ("ttt-no-adapt", "unet-complex-sim-knee", False, ("test_P", "test_Q")),
    "ttt-q": ("ttt-q-adapt", "ttt-sim-brain", True, ("test_Q",)),
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


def _test_q(run_dir: Path, split: str = "test_Q") -> Any:
    from mribench import load_run

    s = load_run(run_dir).slices
    return s[(s["split"] == split) & (s["status"] == "ok")].set_index(["file", "slice"])["ssim"].sort_index()


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


def _evaluate_network(r: Any, recipe: str, ttt_overrides: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate a ``ttt``-recipe network a second time (:data:`EXTRA_EVAL`): without or with adaptation."""
    from mribench import EvalOptions, Runtime, evaluate
    from mribench.api.model import ModelInfo
    from mribench.models.checkpoints import checkpoint_identity
    from mribench.models.loaded import LoadedModel
    from mribench.workflows.training.recipes import DEFAULTS
    from mribench.workflows.training.supervised import build_model, load_weights
    from mribench.workflows.training.ttt import TTTModel

    run_dir, name, adapt, splits = EXTRA_EVAL[recipe]
    out = args.runs / run_dir
    t = r.config.training
    path = r.out_dir / "model.safetensors"
    model: Any = build_model(t.arch, t.model, t.seed)
    load_weights(model, path)
    model.eval()
    ttt_config = None
    if adapt:  # the settings the `ttt` recipe adapts with (lr: null = the training learning rate)
        kw = {**DEFAULTS["ttt"]["ttt"], **(ttt_overrides.get("ttt") or {})}
        kw["lr"] = t.lr if kw.get("lr") is None else kw["lr"]
        model = TTTModel(model, **kw)
        ttt_config = model.config
    info = ModelInfo(
        name,
        "checkpoint",
        checkpoint_identity(path),
        {
            "arch": t.arch,
            "config": t.model,
            "recipe": "ttt",
            "epoch": r.chosen_epoch,
            "path": str(path),
            **({"ttt": ttt_config} if adapt else {}),
        },
    )
    t0 = time.perf_counter()
    res = evaluate(
        LoadedModel(model, info),
        "anatomy",
        data=args.data_root,
        run_dir=out,
        mode="resume",
        options=EvalOptions(splits=tuple(splits), limit=r.config.evaluation["limit"]),
        runtime=Runtime(device=args.device, batch_size=int(r.config.evaluation["batch_size"])),
    )
    sp = res.summary.splits
    entry = {
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
    return dict(prev) if prev.get("task") == "anatomy" and prev.get("sim_version") == sim_version else {}


def _paired_test_q(*run_dirs: Path, split: str = "test_Q") -> tuple[list[Any], Any]:
    """Per-slice SSIM on ``split`` of several runs on their common slices, and the volume of each slice."""
    cols = [_test_q(d, split) for d in run_dirs]
    common = cols[0].index
    for c in cols[1:]:
        common = common.intersection(c.index)
    cols = [c.reindex(common) for c in cols]
    return cols, common.get_level_values("file")


def _ttt_analysis(runs: Path, supervised_gap: dict[str, Any] | None = None) -> dict[str, Any]:
    """D22's fraction of the gap closed by TTT, the self-supervised gap and other named ratios, with CIs."""
    from mribench.analysis.gap import (
        d22_fraction_closed_ci,
        fraction_gap_closed,
        fraction_gap_closed_ci,
        performance_gap_ci,
    )
    from mribench.analysis.stats import paired_difference

    def diff(a: Any, b: Any, groups: Any) -> dict[str, Any]:
        d = paired_difference(a.to_numpy(), b.to_numpy(), groups)
        return {"ssim": d.mean, "ci": [d.low, d.high], "p_value": d.p_value, "n_slices": d.n, "n_volumes": d.n_groups}

    no_adapt, q_adapt = runs / EXTRA_EVAL["ttt"][0], runs / EXTRA_EVAL["ttt-q"][0]
    (q, p, a, qa), groups = _paired_test_q(runs / "ttt-q", no_adapt, runs / "ttt", q_adapt)
    g = performance_gap_ci(q.to_numpy(), p.to_numpy(), groups)
    p_only = fraction_gap_closed_ci(q.to_numpy(), p.to_numpy(), q.to_numpy(), a.to_numpy(), groups)
    both = fraction_gap_closed_ci(q.to_numpy(), p.to_numpy(), qa.to_numpy(), a.to_numpy(), groups)
    (p_plain, p_adapt), groups_p = _paired_test_q(no_adapt, runs / "ttt", split="test_P")
    if (runs / "sup-q").is_dir() and (runs / "sup-p").is_dir():
        (sq, sp, dq, dp), dg = _paired_test_q(runs / "sup-q", runs / "sup-p", q_adapt, runs / "ttt")
        d = d22_fraction_closed_ci(sq.to_numpy(), sp.to_numpy(), dq.to_numpy(), dp.to_numpy(), dg)
        d22: dict[str, Any] = {
            "fraction_closed": d.fraction,
            "ci": [d.low, d.high],
            "gap_before_supervised": d.gap_before.mean,
            "gap_before_ci": [d.gap_before.low, d.gap_before.high],
            "gap_after": d.gap_after.mean,
            "gap_after_ci": [d.gap_after.low, d.gap_after.high],
            "n_slices": d.n,
            "n_volumes": d.n_groups,
        }
    elif supervised_gap is not None:  # the supervised runs live elsewhere: point estimate from the stored gap
        d22 = {
            "fraction_closed": fraction_gap_closed(supervised_gap["ssim"], both.gap_after.mean),  # D22's pairs
            "ci": None,
            "ci_pending": "needs the sup-p and sup-q runs next to the ttt runs (per-slice pairing)",
            "gap_before_supervised": supervised_gap["ssim"],
            "gap_after": both.gap_after.mean,
            "gap_after_ci": [both.gap_after.low, both.gap_after.high],
        }
    else:
        d22 = {"fraction_closed": None, "pending": "needs the supervised gap (recipes sup-p and sup-q)"}
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
        "ttt": {
            "d22": d22,
            "ssim_p_trained_ttt": float(a.mean()),
            "ssim_q_trained_ttt": float(qa.mean()),
            "n_slices": both.n,
            "n_volumes": both.n_groups,
            "selfsup_ratio_both_adapted": {
                "definition": "1 - (SSIM(ttt-q adapted) - SSIM(ttt)) / self-supervised gap (mribench's ratio, "
                "not Darestani et al.'s fraction)",
                "value": both.fraction,
                "ci": [both.low, both.high],
            },
            "selfsup_ratio_p_adapted": {
                "definition": "(SSIM(ttt) - SSIM(ttt without adaptation)) / self-supervised gap (mribench's ratio, "
                "not Darestani et al.'s fraction)",
                "value": p_only.fraction,
                "ci": [p_only.low, p_only.high],
            },
            "gap_q_unadapted_minus_p_adapted": p_only.gap_after.mean,
            "gap_q_unadapted_minus_p_adapted_ci": [p_only.gap_after.low, p_only.gap_after.high],
            "gain_p_trained_test_Q": diff(p, a, groups),
            "gain_q_trained_test_Q": diff(q, qa, groups),
            "gain_p_trained_test_P": diff(p_plain, p_adapt, groups_p),
        },
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
        help="overrides of the `ttt` recipe (recipes ttt and ttt-q)",
    )
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
    ttt_overrides = yaml.safe_load(args.ttt_config.read_text()) or {}
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
                    "anatomy",
                    config={**overrides, "model_name": name},
                    epochs=args.epochs,
                    device=args.device,
                    out=args.runs / recipe,
                    data_root=args.data_root,
                    on_epoch=_progress_line(name),
                )
            else:
                name, extra = SELFSUP[recipe]
                r = run_recipe(
                    "ttt",
                    "anatomy",
                    config={**ttt_overrides, **extra, "model_name": name},
                    epochs=args.epochs,
                    device=args.device,
                    out=args.runs / recipe,
                    data_root=args.data_root,
                    on_epoch=_progress_line(name),
                )
            results[recipe] = _model_entry(r, name, t0)
            print(f"[{name}] test_P SSIM {r.scores['test_P']:.4f}  test_Q SSIM {r.scores['test_Q']:.4f}", flush=True)
            if recipe == "ttt":
                results[recipe]["ttt_steps"] = _ttt_steps(r.out_dir)
            if recipe in EXTRA_EVAL:
                results[recipe]["second_evaluation"] = _evaluate_network(r, recipe, ttt_overrides, args)

    zf = evaluate("zero-filled", "anatomy", data=args.data_root, run_dir=args.runs / "zero-filled", mode="resume")
    summary: dict[str, Any] = _previous(args, SIM_VERSION)
    summary.update(
        {
            "task": "anatomy",
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
    if {"ttt", "ttt-q"} <= set(results):
        summary.update(_ttt_analysis(args.runs, summary.get("gap")))
    text = json.dumps(summary, indent=2, sort_keys=True, default=float) + "\n"
    args.runs.mkdir(parents=True, exist_ok=True)
    (args.runs / "results.json").write_text(text)
    if not args.no_ship:
        (HERE / "results.json").write_text(text)
    print(
        json.dumps(
            {k: v for k, v in summary.items() if k in ("gap", "joint", "selfsup_gap", "ttt")}, indent=2, default=float
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
