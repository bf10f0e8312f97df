"""Where the monitored chunks sit in the data's history: the typed value the figure builders
mark on every time axis. Free of plotly, so the runner can build one without importing it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Timeline:
    """Where the monitored chunks sit in the data's history.

    Attributes:
        reference_start: First day of the reference predictions (the thresholds' source).
        reference_end: Their last day.
        stream_start: First streamed day; None when nothing was streamed.
    """

    reference_start: date | None = None
    reference_end: date | None = None
    stream_start: date | None = None

    @classmethod
    def of(cls, reference: tuple[date, date] | None, stream_start: date | None) -> Timeline:
        """A timeline from a reference span (first and last day) and the first streamed day."""
        first, last = reference if reference is not None else (None, None)
        return cls(first, last, stream_start)


NO_TIMELINE = Timeline()
