"""The monitoring report: figures shared with the dashboard, and the report files."""

from monitoring.report.writer import write_report

__all__ = ["write_report"]
