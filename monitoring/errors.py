"""The monitoring domain's exceptions: what the edges turn into an exit status or a 4xx.

Every message is written for the person who supplied the data: it names the file, column or
key at fault and never includes internal state, so an edge may show it as is.
"""

from __future__ import annotations


class MonitoringError(Exception):
    """Monitoring could not run on the data given; the message is safe to show to a user."""


class InputError(MonitoringError):
    """The inputs are malformed: a missing file or column, a bad mapping, unusable values."""


class InsufficientDataError(MonitoringError):
    """The inputs are well formed but cannot support monitoring.

    No predictions to analyse, no reference, a reference with a single class, or too few rows to
    form the chunks that the reference thresholds are computed from.
    """


class ModelNotFoundError(MonitoringError):
    """No model has been trained yet, or the requested model version is not registered."""


class RunInProgressError(MonitoringError):
    """Another monitoring run of the same database holds the run lock."""
