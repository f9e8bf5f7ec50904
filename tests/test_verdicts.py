"""The regression gate's verdicts (issue 17): failed and missing slices, float-level differences,
power (INCONCLUSIVE, how many volumes would decide), one volume, --until-decided, and --limit
selecting whole volumes by a documented seed."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mribench.api.run import EvalOptions, parse_run_config
from mribench.results import RunResult
from mribench.workflows.check import CheckMisuse, compare_runs, describe_regressions, to_junit, to_markdown

SPLITS = ("test_P", "test_Q")


def _run(
    values: dict[str, dict[str, np.ndarray]],
    *,
    n_vol: int = 10,
    per_vol: int = 5,
    failed: dict[str, str] | None = None,
    keep: dict[str, int] | None = None,
    config: dict[str, Any] | None = None,
) -> RunResult:
    """A synthetic run of ``n_vol`` volumes x ``per_vol`` slices per split.

    Args:
        values: ``{metric: {split: (n_vol * per_vol,) values}}``.
        failed: ``{split: error}``: every slice of that split failed with that error.
        keep: ``{split: volumes}``: only the first volumes of a split are in the store (a subset).
        config: run-record fields overriding the defaults (merged one level deep).
    """
    rows = []
    for split in SPLITS:
        if split not in (config or {}).get("splits", {split: 1}):
            continue
        for v in range((keep or {}).get(split, n_vol)):
            for s in range(per_vol):
                i = v * per_vol + s
                bad = (failed or {}).get(split)
                rows.append(
                    {
                        "split": split,
                        "file": f"f{v:02d}.h5",
                        "slice": s,
                        "status": "failed" if bad else "ok",
                        "error": bad,
                        "seconds": 0.1,
                        **{m: math.nan if bad else float(a[split][i]) for m, a in values.items()},
                    }
                )
    split = {"manifest": "m1", "evaluated_manifest": "m1", "n_slices": n_vol * per_vol, "n_volumes": n_vol}
    raw: dict[str, Any] = {
        "task": {"name": "anatomy", "version": 1, "sha256": "a" * 64},
        "model": {"name": "m", "kind": "user", "sha256": "0" * 64},
        "metrics": list(values),
        "higher_is_better": {"ssim": True, "psnr": True, "nmse": False},
        "metric_profiles": {m: {"profile": f"{m}@v1", "hash": "h"} for m in values},
        "splits": {s: split for s in SPLITS},
        "masks": {s: {"type": "equispaced", "acceleration": 4} for s in SPLITS},
        "options": {"normalize_output": False, "precision": "fp32"},
    }
    for k, v in (config or {}).items():
        raw[k] = {**raw[k], **v} if isinstance(raw.get(k), dict) and isinstance(v, dict) and k != "splits" else v
    return RunResult(Path("synthetic"), parse_run_config(raw), pd.DataFrame(rows))


def _base(n: int = 50, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        "ssim": {s: 0.8 + 0.05 * rng.standard_normal(n) for s in SPLITS},
        "psnr": {s: 30 + 2 * rng.standard_normal(n) for s in SPLITS},
        "nmse": {s: 0.02 + 0.005 * rng.random(n) for s in SPLITS},
    }


def _map(v: dict[str, dict[str, np.ndarray]], fn: Any, metrics: tuple[str, ...] | None = None) -> dict:
    return {m: {s: (fn(a) if metrics is None or m in metrics else a) for s, a in d.items()} for m, d in v.items()}


# ----------------------------------------------------------------------------- 1. failed slices


def test_failed_candidate_slices_are_a_regression_naming_how_many_and_why() -> None:
    """Issue 17 problem 1: a model crashing on every OOD slice passed (the rows vanished)."""
    v = _base()
    rep = compare_runs(_run(v), _run(v, failed={"test_Q": "model raised RuntimeError: boom"}))
    assert not rep.passed
    assert rep.verdict == "regression" and rep.exit_code == 1
    lines = describe_regressions(rep)
    assert any("50 failed slice(s) in test_Q" in ln and "model raised RuntimeError: boom" in ln for ln in lines), lines
    assert "failed slice" in to_markdown(rep) and 'failures="1"' in to_junit(rep)


def test_a_reference_with_failed_slices_is_refused() -> None:
    v = _base()
    with pytest.raises(CheckMisuse, match="reference has 50 failed slice"):
        compare_runs(_run(v, failed={"test_P": "unreadable"}), _run(v))


# ----------------------------------------------------------------------------- 2. power


def test_an_underpowered_check_is_inconclusive_and_says_how_many_volumes_would_decide() -> None:
    """Issue 17 problem 2: two volumes passed a 0.05 SSIM drop, 23x the allowed 0.002."""
    v = _base(10)
    rng = np.random.default_rng(1)
    per_volume = 0.05 + 0.03 * rng.standard_normal(2)
    worse = _map(v, lambda a: a - np.repeat(per_volume, 5), ("ssim",))
    rep = compare_runs(_run(v, n_vol=2), _run(worse, n_vol=2), max_drop={"ssim": 0.002}, metrics=["ssim"])
    assert not rep.passed
    assert rep.verdict == "inconclusive" and rep.exit_code == 3
    for c in rep.comparisons:
        assert c.verdict == "inconclusive" and c.detectable > 0.002
        assert c.volumes_needed is not None and c.volumes_needed > 2
    text = to_markdown(rep)
    assert "INCONCLUSIVE" in text and "volumes" in text


def test_enough_volumes_decide_and_the_estimate_is_about_right() -> None:
    """The number of volumes the check asks for decides a check of the same kind."""
    rng = np.random.default_rng(3)

    def pair(n_vol: int) -> tuple[RunResult, RunResult]:
        v = {"ssim": {s: 0.8 + 0.05 * rng.standard_normal(n_vol * 3) for s in SPLITS}}
        drop = np.repeat(0.006 + 0.004 * rng.standard_normal(n_vol), 3)
        return _run(v, n_vol=n_vol, per_vol=3), _run(_map(v, lambda a: a - drop), n_vol=n_vol, per_vol=3)

    small = compare_runs(*pair(4), max_drop={"ssim": 0.002})
    assert small.verdict == "inconclusive"
    need = max(c.volumes_needed for c in small.comparisons if c.volumes_needed is not None)
    assert 4 < need < 200
    decided = sum(compare_runs(*pair(2 * need), max_drop={"ssim": 0.002}).verdict == "regression" for _ in range(10))
    assert decided >= 6


def test_a_clear_improvement_passes_even_with_few_volumes() -> None:
    v = _base(15)
    better = _map(v, lambda a: a + 0.1 + 0.01 * np.random.default_rng(0).standard_normal(len(a)), ("ssim",))
    rep = compare_runs(_run(v, n_vol=3), _run(better, n_vol=3), max_drop={"ssim": 0.002}, metrics=["ssim"])
    assert rep.verdict == "pass", to_markdown(rep)


def test_one_volume_never_yields_a_zero_width_interval() -> None:
    """Issue 17 problem 2: with one volume the interval collapsed to a point."""
    v = _base(5)
    rng = np.random.default_rng(2)
    worse = _map(v, lambda a: a - 0.001 - 1e-3 * rng.random(5), ("ssim",))
    rep = compare_runs(_run(v, n_vol=1), _run(worse, n_vol=1), max_drop={"ssim": 0.002}, metrics=["ssim"])
    for c in rep.comparisons:
        assert not (c.ci_low == c.ci_high), c
        assert c.verdict == "inconclusive" and c.volumes_needed is None
    assert rep.verdict == "inconclusive"
    assert "at least 2 volumes" in to_markdown(rep)
    d = rep.to_dict()  # JSON-able: undefined bounds are null
    json.dumps(d, allow_nan=False)
    # identical runs on one volume are equal, hence pass
    assert compare_runs(_run(v, n_vol=1), _run(v, n_vol=1), metrics=["ssim"]).verdict == "pass"


# ----------------------------------------------------------------------------- 3. tolerances


def test_float_level_differences_never_fail() -> None:
    """Issue 17 problem 3: a 1e-6 relative scale failed on nmse ("0.048476 -> 0.048476 regression")."""
    v = _base()
    scaled = _map(v, lambda a: a * (1 + 1e-6))
    rep = compare_runs(_run(v), _run(scaled), max_drop={"ssim": 0.002})
    assert rep.passed, to_markdown(rep)
    assert all(c.equal for c in rep.comparisons)
    # metrics not named in --max-drop are allowed their tolerance, not 0
    from mribench.metrics import get_metric

    nmse = next(c for c in rep.comparisons if c.metric == "nmse" and c.split == "test_P")
    assert nmse.threshold == pytest.approx(get_metric("nmse").tolerance.allowed(nmse.reference))
    # an explicit allowed drop below the tolerance is raised to it
    assert compare_runs(_run(v), _run(scaled), max_drop={"nmse": 0.0, "ssim": 0.0}).passed
    # a real loss beyond the tolerance still fails
    worse = _map(v, lambda a: a * 1.01, ("nmse",))
    assert compare_runs(_run(v), _run(worse)).verdict == "regression"


def test_metric_tolerances_belong_to_the_metric_definition() -> None:
    from mribench.metrics import explain, get_metric, list_metrics
    from mribench.metrics.registry import definition_hash

    ssim, nmse, psnr = get_metric("ssim"), get_metric("nmse"), get_metric("psnr")
    assert ssim.tolerance.absolute > 0 and ssim.tolerance.relative == 0
    assert nmse.tolerance.relative > 0 and psnr.tolerance.relative > 0
    assert ssim.tolerance.allowed(0.9) == ssim.tolerance.absolute
    assert nmse.tolerance.allowed(0.02) == pytest.approx(0.02 * nmse.tolerance.relative)
    for name in list_metrics():
        assert get_metric(name).tolerance.allowed(1.0) > 0, name
    assert "tolerance" in explain("ssim")
    # the tolerance is how results are compared, not how they are computed: not in the hashed definition
    assert "tolerance" not in ssim.definition()
    assert len(definition_hash(ssim)) == 64


# ----------------------------------------------------------------------------- 4. coverage and options


def test_missing_candidate_slices_are_refused_unless_explicitly_allowed() -> None:
    """Issue 17 problem 4: a 10-slice candidate passed against a 50-slice reference."""
    v = _base()
    partial = _run(v, keep={"test_P": 2, "test_Q": 2})
    with pytest.raises(CheckMisuse, match=r"missing 40 of 50 reference slices in test_P"):
        compare_runs(_run(v), partial)
    rep = compare_runs(_run(v), partial, allow_missing=True)
    assert rep.passed and any("not evaluated by the candidate" in n for n in rep.notes)
    # a whole split missing is missing slices too
    only_q = _run(
        v,
        config={"splits": {"test_Q": {"manifest": "m1", "evaluated_manifest": "m1", "n_slices": 50, "n_volumes": 10}}},
    )
    with pytest.raises(CheckMisuse, match="test_P"):
        compare_runs(_run(v), only_q)


@pytest.mark.parametrize(
    ("field", "override", "match"),
    [
        ("options", {"precision": "bf16"}, "options.precision: 'fp32' != 'bf16'"),
        ("options", {"normalize_output": True}, "options.normalize_output: False != True"),
        ("task", {"sha256": "b" * 64}, "task.sha256"),
        ("masks", {"test_Q": {"type": "random", "acceleration": 4}}, "masks.test_Q"),
    ],
)
def test_runs_defined_differently_are_refused_naming_what_differs(field: str, override: dict, match: str) -> None:
    v = _base()
    with pytest.raises(CheckMisuse, match=match.replace("(", r"\(").replace(")", r"\)")):
        compare_runs(_run(v), _run(v, config={field: override}))


# ----------------------------------------------------------------------------- 8. --limit


TINY_TASK = {
    "version": 1,
    "source": {"filter": {"anatomy": "knee"}},
    "target": {"filter": {"anatomy": "brain"}},
    "splits": {"test_fraction": 0.5},
    "metrics": ["ssim", "psnr"],
}


def _documented_order(files: list[str], seed: int) -> list[str]:
    """The selection rule as documented: volumes by sha256 of ``"<seed>:<file name>"``."""
    return sorted(files, key=lambda f: (hashlib.sha256(f"{seed}:{f}".encode()).hexdigest(), f))


def test_limit_selects_whole_volumes_spread_by_a_documented_seed(tiny_root: Path, tmp_path: Path) -> None:
    """Issue 17 problem 8: --limit took the first N slices in file order (one or two volumes)."""
    from mribench import evaluate
    from mribench.data.index import build_index
    from mribench.tasks import make_splits, parse_task

    task = parse_task(dict(TINY_TASK), "tiny")
    full = make_splits(task, build_index(tiny_root))["test_Q"].rows
    files = sorted(set(full["file"]))
    assert len(files) >= 3
    for seed in (0, 7):
        r = evaluate(
            "zero-filled",
            task,
            data=tiny_root,
            run_dir=tmp_path / f"s{seed}",
            options=EvalOptions(limit=2, limit_seed=seed, splits=("test_Q",)),
        )
        got = r.slices.groupby("file")["slice"].apply(sorted).to_dict()
        assert sorted(got) == sorted(_documented_order(files, seed)[:2])
        for f, sl in got.items():  # whole volumes
            assert sl == sorted(full.loc[full["file"] == f, "slice"].tolist())
        assert r.config.options.limit == 2 and r.config.options.limit_seed == seed
        assert r.config.splits["test_Q"].n_volumes == 2
    # a larger limit keeps the smaller selection (nested), so a check can add volumes
    from mribench.data.subset import select_volumes

    two, three = select_volumes(full, 2, seed=0), select_volumes(full, 3, seed=0)
    assert set(two["file"]) < set(three["file"])
    assert select_volumes(full, None, seed=0).equals(full)


# ----------------------------------------------------------------------------- end to end


WORSE = """
    import torch
    from mribench.physics import zero_filled

    def build():
        def model(k, m, meta):
            x = zero_filled(k, meta.target_size)
            g = torch.Generator().manual_seed(0)
            return x + 0.05 * x.abs().amax() * torch.randn(x.shape, generator=g)
        return model
"""
CRASH_OOD = """
    from mribench.physics import zero_filled

    def build():
        def model(k, m, meta):
            if "brain" in meta.file:
                raise RuntimeError("cannot reconstruct brains")
            return zero_filled(k, meta.target_size)
        return model
"""


def _mb(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mribench", *args], capture_output=True, text=True, cwd=cwd)


def test_cli_exit_codes_pass_regression_misuse_inconclusive(tiny_root: Path, tmp_path: Path) -> None:
    import yaml

    tf = tmp_path / "t.yaml"
    tf.write_text(yaml.safe_dump(TINY_TASK))
    for name, src in (("worse", WORSE), ("crash", CRASH_OOD)):
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(src))
    data = ["--data-root", str(tiny_root)]
    ref = _mb("evaluate", "-m", "zero-filled", "-t", str(tf), *data, "--run-dir", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    check = ["check", "-r", str(tmp_path / "ref"), *data, "--max-drop", "ssim=0.002", "--max-drop", "psnr=0.1"]
    same = _mb(*check, "-m", "zero-filled", "--run-dir", str(tmp_path / "c0"))
    assert same.returncode == 0, same.stdout + same.stderr
    crash = _mb(*check, "-m", f"{tmp_path / 'crash.py'}:build", "--run-dir", str(tmp_path / "c1"))
    assert crash.returncode == 1 and "failed slice(s) in test_Q" in crash.stderr, crash.stderr
    assert "cannot reconstruct brains" in crash.stderr
    worse = f"{tmp_path / 'worse.py'}:build"
    partial = _mb("evaluate", "-m", worse, "-t", str(tf), *data, "--limit", "1", "--run-dir", str(tmp_path / "part"))
    assert partial.returncode == 0, partial.stderr
    missing = _mb(*check, "-c", str(tmp_path / "part"))
    assert missing.returncode == 2 and "missing" in missing.stderr and "--allow-missing" in missing.stderr
    few = _mb(*check, "-c", str(tmp_path / "part"), "--allow-missing")
    assert few.returncode == 3 and "INCONCLUSIVE" in few.stdout, few.stdout + few.stderr
    decided = _mb(*check, "-m", worse, "--run-dir", str(tmp_path / "c2"), "--until-decided")
    assert decided.returncode == 1, decided.stdout + decided.stderr
    assert "regression" in decided.stderr


@pytest.fixture(scope="module")
def one_slice_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Volumes of one slice each (as the D22 tasks score only each test volume's middle slice)."""
    from conftest import make_volume

    root = tmp_path_factory.mktemp("one-slice")
    for i in range(24):
        make_volume(root, f"file_knee_{i:03d}", protocol="CORPD_FBK", slices=1, seed=i)
        make_volume(root, f"file_brain_AXT2_{i:03d}", protocol="AXT2", slices=1, seed=100 + i)
    return root


def test_until_decided_adds_volumes_in_rounds_and_stops_when_decided(one_slice_root: Path, tmp_path: Path) -> None:
    from mribench import evaluate
    from mribench.data.subset import volume_order
    from mribench.tasks import parse_task
    from mribench.workflows.check import CheckSettings, check_model

    task = parse_task(dict(TINY_TASK), "tiny")
    ref = evaluate("zero-filled", task, data=one_slice_root, run_dir=tmp_path / "ref")
    total = {s: r.n_volumes for s, r in ref.config.splits.items()}
    assert min(total.values()) > 6 and all(r.n_slices == r.n_volumes for r in ref.config.splits.values())
    settings = CheckSettings(max_drop={"ssim": 0.002, "psnr": 0.1})
    same, cand = check_model(
        ref.run_dir,
        "zero-filled",
        task=task,
        data=one_slice_root,
        run_dir=tmp_path / "c",
        settings=settings,
        until_decided=True,
    )
    assert same.verdict == "pass", to_markdown(same)
    for sp, info in cand.config.splits.items():  # decided on the first round: 5 volumes, in the documented order
        files = sorted(set(cand.slices.loc[cand.slices["split"] == sp, "file"]))
        assert info.n_volumes == 5 < total[sp]
        assert files == sorted(volume_order(ref.slices.loc[ref.slices["split"] == sp, "file"], 0)[:5])
    assert any("--until-decided: decided on 5 of" in n for n in same.notes)
    # a candidate whose change cannot be told apart from the allowed drop goes on to every volume
    (tmp_path / "m.py").write_text(
        "from mribench.physics import zero_filled\n"
        "def build():\n    return lambda k, m, meta: zero_filled(k, meta.target_size) * 0.999\n"
    )
    tight = CheckSettings(max_drop={"ssim": 0.0, "psnr": 0.0})
    slight, cand = check_model(
        ref.run_dir,
        f"{tmp_path / 'm.py'}:build",
        task=task,
        data=one_slice_root,
        run_dir=tmp_path / "c2",
        settings=tight,
        until_decided=True,
    )
    assert slight.verdict in ("regression", "inconclusive")
    assert all(c.n == c.n_volumes for c in slight.comparisons)  # one slice per volume: statistics per volume
    assert max(i.n_volumes for i in cand.config.splits.values()) > 5, slight.notes  # more rounds were run


def test_a_reference_limited_to_its_first_slices_is_refused_with_a_hint() -> None:
    """Runs written before --limit selected volumes cannot be repeated on the same slices."""
    from mribench.workflows.check import candidate_options, load_comparable

    old = Path(__file__).parent / "data" / "schema1-runs" / "zero-filled@anatomy.json"
    ref = load_comparable(old)
    assert ref.config.options.limit == 24 and ref.config.options.limit_seed is None
    with pytest.raises(CheckMisuse, match=r"first 24 slices .*hint: regenerate the reference"):
        candidate_options(ref)
