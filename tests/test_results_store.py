"""Results JSON: the non-finite rule of mribench.analysis.stats at the storage boundary."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mribench.api.run import ModelRecord, RunConfig, TaskRecord
from mribench.errors import ResultsError
from mribench.results import RunResult, dumps, metric_value, summarize
from mribench.workflows.check import load_comparable, slices_payload

REPO = Path(__file__).resolve().parents[1]


def test_dumps_keeps_infinities_as_strings_and_nan_as_null() -> None:
    text = dumps({"a": math.inf, "b": -math.inf, "c": math.nan, "d": 1.5, "e": [np.float64(np.inf)]})
    assert text == '{"a": "inf", "b": "-inf", "c": null, "d": 1.5, "e": ["inf"]}'
    assert dumps({"x": 0.1}) == json.dumps({"x": 0.1})  # finite data: plain JSON, unchanged


@pytest.mark.parametrize(
    ("stored", "value"), [(None, math.nan), (2, 2.0), (0.5, 0.5), ("inf", math.inf), ("-inf", -math.inf)]
)
def test_metric_value_reads_what_dumps_writes(stored: object, value: float) -> None:
    got = metric_value(stored)
    assert (math.isnan(got) and math.isnan(value)) or got == value


@pytest.mark.parametrize("bad", ["abc", "Infinity", True, [1.0]])
def test_metric_value_refuses_anything_else(bad: object) -> None:
    with pytest.raises(ResultsError, match="expected a metric value"):
        metric_value(bad)


def test_results_json_round_trips_an_infinite_psnr(tmp_path: Path) -> None:
    rows = [
        {"split": "test_P", "file": f"f{i // 2}.h5", "slice": i % 2, "status": "ok", "error": None, "seconds": 0.1}
        | {"psnr": math.inf if i == 0 else 30.0 + i}
        for i in range(6)
    ]
    frame = pd.DataFrame(rows)
    cfg = RunConfig(
        task=TaskRecord(name="t", version=1, sha256="0" * 64),
        model=ModelRecord(name="m", kind="user", sha256="0" * 64),
        metrics=["psnr"],
        higher_is_better={"psnr": True},
    )
    res = RunResult(tmp_path, cfg, frame, summarize(frame, ["psnr"], {"psnr": True}))
    out = tmp_path / "out.json"
    out.write_text(dumps({**res.to_json(), "slices": slices_payload(res)}))
    back = load_comparable(out)
    assert np.isinf(back.slices["psnr"].to_numpy()).sum() == 1
    s = back.summary.splits["test_P"].metrics["psnr"]
    assert (s.n, s.n_inf) == (5, 1) and s.mean == pytest.approx(np.mean([31, 32, 33, 34, 35]))


@pytest.mark.parametrize("ref", sorted((REPO / "baselines/reference-runs").glob("*.json")), ids=lambda p: p.stem)
def test_committed_reference_runs_rederive_to_their_stored_summary(ref: Path) -> None:
    """Finite data: the one statistics module gives the numbers the reference runs were written with
    (to the last bit or two: columns sharing one bootstrap call sum in another order)."""
    stored = json.loads(ref.read_text())["summary"]
    run = load_comparable(ref)
    for sp, s in stored["splits"].items():
        for m, v in s["metrics"].items():
            new = run.summary.splits[sp].metrics[m]
            assert (new.n, new.n_inf) == (v["n"], 0)
            for k in ("mean", "ci_low", "ci_high"):
                assert getattr(new, k) == pytest.approx(v[k], rel=1e-14, abs=0)
    assert {m: s.model_dump() for m, s in run.summary.shift.items()} == stored["shift"]
