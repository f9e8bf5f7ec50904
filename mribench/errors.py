"""Error hierarchy and notices. The CLI maps each error class to an exit code and prints its message on one line.

An error's message speaks to a Python caller (its hint names Python arguments, e.g. ``mode="overwrite"``);
where the command line needs other words (``--overwrite``), the error carries them as well
(``cli=``), and the CLI prints :meth:`MribenchError.for_cli`.
"""

from __future__ import annotations

import os


class MribenchError(Exception):
    """Base class of every error mribench raises on purpose (bad input, missing data, ...).

    Args:
        message: the message for a Python caller.
        cli: the message as the command line shows it, when its hint names flags instead of
            Python arguments (default: ``message``).
    """

    exit_code = 2

    def __init__(self, message: str = "", *, cli: str | None = None) -> None:
        super().__init__(message)
        self.cli_message = cli

    def for_cli(self) -> str:
        """The message as the command line prints it."""
        return self.cli_message or str(self)


class DataError(MribenchError):
    """A data file or data root is missing, corrupt or not in the fastMRI format."""


class TaskError(MribenchError):
    """A task definition is invalid or unknown."""


class ModelError(MribenchError):
    """A model cannot be found, loaded or run."""


class MetricError(MribenchError):
    """A metric is unknown or cannot be computed."""


class WeightsMissingError(MetricError):
    """Pretrained weights a metric needs are not available locally."""


class ResultsError(MribenchError):
    """A run directory or result file is missing, corrupt or incompatible."""


class RunConflict(ResultsError):
    """A run directory holds a run whose configuration differs from the one asked for.

    Args:
        run_dir: the run directory.
        differences: one line per differing recorded field (:func:`mribench.api.run.comparable`).
        hint: what a Python caller can do (names Python arguments).
        cli_hint: what a command-line user can do (names flags).
    """

    def __init__(
        self, run_dir: str | os.PathLike[str], differences: list[str], hint: str, cli_hint: str | None = None
    ) -> None:
        self.run_dir, self.differences = str(run_dir), list(differences)
        head = (
            f"expected the run in {self.run_dir} to have this evaluation's configuration, got other values "
            f"(stored != now) of {'; '.join(differences)}"
        )
        super().__init__(f"{head} (hint: {hint})", cli=f"{head} (hint: {cli_hint})" if cli_hint else None)

    def __reduce__(self) -> tuple[object, ...]:  # picklable (cluster jobs return their errors)
        return (_rebuild_conflict, (self.run_dir, self.differences, str(self), self.cli_message))

    def with_hints(self, hint: str, cli_hint: str | None = None) -> RunConflict:
        """The same conflict with the hints of another caller (a workflow that runs evaluations)."""
        return RunConflict(self.run_dir, self.differences, hint, cli_hint)


def _rebuild_conflict(run_dir: str, differences: list[str], message: str, cli: str | None) -> RunConflict:
    e = RunConflict.__new__(RunConflict)
    MribenchError.__init__(e, message, cli=cli)
    e.run_dir, e.differences = run_dir, differences
    return e


class EvaluationFailed(MribenchError):
    """Some slices failed during an evaluation (the others were recorded)."""

    exit_code = 1


class SubmissionError(MribenchError):
    """A leaderboard submission is invalid."""

    exit_code = 1


class StoredRun(UserWarning):
    """Notice: an evaluation used results already stored in its run directory (an identical run
    returned as stored, or continued where it stopped); nothing stored was recomputed."""
