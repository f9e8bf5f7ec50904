"""Public functions take options objects, not long parameter lists (at most 10 parameters each)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from typing import Any

import pydantic

import mribench

MAX_PARAMETERS = 10

# Justified exceptions, each with its reason. Keep this list short; prefer an options object.
EXCEPTIONS = {
    # typer commands: one parameter per command-line flag (the flags are the CLI's interface); they
    # build the options objects (EvalOptions, Runtime) the library takes
    "mribench.cli.app.evaluate": "typer command",
    "mribench.cli.check.check_command": "typer command",
    "mribench.cli.app.curve": "typer command",
    "mribench.cli.baseline.run_cmd": "typer command",
    "mribench.cli.convert.convert": "typer command",
    "mribench.cli.leaderboard.submit_command": "typer command",
    "mribench.cli.exchange.score_command": "typer command",
    # the descriptive fields of a leaderboard entry (authors, links, training data, references)
    "mribench.workflows.leaderboard.entry.build_entry": "entry metadata",
    # not yet grouped (training, converters, CLIP similarity): candidates for options objects
    "mribench.workflows.training.supervised.train": "training hyper-parameters",
    "mribench.data.convert.driver.convert_dataset": "converter settings",
    "mribench.analysis.similarity.clip_similarity": "similarity settings",
    "mribench.workflows.similarity.task_similarity": "similarity settings",
}


def _modules() -> Iterator[Any]:
    yield mribench
    for info in pkgutil.walk_packages(mribench.__path__, "mribench."):
        if info.name.split(".")[-1] == "__main__":
            continue
        yield importlib.import_module(info.name)


def _is_generated_init(cls: type, name: str) -> bool:
    """Constructors of dataclasses and pydantic models: their fields are an options object's fields."""
    return name == "__init__" and (dataclasses.is_dataclass(cls) or issubclass(cls, pydantic.BaseModel))


def _public_functions() -> Iterator[tuple[str, Any]]:
    seen: set[int] = set()
    for mod in _modules():
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__ or id(obj) in seen:
                continue
            seen.add(id(obj))
            if inspect.isfunction(obj):
                yield f"{mod.__name__}.{name}", obj
            elif inspect.isclass(obj):
                for mname, member in vars(obj).items():
                    fn = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                    if not inspect.isfunction(fn) or (mname.startswith("_") and mname != "__init__"):
                        continue
                    if _is_generated_init(obj, mname):
                        continue
                    yield f"{mod.__name__}.{name}.{mname}", fn


def _n_parameters(fn: Any) -> int:
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    return len(params)


def test_no_public_function_has_more_than_ten_parameters() -> None:
    counts = dict(_public_functions())
    assert "mribench.workflows.evaluation.evaluate" in counts  # the walk sees the package
    too_many = {
        name: _n_parameters(fn)
        for name, fn in counts.items()
        if _n_parameters(fn) > MAX_PARAMETERS and name not in EXCEPTIONS
    }
    assert too_many == {}, f"group parameters into an options object (or justify in EXCEPTIONS): {too_many}"
    stale = sorted(n for n in EXCEPTIONS if n not in counts or _n_parameters(counts[n]) <= MAX_PARAMETERS)
    assert stale == [], f"remove from EXCEPTIONS (gone or short enough now): {stale}"


def test_evaluate_separates_what_changes_the_numbers_from_how_it_runs() -> None:
    from mribench.workflows.evaluation import evaluate

    params = inspect.signature(evaluate).parameters
    assert list(params) == ["model", "task", "data", "run_dir", "mode", "options", "runtime"]
