"""The Spark stage's errors: each is a user-facing condition with a clear message."""

from __future__ import annotations


class SparkJobError(Exception):
    """Base of the errors a Spark job reports to its caller instead of a stack trace."""


class EmptyRangeError(SparkJobError, LookupError):
    """The requested date range holds no rows; nothing was written."""


class SplitError(SparkJobError):
    """The data cannot be split into training and test rows as configured."""


class NoModelError(SparkJobError, LookupError):
    """No model has been trained yet (or its folder is gone)."""


class ScoreRangeError(SparkJobError, ValueError):
    """The dates asked to be scored are invalid for the current model."""


class UnsupportedModelError(SparkJobError, ValueError):
    """The streaming query cannot score with this model's pipeline on the driver."""
