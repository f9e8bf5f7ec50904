"""What a researcher meets in the first hour (issue 21): an identical evaluation returns its stored
result, a changed one says exactly what differs; model objects, callables and model files that import
their neighbours; errors that show their reasons; result tables that say what they measured; report
panels on one error scale; a leaderboard that never ranks its Q-trained reference; ``lpips`` and
``weights status``; and the README's Python snippet after its quick start."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import make_volume
from typer.testing import CliRunner

import mribench
from mribench import EvalOptions, Runtime, evaluate, load_run
from mribench.errors import DataError, RunConflict, StoredRun, WeightsMissingError
from mribench.tasks import parse_task

REPO = Path(__file__).resolve().parents[1]
TASK_DICT = {
    "version": 1,
    "description": "knee -> brain on the tiny test data",
    "source": {"filter": {"anatomy": "knee"}},
    "target": {"filter": {"anatomy": "brain"}},
    "mask": {"type": "equispaced", "acceleration": 4},
    "splits": {"test_fraction": 0.5},
    "metrics": ["ssim", "psnr", "nmse"],
}
ONE = Runtime(threads=1)


@pytest.fixture()
def task():  # noqa: ANN201
    return parse_task(dict(TASK_DICT), "tiny-anatomy")


def _mb(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "mribench", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


# --------------------------------------------------------------------------- 1. the same evaluation again


def test_the_same_evaluation_again_returns_the_stored_result(tiny_root: Path, tmp_path: Path, task) -> None:  # noqa: ANN001
    rd = tmp_path / "run"
    first = evaluate("zero-filled", task, data=tiny_root, run_dir=rd, options=EvalOptions(limit=2), runtime=ONE)
    assert first.reuse is None
    with pytest.warns(StoredRun, match="holds this evaluation already .* nothing was recomputed") as rec:
        again = evaluate("zero-filled", task, data=tiny_root, run_dir=rd, options=EvalOptions(limit=2), runtime=ONE)
    assert 'mode="overwrite"' in str(rec[0].message) and "--" not in str(rec[0].message)  # Python words
    assert again.reuse is not None and again.reuse.kind == "stored"
    assert again.reuse.n_stored == again.reuse.n_planned == len(first.slices)
    cols = ["split", "file", "slice", "ssim", "psnr", "nmse"]
    assert again.slices[cols].equals(first.slices[cols])
    # a changed configuration is refused, naming each differing field, with Python hints
    with pytest.raises(RunConflict) as e:
        evaluate(
            "zero-filled",
            task,
            data=tiny_root,
            run_dir=rd,
            options=EvalOptions(limit=3, metrics=("ssim", "psnr")),
            runtime=ONE,
        )
    msg = str(e.value)
    assert "options.limit: 2 != 3" in msg and "metrics: [ssim, psnr, nmse] != [ssim, psnr]" in msg
    assert "(stored != now)" in msg
    assert 'run_dir=... for a separate run, or mode="overwrite"' in msg and "--overwrite" not in msg
    assert "--run-dir DIR for a separate run, or --overwrite" in e.value.for_cli()
    assert set(e.value.differences) >= {"options.limit: 2 != 3"}
    # overwrite replaces it
    new = evaluate("zero-filled", task, data=tiny_root, run_dir=rd, mode="overwrite", options=EvalOptions(limit=3))
    assert new.reuse is None and new.config.options.limit == 3


def test_the_cli_shows_a_stored_run_in_one_line_and_names_flags(tiny_root: Path, tmp_path: Path) -> None:
    task_file = tmp_path / "t.yaml"
    task_file.write_text(yaml.safe_dump(TASK_DICT))
    base = ["evaluate", "-m", "zero-filled", "-t", str(task_file), "--data-root", str(tiny_root)]
    base += ["--run-dir", str(tmp_path / "r"), "--threads", "1", "--limit", "1"]
    assert _mb(*base).returncode == 0
    again = _mb(*base)
    assert again.returncode == 0, again.stderr
    said = [ln for ln in again.stderr.splitlines() if "holds this evaluation already" in ln]
    assert len(said) == 1 and "--overwrite recomputes everything" in said[0] and "mode=" not in said[0]
    assert "ID (test_P) mean" in again.stdout  # the stored table is shown
    changed = _mb(*base[:-1], "2")
    assert changed.returncode == 2
    lines = [ln for ln in changed.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "options.limit: 1 != 2" in lines[0], changed.stderr
    assert "--run-dir DIR" in lines[0] and "--overwrite" in lines[0] and "mode=" not in lines[0]


# --------------------------------------------------------------------------- 2. model objects


SMOOTH = """
    import torch
    from mribench.physics import zero_filled

    class Smooth(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gain = torch.nn.Parameter(torch.tensor(0.9))

        def forward(self, masked_kspace, mask, meta):
            return self.gain * zero_filled(masked_kspace, meta.target_size)

    def build():
        return Smooth()
"""


def test_evaluate_accepts_names_paths_objects_and_callables(tiny_root: Path, tmp_path: Path, task) -> None:  # noqa: ANN001
    from mribench.physics import zero_filled

    (tmp_path / "smooth.py").write_text(textwrap.dedent(SMOOTH))
    sys.path.insert(0, str(tmp_path))
    try:
        import smooth  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    opts = EvalOptions(limit=1)

    def run(model: object, name: str) -> mribench.RunResult:
        return evaluate(model, task, data=tiny_root, run_dir=tmp_path / name, options=opts, runtime=ONE)  # type: ignore[arg-type]

    by_name = run("zero-filled", "name")
    module = run(smooth.build(), "module")  # the README's my_model.build()
    assert module.config.model.kind == "object" and module.config.model.name == "Smooth"
    assert "weaker" in str(module.config.model.details["identity"])
    ssim = by_name.summary.splits["test_Q"].metrics["ssim"].mean
    assert module.summary.splits["test_Q"].metrics["ssim"].mean != ssim  # the object itself was evaluated

    def plain(masked_kspace: torch.Tensor, mask: torch.Tensor, meta: object) -> torch.Tensor:
        return zero_filled(masked_kspace, meta.target_size)  # type: ignore[attr-defined]

    fn = run(plain, "function")
    assert fn.config.model.name == "plain" and fn.summary.splits["test_Q"].metrics["ssim"].mean == pytest.approx(ssim)
    by_path = run(Path(tmp_path / "smooth.py").as_posix() + ":build", "spec")
    assert by_path.config.model.kind == "user"
    from mribench.models import load_model

    shipped = REPO / "mribench" / "_baselines" / "unet-sim-knee.safetensors"  # a checkpoint as a Path
    assert load_model(shipped).info.kind == "checkpoint"
    # the same object again: its stored run; another parameter value: a refusal naming the hash
    with pytest.warns(StoredRun, match="identity is its source and parameters only"):
        assert run(smooth.build(), "module").reuse.kind == "stored"  # type: ignore[union-attr]
    other = smooth.build()
    with torch.no_grad():
        other.gain.fill_(0.5)
    with pytest.raises(RunConflict, match="model.sha256"):
        run(other, "module")
    with pytest.raises(mribench.errors.ModelError, match="expected a model name, a path, a LoadedModel or a callable"):
        run(42, "bad")


# --------------------------------------------------------------------------- 3. model files and neighbours


def test_a_model_file_imports_its_neighbours_and_its_identity_covers_them(
    tiny_root: Path,
    tmp_path: Path,
    task,  # noqa: ANN001
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "helper_first21.py").write_text("GAIN = 0.9\n")
    (folder / "lazy_first21.py").write_text("OFFSET = 0.0\n")
    (folder / "my_model.py").write_text(
        textwrap.dedent(
            """
            from helper_first21 import GAIN
            from mribench.physics import zero_filled

            def build():
                from lazy_first21 import OFFSET  # imported by the factory: also beside the file

                return lambda k, mask, meta: GAIN * zero_filled(k, meta.target_size) + OFFSET
            """
        )
    )
    spec, rd = f"{folder / 'my_model.py'}:build", tmp_path / "run"
    path_before = list(sys.path)
    r = evaluate(spec, task, data=tiny_root, run_dir=rd, options=EvalOptions(limit=1), runtime=ONE)
    assert sys.path == path_before and "helper_first21" not in sys.modules  # restored after loading
    assert "lazy_first21" not in sys.modules
    assert set(r.config.model.details["sources"]) == {"my_model.py", "helper_first21.py", "lazy_first21.py"}  # type: ignore[arg-type]
    (folder / "helper_first21.py").write_text("GAIN = 0.5\n")  # an edited helper: another model
    with pytest.raises(RunConflict, match=r"model.sha256: \w+ != \w+.*model.details.sources.helper_first21.py"):
        evaluate(spec, task, data=tiny_root, run_dir=rd, options=EvalOptions(limit=1), runtime=ONE)


# --------------------------------------------------------------------------- 4. refusals


def test_a_run_started_before_weights_fetch_is_resumable(
    tiny_root: Path,
    tmp_path: Path,
    task,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    """A task metric unavailable when the run started (weights missing) stays out of that run once
    the weights appear; the result says so instead of refusing."""
    from mribench.metrics.registry import MetricSpec

    missing = {"psnr"}
    original = MetricSpec.check_available

    def check(self: MetricSpec) -> None:
        if self.name in missing:
            raise WeightsMissingError(f"weights for {self.name} missing (hint: mribench weights fetch)")
        original(self)

    monkeypatch.setattr(MetricSpec, "check_available", check)
    rd = tmp_path / "run"
    first = evaluate("zero-filled", task, data=tiny_root, run_dir=rd, options=EvalOptions(limit=1), runtime=ONE)
    assert first.config.metrics == ["ssim", "nmse"] and "psnr" in first.config.unavailable_metrics
    missing.clear()  # `mribench weights fetch`
    with pytest.warns(StoredRun, match="metrics psnr were unavailable .* stay out of it"):
        again = evaluate("zero-filled", task, data=tiny_root, run_dir=rd, options=EvalOptions(limit=1), runtime=ONE)
    assert again.reuse is not None and again.reuse.kind == "stored" and again.reuse.left_out == ["psnr"]
    assert again.config.metrics == ["ssim", "nmse"]
    # asked for explicitly, it is another configuration: refused, naming the metrics
    with pytest.raises(RunConflict, match=r"metrics: \[ssim, nmse\] != \[ssim, psnr, nmse\]"):
        evaluate(
            "zero-filled",
            task,
            data=tiny_root,
            run_dir=rd,
            options=EvalOptions(limit=1, metrics=("ssim", "psnr", "nmse")),
            runtime=ONE,
        )
    full = evaluate("zero-filled", task, data=tiny_root, run_dir=rd, mode="overwrite", options=EvalOptions(limit=1))
    assert full.config.metrics == ["ssim", "psnr", "nmse"]


def test_curve_hints_name_only_its_own_flags(tiny_root: Path, tmp_path: Path, task) -> None:  # noqa: ANN001
    from mribench.cli.app import curve
    from mribench.workflows.curve import robustness_curve

    robustness_curve("zero-filled", task, "acceleration", values=[4], data=tiny_root, run_root=tmp_path, limit=1)
    again = robustness_curve(
        "zero-filled", task, "acceleration", values=[4], data=tiny_root, run_root=tmp_path, limit=1
    )
    assert again.points  # stored points reused
    with pytest.raises(RunConflict) as e:
        robustness_curve("zero-filled", task, "acceleration", values=[4], data=tiny_root, run_root=tmp_path, limit=2)
    cli = e.value.for_cli()
    assert "options.limit: 1 != 2" in cli and "--run-root" in cli and "--overwrite" in cli
    assert "--run-dir" not in cli and "--resume" not in cli
    assert "overwrite=True" in str(e.value) and "--" not in str(e.value).split("hint:")[1]
    import inspect

    flags = inspect.signature(curve).parameters
    assert "run_root" in flags and "overwrite" in flags and "run_dir" not in flags and "resume" not in flags


# --------------------------------------------------------------------------- 5. data errors


def test_an_unreadable_data_root_shows_the_reasons(tmp_path: Path) -> None:
    from mribench.data.index import build_index

    root = tmp_path / "bad"
    root.mkdir()
    for i in range(5):
        (root / f"broken{i}.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DataError) as e:
        build_index(root, use_cache=False)
    msg = str(e.value)
    assert "5 file(s) skipped: broken0.h5: " in msg and "broken2.h5: " in msg and "; ... and 2 more" in msg
    assert "broken3.h5" not in msg and "hint:" in msg and "mribench.data.convert" in msg
    assert "`mribench data convert`" in e.value.for_cli()


def test_data_index_takes_the_root_as_an_argument(tiny_root: Path, tmp_path: Path) -> None:
    from mribench.cli.app import app

    res = CliRunner().invoke(app, ["data", "index", str(tiny_root)])
    assert res.exit_code == 0, res.output
    assert "48 slices in 16 volumes" in res.output
    bad = _mb("data", "index", str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    lines = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "expected a data folder" in lines[0] and "--data-root" in lines[0]


def test_data_info_sorts_coil_counts_as_numbers(tmp_path: Path) -> None:
    from mribench.cli.app import app

    for i, coils in enumerate((4, 12, 16, 2)):
        make_volume(tmp_path, f"file_knee_{i:03d}", coils=coils, slices=1, seed=i)
    res = CliRunner().invoke(app, ["data", "info", str(tmp_path)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    table = res.output[res.output.index("coils") :]
    positions = [re.search(rf"│ {n}\s+│", table).start() for n in (2, 4, 12, 16)]  # type: ignore[union-attr]
    assert positions == sorted(positions)


# --------------------------------------------------------------------------- 6. what a table measured


def test_the_result_table_says_what_it_measured(tiny_root: Path, tmp_path: Path, task) -> None:  # noqa: ANN001
    from mribench.results import describe_measurement

    r = evaluate("zero-filled", task, data=tiny_root, run_dir=tmp_path / "r", options=EvalOptions(limit=2), runtime=ONE)
    line = describe_measurement(r.config)
    assert f"data: {tiny_root}" in line and "mask: equispaced 4x, centre 8% (test_P and test_Q)" in line
    assert "CI: 95% bootstrap over volumes" in line and "at most 2 volumes per split" in line
    assert "positive = worse out of distribution" in line and "\n" not in line
    # the drop has one sign convention for every metric: positive = worse OOD
    s = r.summary
    for m in ("ssim", "psnr", "nmse"):
        i, o = s.splits["test_P"].metrics[m].mean, s.splits["test_Q"].metrics[m].mean
        loss = (i - o) if r.config.higher_is_better[m] else (o - i)
        assert s.shift[m].drop == pytest.approx(loss)


def test_the_sim_label_and_sensible_decimals(tmp_path: Path) -> None:
    from mribench import fmt
    from mribench.data.root import data_label

    (tmp_path / "manifest.json").write_text(json.dumps({"generator": "MRIBench-Sim", "version": "2.0", "size": "tiny"}))
    assert data_label(tmp_path) == "MRIBench-Sim 2.0 (synthetic, tiny size)"
    assert data_label(tmp_path / "elsewhere") == str(tmp_path / "elsewhere")
    assert fmt.decimals(0.61, 0.55) == 4 and fmt.decimals(21.55, -1.2) == 2 and fmt.decimals(1415.3, 300.0) == 0
    assert fmt.number(1415.3, fmt.decimals(1415.3)) == "1415"


def test_generation_is_announced_outside_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from mribench.cli.progress import progress_bars

    with progress_bars() as progress:  # stderr is not a terminal under pytest
        progress(0, 80, "indexing")
        progress(1, 80, "generating MRIBench-Sim")
        progress(2, 80, "generating MRIBench-Sim")
        progress(80, 80, "generating MRIBench-Sim")
    err = capsys.readouterr().err
    assert err.count("generating the embedded benchmark MRIBench-Sim: 80 volumes") == 1
    assert "about 1 GB of disk" in err and "generated MRIBench-Sim (80 volumes)" in err and "indexing" not in err
    readme = (REPO / "README.md").read_text()
    assert "about 1 GB of disk" in readme


def test_generation_is_announced_above_the_progress_bar(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mribench.cli.progress import progress_bars

    monkeypatch.setenv("MRIBENCH_PROGRESS", "1")  # the bars, as on a terminal
    with progress_bars() as progress:
        progress(1, 80, "generating MRIBench-Sim")
        progress(2, 80, "generating MRIBench-Sim")
    err = capsys.readouterr().err
    assert err.count("generating the embedded benchmark MRIBench-Sim: 80 volumes") == 1 and "about 1 GB" in err


def test_long_failure_lists_say_how_many_are_left_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import pandas as pd

    from mribench.cli.output import first, print_failures

    assert first([f"f{i}" for i in range(13)]) == ", ".join(f"f{i}" for i in range(10)) + " ... and 3 more"
    assert first(["a", "b"]) == "a, b"

    class Run:
        run_dir = tmp_path
        failures = pd.DataFrame(
            {"split": ["test_Q"] * 65, "file": [f"f{i}.h5" for i in range(65)], "slice": 0, "error": "NaN"}
        )

    print_failures(Run())  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "65 slice(s) failed" in err and "f9.h5" in err and "f10.h5" not in err and "... and 55 more" in err


# --------------------------------------------------------------------------- 7. report and leaderboard


def test_report_panels_share_one_error_scale_per_slice(
    tiny_root: Path,
    tmp_path: Path,
    task,
    monkeypatch: pytest.MonkeyPatch,  # noqa: ANN001
) -> None:
    import mribench.analysis
    from mribench.analysis.plots import _short, error_scales
    from mribench.workflows.report import build_report

    model = tmp_path / "scaled.py"
    model.write_text(
        "from mribench.physics import zero_filled\n"
        "def build():\n    return lambda k, m, meta: 0.7 * zero_filled(k, meta.target_size)\n"
    )
    runs = [
        evaluate(m, task, data=tiny_root, run_dir=tmp_path / n, options=EvalOptions(limit=2), runtime=ONE).run_dir
        for m, n in (("zero-filled", "zf"), (f"{model}:build", "scaled"))
    ]
    seen: list[dict[str, object]] = []
    real = mribench.analysis.plot_reconstruction_panel

    def spy(*args: object, **kw: object) -> object:
        seen.append(kw)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(mribench.analysis, "plot_reconstruction_panel", spy, raising=False)
    build_report(runs, tmp_path / "report", panels=2)
    assert len(seen) == 2
    a, b = (np.asarray(s["error_max"]) for s in seen)
    assert a.shape == (2,) and np.array_equal(a, b)  # one scale per slice, shared by both models
    assert seen[0]["titles"] == seen[1]["titles"]
    # titles fit: long file names are shortened in the middle
    long = "file_brain_AXT2_201_6023757_and_a_very_long_suffix.h5 slice 12"
    assert len(_short(long)) == 46 and _short(long).startswith("file_brain") and _short(long).endswith("slice 12")
    t = np.zeros((1, 4, 4))
    r1, r2 = t + 0.1, t + 0.3
    assert error_scales(t, [r1, r2]) == pytest.approx([0.3])


def test_legends_list_only_what_is_present_and_hide_no_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mribench.analysis.plots as plots
    from mribench.analysis import fit_linear_trend
    from mribench.workflows.leaderboard.plot import Point, er_svg

    figures = []
    real = plots.save_figure

    def keep(fig, out):  # noqa: ANN001, ANN202
        figures.append(fig)
        return real(fig, out)

    monkeypatch.setattr(plots, "save_figure", keep)
    x, y = [0.6, 0.7, 0.8], [0.5, 0.55, 0.62]
    _, svg = plots.plot_effective_robustness(
        x, y, tmp_path / "er", models={"a": (0.75, 0.6)}, trend=fit_linear_trend(x, y)
    )
    assert "reference runs (3)" in svg.read_text()
    fig = figures[0]
    fig.canvas.draw()
    legend, ax = fig.legends[0], fig.axes[0]
    renderer = fig.canvas.get_renderer()
    assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))  # below the axes
    # the leaderboard plot's legend names the reference and the fit only when they are drawn
    pts = [Point(0.6, 0.5, "p"), Point(0.7, 0.6, "q")]
    plain = er_svg(pts, None, "ssim")
    assert "orange" not in plain and "linear fit" not in plain
    with_ref = er_svg([*pts, Point(0.5, 0.9, "ref", reference=True)], None, "ssim")
    assert "orange: Q-trained reference" in with_ref and 'class="point reference"' in with_ref


def test_the_leaderboard_never_ranks_its_q_trained_reference(tiny_root: Path, tmp_path: Path, task) -> None:  # noqa: ANN001
    from mribench.workflows.leaderboard import build_entry, build_site, validate_leaderboard, write_entry

    model = tmp_path / "scaled.py"
    model.write_text(
        "from mribench.physics import zero_filled\n"
        "def build():\n    return lambda k, m, meta: 0.6 * zero_filled(k, meta.target_size)\n"
    )
    root = tmp_path / "leaderboard"
    runs = {}
    for name, spec in (("zero-filled", "zero-filled"), ("scaled", f"{model}:build"), ("scaled2", f"{model}:build")):
        runs[name] = evaluate(spec, task, data=tiny_root, run_dir=tmp_path / name, runtime=ONE)
    # the Q-trained reference is the best on test_Q here (zero-filled, marked trained on Q)
    ood = {n: r.summary.splits["test_Q"].metrics["ssim"].mean for n, r in runs.items()}
    assert ood["zero-filled"] > ood["scaled"]
    ref = build_entry(runs["zero-filled"], name="ref-q", display_name="Reference Q", trained_on="Q")
    write_entry(ref, runs["zero-filled"].slices, root)
    for n in ("scaled", "scaled2"):
        write_entry(build_entry(runs[n], name=n, display_name=n.title(), trained_on="P"), runs[n].slices, root)
    assert [str(p) for p in validate_leaderboard(root, tasks={"tiny-anatomy": task})] == []
    build_site(root)
    index = (root / "site" / "index.html").read_text()
    assert "Reference Q" not in index.split('id="tasks-table"')[1]  # never "Best OOD"
    page = (root / "site" / "tasks" / "tiny-anatomy.html").read_text()
    assert page.index("Q-trained reference</h2>") > page.index('id="evaluated-table"')
    ranked = page.split('id="evaluated-table"')[1].split("</table>")[0]
    assert ">Reference Q</a>" not in ranked and ">Scaled</a>" in ranked
    gap = ood["zero-filled"] - ood["scaled"]
    assert f"{gap:.4f}" in ranked and "against the Q-trained reference entry Reference Q" in ranked
    readme = (root / "README.md").read_text()
    assert re.search(r"\| ref \| \[Reference Q\].*not ranked", readme) and "| 1 | [Scale" in readme
    assert "\\* gap against the task's Q-trained reference entry (Reference Q)" in readme


def test_shipped_entries_without_trained_on_still_validate() -> None:
    from mribench.workflows.leaderboard import load_entries

    loaded = load_entries(REPO / "leaderboard")
    assert loaded and all(le.entry.model.trained_on in (None, "P", "Q", "P+Q") for le in loaded)
    schema = json.loads((REPO / "leaderboard/schema/entry-v1.json").read_text())
    assert "trained_on" not in schema["$defs"]["ModelInfo"].get("required", [])


# --------------------------------------------------------------------------- 8. lpips alias, weights status


def test_lpips_is_an_alias_of_lpips_vgg() -> None:
    from mribench.cli.metrics import metrics_app
    from mribench.metrics import get_metric
    from mribench.metrics.weights import _resolve_names
    from mribench.workflows.evaluation import _metric_specs

    assert get_metric("lpips").name == "lpips_vgg"
    assert _resolve_names(["lpips"]) == _resolve_names(["lpips_vgg"])
    try:
        specs, _ = _metric_specs(["lpips", "ssim"], explicit=True)
    except WeightsMissingError:
        specs = None  # weights not fetched: the alias still resolved to lpips_vgg's own error
    if specs is not None:
        assert [s.name for s in specs] == ["lpips_vgg", "ssim"]
    out = CliRunner().invoke(metrics_app, ["explain", "lpips"]).output
    assert "'lpips' is an alias of 'lpips_vgg'" in out
    listed = CliRunner().invoke(metrics_app, ["list"]).output
    assert "lpips is an alias of lpips_vgg" in listed


def test_weights_status_lists_metrics_and_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mribench.cli.metrics import weights_app
    from mribench.metrics.weights import METRIC_WEIGHTS, metrics_enabled

    monkeypatch.delenv("MRIBENCH_CLIP_CHECKPOINT", raising=False)
    monkeypatch.setenv("MRIBENCH_WEIGHTS", str(tmp_path / "w"))  # an empty weights folder: CLIP is missing
    for metric, files in METRIC_WEIGHTS.items():
        for f in files:
            assert metric in metrics_enabled(f)
    res = CliRunner().invoke(weights_app, ["status", "--dest", str(tmp_path / "w")], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "enables" in res.output and "lpips_vgg" in res.output and "dists" in res.output
    assert "CLIP ViT-B-16" in res.output and "missing" in res.output
    assert "CLIP checkpoint (for `mribench similarity`) missing; hint:" in res.output


# --------------------------------------------------------------------------- README


@pytest.fixture(scope="module")
def sim_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mribench.data.synthetic import generate

    root = tmp_path_factory.mktemp("sim") / "tiny"
    generate(root, size="tiny", workers=1)
    return root


def _block(text: str, after: str, lang: str) -> str:
    start = text.index(after)
    m = re.search(rf"```{lang}\n(.*?)```", text[start:], flags=re.S)
    assert m is not None
    return m.group(1)


def test_the_readme_python_snippet_runs_after_the_quick_start(
    sim_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread: object
) -> None:
    """The quick start's ``mribench evaluate`` (on the tiny MRIBench-Sim), then the README's Python
    snippet in the same folder: its first call returns the quick start's stored run at once."""
    from mribench.cli.app import app

    readme = (REPO / "README.md").read_text()
    quick = _block(readme, "## Quick start", "bash").strip().split("&& ")[-1]
    assert quick == "mribench evaluate --model zero-filled --task anatomy"
    snippet = _block(readme, "Python API:", "python")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MRIBENCH_DATA", str(sim_tiny))
    res = CliRunner().invoke(app, quick.split()[1:])
    assert res.exit_code == 0, res.output
    assert "data: MRIBench-Sim" in res.output and "(synthetic, tiny size)" in res.output
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        namespace: dict[str, object] = {}
        exec(compile(snippet, "README.md", "exec"), namespace)  # noqa: S102
    result = namespace["result"]
    assert result.reuse is not None and result.reuse.kind == "stored"  # type: ignore[attr-defined]
    assert any(issubclass(w.category, StoredRun) for w in caught)
    assert (tmp_path / "mribench-runs/zf-limit2/run.json").is_file()
    assert namespace["mine"].config.model.kind == "object"  # type: ignore[attr-defined]
    assert load_run(tmp_path / "mribench-runs/d22-anatomy/zero-filled").summary.shift["ssim"] is not None
