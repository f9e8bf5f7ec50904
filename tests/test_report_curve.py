from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from mribench import EvalOptions, evaluate
from mribench.tasks import parse_task
from mribench.workflows.curve import robustness_curve
from mribench.workflows.report import build_report

TASK = {
    "version": 1,
    "source": {"filter": {"anatomy": "knee"}},
    "target": {"filter": {"anatomy": "brain"}},
    "metrics": ["ssim", "psnr"],
}


def _models(tmp_path: Path) -> list[str]:
    specs = []
    for i, scale in enumerate((0.8, 0.9, 1.1)):
        f = tmp_path / f"m{i}.py"
        f.write_text(
            textwrap.dedent(f"""
            from mribench.physics import zero_filled
            def build():
                return lambda k, m, meta: zero_filled(k, meta.target_size) * {scale}
        """)
        )
        specs.append(f"{f}:build")
    return specs


def test_report_has_tables_gap_effective_robustness_and_plots(tiny_root: Path, tmp_path: Path) -> None:
    task = parse_task(dict(TASK), "tiny")
    runs = [
        evaluate(m, task, data=tiny_root, run_dir=tmp_path / f"r{i}", options=EvalOptions(limit=6)).run_dir
        for i, m in enumerate(["zero-filled", *_models(tmp_path)])
    ]
    # without reference runs there is no effective-robustness line: the report says what is missing
    index = build_report(runs, tmp_path / "plain", q_trained=runs[0], panels=0, data_root=tiny_root)
    assert "Effective robustness not computed: it needs at least 2 reference runs" in index.read_text()
    assert not (tmp_path / "plain" / "tiny-effective-robustness.svg").exists()
    index = build_report(
        runs[:2], tmp_path / "report", q_trained=runs[0], panels=1, data_root=tiny_root, er_reference=runs[2:]
    )
    html = index.read_text()
    assert html.count("<tr>") == 3 and "data:image/png;base64," in html
    assert "reference (trained on Q)" in html and "Effective robustness" in html
    assert "over 2 reference runs trained on P" in html and "volumes of P_best" in html
    assert (tmp_path / "report" / "tiny-effective-robustness.svg").stat().st_size > 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| model |" in md and "ssim@" in md
    assert (
        md.count("-panel.png") == 2
    )  # a reconstruction panel per model, read through the slice source  # a reconstruction panel per model, read through the slice source


def test_report_d22_fraction_closed_uses_the_supervised_gap(tiny_root: Path, tmp_path: Path) -> None:
    from mribench.analysis import d22_fraction_closed_ci
    from mribench.results import load_run

    task = parse_task(dict(TASK), "tiny")
    runs = [
        evaluate(
            m, task, data=tiny_root, run_dir=tmp_path / f"r{i}", options=EvalOptions(limit=6, splits=("test_Q",))
        ).run_dir
        for i, m in enumerate(_models(tmp_path) + ["zero-filled"])
    ]
    p_sup, q_sup, p_ttt, q_ttt = runs[0], runs[3], runs[1], runs[2]
    index = build_report(runs, tmp_path / "report", panels=0, d22_runs=(p_sup, q_sup, p_ttt, q_ttt))
    q = [load_run(r).slices.sort_values(["file", "slice"]) for r in (p_sup, q_sup, p_ttt, q_ttt)]
    f = d22_fraction_closed_ci(q[1]["ssim"], q[0]["ssim"], q[3]["ssim"], q[2]["ssim"], q[0]["file"].to_numpy())
    html = index.read_text()
    assert "Fraction of the gap closed by test-time training (Darestani et al. 2022" in html
    assert f"= {f.fraction:.3f} [{f.low:.3f}, {f.high:.3f}]" in html
    with pytest.raises(ValueError, match="d22_runs"):
        build_report(runs, tmp_path / "bad", panels=0, d22_runs=runs[:3])


def test_acceleration_curve_degrades_and_has_an_auc(tiny_root: Path, tmp_path: Path) -> None:
    task = parse_task(dict(TASK), "tiny")
    cr = robustness_curve(
        "zero-filled", task, "acceleration", values=[2, 4, 8], data=tiny_root, run_root=tmp_path, limit=6
    )
    pts = cr.points["test_Q"]
    assert pts[2.0] > pts[4.0] > pts[8.0]
    assert min(pts.values()) <= cr.auc["test_Q"] <= max(pts.values())


def test_snr_curve_clean_point_equals_plain_evaluation(tiny_root: Path, tmp_path: Path) -> None:
    task = parse_task(dict(TASK), "tiny")
    cr = robustness_curve(
        "zero-filled", task, "snr", values=[math.inf, 10.0], data=tiny_root, run_root=tmp_path, limit=6
    )
    plain = evaluate("zero-filled", task, data=tiny_root, run_dir=tmp_path / "plain", options=EvalOptions(limit=6))
    assert cr.points["test_Q"][math.inf] == pytest.approx(plain.summary.splits["test_Q"].metrics["ssim"].mean)
    assert cr.points["test_Q"][10.0] < cr.points["test_Q"][math.inf]


def test_coil_curve_groups_by_coil_count(tiny_root: Path, tmp_path: Path) -> None:
    cr = robustness_curve(
        "zero-filled", parse_task(dict(TASK), "tiny"), "coils", data=tiny_root, run_root=tmp_path, limit=3
    )
    assert set(cr.points["test_Q"]) == {4.0}


def test_task_similarity_runs_end_to_end_and_reuses_the_cache(tiny_root: Path) -> None:
    import torch

    from mribench.errors import WeightsMissingError
    from mribench.workflows.similarity import task_similarity

    calls = []

    def embed(x: torch.Tensor) -> torch.Tensor:  # a deterministic stand-in encoder (plumbing only)
        calls.append(len(x))
        f = torch.nn.functional.avg_pool2d(x[:, None], 4).flatten(1)
        return torch.nn.functional.normalize(f, dim=1)

    task = parse_task(dict(TASK), "tiny")
    kw = {"data_root": tiny_root, "embed_fn": embed, "weights_hash": "fake", "patch_size": 16, "per_image": 2}
    first = task_similarity(task, **kw)
    n_first = sum(calls)
    second = task_similarity(task, **kw)
    assert n_first > 0 and sum(calls) == n_first  # second run: all from the cache
    for k in ("train_P->test_Q", "train_Q->test_Q"):
        assert 0 < first[k].mean <= 1 and first[k].mean == second[k].mean
    with pytest.raises(WeightsMissingError, match="ViT-B-16"):
        task_similarity(task, data_root=tiny_root)


def test_task_similarity_through_the_real_clip_loader(tiny_root: Path, tiny_checkpoint: Path) -> None:
    """open_clip loading + embedding path with a tiny random-weight ViT (plumbing, not a score)."""
    from conftest import TINY_CLIP

    from mribench.workflows.similarity import task_similarity

    task = parse_task(dict(TASK), "tiny")
    kw = {
        "data_root": tiny_root,
        "checkpoint": tiny_checkpoint,
        "model_name": TINY_CLIP,
        "patch_size": 16,
        "per_image": 2,
        "device": "cpu",
    }
    first = task_similarity(task, **kw)
    second = task_similarity(task, **kw)
    for k in ("train_P->test_Q", "train_Q->test_Q"):
        assert first[k].n_embedded > 0 and second[k].n_embedded == 0  # the second run is all cache hits
        assert first[k].mean == pytest.approx(second[k].mean) and -1 <= first[k].mean <= 1


def test_report_headline_is_the_tasks_primary_metric(tiny_root: Path, tmp_path: Path) -> None:
    """Without --metric the headline is the first metric of the task card (e.g. ssim_d22 for D22)."""
    task = parse_task({**TASK, "metrics": ["psnr", "ssim"]}, "tiny")
    run = evaluate("zero-filled", task, data=tiny_root, run_dir=tmp_path / "r", options=EvalOptions(limit=2)).run_dir
    html = build_report([run], tmp_path / "report", panels=0).read_text()
    assert "metric psnr" in html and "metric ssim" not in html
    html = build_report([run], tmp_path / "report-ssim", panels=0, metric="ssim").read_text()
    assert "metric ssim" in html
