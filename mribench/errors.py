"""Error hierarchy. The CLI maps each class to an exit code and prints its message on one line."""

from __future__ import annotations


class MribenchError(Exception):
    """Base class of every error mribench raises on purpose (bad input, missing data, ...)."""

    exit_code = 2


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


class EvaluationFailed(MribenchError):
    """Some slices failed during an evaluation (the others were recorded)."""

    exit_code = 1


class SubmissionError(MribenchError):
    """A leaderboard submission is invalid."""

    exit_code = 1
