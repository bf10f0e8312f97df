"""The monitoring report: figures shared with the dashboard, and the report files.

`write_report` is imported on first use: plotly and kaleido load only when a report is
written, not when the runner imports `monitoring.report.timeline`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monitoring.report.writer import write_report

__all__ = ["write_report"]


def __getattr__(name: str) -> Any:
    if name == "write_report":
        from monitoring.report.writer import write_report

        return write_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
