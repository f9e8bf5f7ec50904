"""Every CLI usage error is one line with a hint and exit status 2, for every command (issue 17
problem 6: a typo in a CI workflow printed a ~50-line traceback and exited 1, "regression")."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _mb(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mribench", *args], capture_output=True, text=True)


CASES = [
    (("check",), "--reference"),  # a missing option
    (("check", "--reference", "x", "--max-drop"), "--max-drop"),  # an option without its value
    (("evaluatx",), "evaluate"),  # an unknown command, with the closest one
    (("evaluate", "-m", "zero-filled", "-t", "anatomy", "--limit", "abc"), "--limit"),  # a bad value
    (("leaderboard", "validate", "--bogus"), "--bogus"),  # an unknown option of a sub-app
    (("tasks", "show", "no-such-task"), "no-such-task"),  # a mribench error
    (("check", "-r", "nope.json", "-c", "nope"), "nope"),  # a missing file
    (("check", "-r", "x", "-c", "y", "--max-drop", "ssim"), "METRIC=NUMBER"),  # a value the command rejects
]


@pytest.mark.parametrize(("args", "named"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_usage_errors_are_one_line_with_a_hint_and_exit_2(args: tuple[str, ...], named: str) -> None:
    res = _mb(*args)
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr and "╭" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and named in lines[0]
    assert "hint" in lines[0], lines[0]


def test_debug_shows_the_traceback() -> None:
    res = _mb("--debug", "tasks", "show", "no-such-task")
    assert res.returncode == 2 and "Traceback" in res.stderr
    res = _mb("tasks", "show", "no-such-task", "--debug")  # anywhere on the line
    assert res.returncode == 2 and "Traceback" in res.stderr


def test_help_and_version_still_exit_0() -> None:
    assert _mb("--help").returncode == 0
    assert _mb("check", "--help").returncode == 0
