from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mribench.api.run import parse_run_config
from mribench.results import RunResult
from mribench.workflows.check import CheckMisuse, compare_runs, parse_thresholds, to_junit, to_markdown


def _run(
    values: dict[str, np.ndarray],
    manifest: str = "m1",
    profile_hash: str = "h",
    n_vol: int = 10,
    normalize_output: bool = False,
) -> RunResult:
    """A synthetic run: 10 volumes x 5 slices on test_P and test_Q."""
    rows = []
    for split in ("test_P", "test_Q"):
        for v in range(n_vol):
            for s in range(5):
                i = v * 5 + s
                rows.append(
                    {
                        "split": split,
                        "file": f"f{v}.h5",
                        "slice": s,
                        "status": "ok",
                        "error": None,
                        "seconds": 0.1,
                        **{m: float(a[split][i]) for m, a in values.items()},
                    }
                )
    split = {"manifest": manifest, "evaluated_manifest": manifest, "n_slices": 5 * n_vol, "n_volumes": n_vol}
    cfg = parse_run_config(
        {
            "task": {"name": "anatomy", "version": 1},
            "model": {"name": "m", "kind": "user", "sha256": "0" * 64},
            "metrics": list(values),
            "higher_is_better": {"ssim": True, "nmse": False},
            "metric_profiles": {m: {"profile": f"{m}@v1", "hash": profile_hash} for m in values},
            "splits": {s: split for s in ("test_P", "test_Q")},
            "masks": {s: {"type": "equispaced", "acceleration": 4} for s in ("test_P", "test_Q")},
            "options": {"normalize_output": normalize_output},
        }
    )
    return RunResult(Path("synthetic"), cfg, pd.DataFrame(rows))


def _base(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {
        "ssim": {s: 0.8 + 0.05 * rng.standard_normal(50) for s in ("test_P", "test_Q")},
        "nmse": {s: 0.02 + 0.005 * rng.random(50) for s in ("test_P", "test_Q")},
    }


def test_identical_runs_pass() -> None:
    v = _base()
    rep = compare_runs(_run(v), _run(v))
    assert rep.passed and len(rep.comparisons) == 4
    assert all(c.degradation == 0 for c in rep.comparisons)


def test_slightly_worse_on_one_shift_fails_naming_it() -> None:
    v = _base()
    worse = {m: dict(a) for m, a in v.items()}
    worse["ssim"]["test_Q"] = v["ssim"]["test_Q"] - 0.003  # small but systematic
    rep = compare_runs(_run(v), _run(worse))
    assert not rep.passed
    (bad,) = rep.regressions
    assert (bad.split, bad.metric) == ("test_Q", "ssim") and bad.degradation == pytest.approx(0.003)
    assert "test_Q | ssim" in to_markdown(rep) and "regression" in to_markdown(rep)
    assert 'failures="1"' in to_junit(rep) and "anatomy/test_Q/ssim" in to_junit(rep)
    # allowed by a threshold above the drop
    assert compare_runs(_run(v), _run(worse), max_drop={"ssim": 0.005}).passed


def test_lower_is_better_direction() -> None:
    v = _base()
    worse = {m: dict(a) for m, a in v.items()}
    worse["nmse"]["test_P"] = v["nmse"]["test_P"] * 1.5
    rep = compare_runs(_run(v), _run(worse))
    assert [(c.split, c.metric) for c in rep.regressions] == [("test_P", "nmse")]
    better = {m: dict(a) for m, a in v.items()}
    better["nmse"]["test_P"] = v["nmse"]["test_P"] * 0.5
    assert compare_runs(_run(v), _run(better)).passed


def test_change_within_noise_passes_at_the_nominal_rate() -> None:
    """Zero-mean noise is a regression at most at about the nominal (Bonferroni-corrected) rate; it
    passes when the allowed drops are well above what the check can detect, and is inconclusive
    (not a pass) when they are below it."""
    v = _base()
    fails = passes = undecided = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        noisy = {
            m: {s: a + 1e-3 * rng.standard_normal(50) * (1 if m == "ssim" else 0.01) for s, a in d.items()}
            for m, d in v.items()
        }
        fails += compare_runs(_run(v), _run(noisy), n_boot=500).verdict == "regression"
        undecided += compare_runs(_run(v), _run(noisy), n_boot=500).verdict == "inconclusive"
        passes += compare_runs(_run(v), _run(noisy), n_boot=500, max_drop={"ssim": 0.002, "nmse": 4e-5}).passed
    assert fails <= 4  # expected about 2 of 40 at alpha = 0.05
    assert undecided >= 36  # the metrics' tolerances are far below what 10 volumes can resolve
    assert passes >= 38


def test_mismatched_splits_or_profiles_are_refused() -> None:
    v = _base()
    with pytest.raises(CheckMisuse, match="splits.test_P.manifest: 'm1' != 'other'"):
        compare_runs(_run(v), _run(v, manifest="other"))
    with pytest.raises(CheckMisuse, match="metric_profiles.nmse.hash: 'h' != 'other'"):
        compare_runs(_run(v), _run(v, profile_hash="other"))
    with pytest.raises(CheckMisuse, match="options.normalize_output: False != True"):  # once ignored by check
        compare_runs(_run(v), _run(v, normalize_output=True))
    with pytest.raises(CheckMisuse, match="present in both"):
        compare_runs(_run(v), _run(v), metrics=["lpips_vgg"])


def test_threshold_parsing() -> None:
    assert parse_thresholds(["ssim=0.002", "psnr=0.1,nmse=0.001"]) == {"ssim": 0.002, "psnr": 0.1, "nmse": 0.001}
    with pytest.raises(ValueError, match="METRIC=NUMBER"):
        parse_thresholds(["ssim"])


def test_cli_end_to_end_exit_codes(tiny_root: Path, tmp_path: Path) -> None:
    import yaml

    task = {
        "version": 1,
        "source": {"filter": {"anatomy": "knee"}},
        "target": {"filter": {"anatomy": "brain"}},
        "metrics": ["ssim", "psnr"],
    }
    tf = tmp_path / "t.yaml"
    tf.write_text(yaml.safe_dump(task))
    worse = tmp_path / "worse.py"
    worse.write_text(
        "from mribench.physics import zero_filled\n"
        "def build():\n    return lambda k, m, meta: zero_filled(k, meta.target_size) * 0.9\n"
    )
    mb = [sys.executable, "-m", "mribench"]
    common = ["-t", str(tf), "--data-root", str(tiny_root), "--limit", "12"]
    subprocess.run(
        [
            *mb,
            "evaluate",
            "-m",
            "zero-filled",
            *common,
            "--run-dir",
            str(tmp_path / "ref"),
            "-o",
            str(tmp_path / "ref.json"),
        ],
        check=True,
        capture_output=True,
    )
    ok = subprocess.run(
        [
            *mb,
            "check",
            "-r",
            str(tmp_path / "ref.json"),
            "-m",
            "zero-filled",
            "--data-root",
            str(tiny_root),
            "--run-dir",
            str(tmp_path / "c1"),
            "--junit",
            str(tmp_path / "j.xml"),
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert 'failures="0"' in (tmp_path / "j.xml").read_text()
    bad = subprocess.run(
        [
            *mb,
            "check",
            "-r",
            str(tmp_path / "ref"),
            "-m",
            f"{worse}:build",
            "--data-root",
            str(tiny_root),
            "--run-dir",
            str(tmp_path / "c2"),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "regression: task t, split test_P, metric psnr" in bad.stderr
    misuse = subprocess.run(
        [*mb, "check", "-r", str(tmp_path / "ref"), "-c", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert misuse.returncode == 2
    assert json.loads((tmp_path / "ref.json").read_text())["slices"]["rows"]


def test_slices_with_an_infinite_value_are_counted_and_named() -> None:
    v = _base()
    cand = {m: {s: a.copy() for s, a in d.items()} for m, d in v.items()}
    cand["ssim"]["test_Q"][[3, 17]] = np.inf
    rep = compare_runs(_run(v), _run(cand))
    c = next(c for c in rep.comparisons if (c.split, c.metric) == ("test_Q", "ssim"))
    assert (c.n, c.n_inf, c.degradation) == (48, 2, 0.0) and rep.passed
    assert any("test_Q ssim: 2 slice(s) with an infinite value" in n for n in rep.notes)


def test_a_leaderboard_entry_is_a_reference() -> None:
    """`mribench check --reference <entry>.json` reads the entry with its per-slice sidecar."""
    from mribench.workflows.check import load_comparable

    entry = Path(__file__).resolve().parents[1] / "leaderboard/entries/d22-anatomy/zero-filled.json"
    run = load_comparable(entry)
    stored = json.loads(entry.read_text())["summary"]["splits"]
    for sp, s in stored.items():
        for m, v in s["metrics"].items():
            assert run.summary.splits[sp].metrics[m].mean == pytest.approx(v["mean"], rel=1e-12)
    rep = compare_runs(entry, entry)
    assert rep.passed and rep.comparisons and all(c.degradation == 0 for c in rep.comparisons)
