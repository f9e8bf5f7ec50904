"""Region SSIM through the evaluator: one score per box in the store, summaries averaged over boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mribench import EvalOptions, evaluate
from mribench.results import SliceStore, box_count_column, box_scores, summarize
from mribench.tasks import parse_task

TASK = {
    "version": 1,
    "source": {"filter": {"anatomy": "knee"}},
    "target": {"filter": {"anatomy": "brain"}},
    "mask": {"type": "equispaced", "acceleration": 4},
    "splits": {"test_fraction": 0.5},
    "metrics": ["ssim", "region_ssim", "region_ssim_small"],
}


def test_per_box_scores_are_stored_and_summarised_over_boxes(tiny_root: Path, tmp_path: Path) -> None:
    lines = ["file,slice,study_level,x,y,width,height,label"]
    for i in range(8):  # 32x32 targets: 1% of the area is 10.24 px
        name = f"file_brain_AXT2_{i:03d}"
        lines += [f"{name},0,No,4,5,10,8,Mass", f"{name},0,No,20,20,3,3,Mass", f"{name},1,No,8,8,5,4,Mass"]
    ann = tmp_path / "annotations.csv"
    ann.write_text("\n".join(lines) + "\n")
    run = evaluate(
        "zero-filled",
        parse_task(dict(TASK), "tiny-boxes"),
        data=tiny_root,
        run_dir=tmp_path / "r",
        options=EvalOptions(annotations=ann, splits=("test_Q",)),
    )
    records = SliceStore(run.run_dir).records()
    by_slice = {r["slice"]: r for r in records if r["file"] == records[0]["file"]}
    assert len(by_slice[0]["box_metrics"]["region_ssim"]) == 2 and len(by_slice[1]["box_metrics"]["region_ssim"]) == 1
    assert by_slice[0]["box_metrics"]["region_ssim_small"][0] is None  # the large box is not "small"
    assert by_slice[2]["box_metrics"]["region_ssim"] == [] and by_slice[2]["metrics"]["region_ssim"] is None
    assert by_slice[0]["metrics"]["region_ssim"] == pytest.approx(np.mean(by_slice[0]["box_metrics"]["region_ssim"]))

    df = run.slices
    counts = df.groupby("slice")[box_count_column("region_ssim")].first().to_dict()
    assert counts == {0: 2.0, 1: 1.0, 2: 0.0}
    boxes = box_scores(records)
    s = {m: v.model_dump(exclude_none=True) for m, v in run.summary.splits["test_Q"].metrics.items()}
    n_vol = df["file"].nunique()
    assert s["region_ssim"]["unit"] == "box" and s["region_ssim"]["n"] == 3 * n_vol == len(
        boxes.query("metric == 'region_ssim'")
    )
    assert s["region_ssim"]["mean"] == pytest.approx(boxes.query("metric == 'region_ssim'")["value"].mean(), abs=1e-12)
    assert s["region_ssim"]["mean"] != pytest.approx(df["region_ssim"].mean(), abs=1e-6)  # not a mean over slices
    assert s["region_ssim"]["ci_low"] < s["region_ssim"]["mean"] < s["region_ssim"]["ci_high"]
    assert s["region_ssim_small"]["n"] == n_vol and s["ssim"]["n"] == len(df) and "unit" not in s["ssim"]
    assert summarize(df, run.config.metrics, run.config.higher_is_better).splits == run.summary.splits
