"""A monitoring run in a few lines for people: what ``python -m monitoring run`` prints and what
``make demo`` shows after calling ``GET /run-monitoring``.

It reads the run's JSON document (compact or full, `monitoring.pipeline.runner.CompletedRun`
or `monitoring.compute.result.MonitoringResult`), the one form both the CLI and a client of
the service hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Drifted features (and a verdict's reasons) listed by name; the rest are counted.
_LISTED_FEATURES = 5


def summary_table(report: Mapping[str, Any]) -> str:
    """The run's summary: its size, the latest verdict, one row per metric (chunks, chunks
    with a realized value, mean |estimate - realized|, latest estimate with its bounds, and
    its estimated, realized and estimate-vs-realized alerts together), the alert counts per
    kind, the chunks per verdict and the drifted features."""
    summary = report["summary"]
    chunking = ", ".join(f"{key} {value}" for key, value in summary["chunking"].items())
    head = "monitoring"
    if "model_version" in report:
        head = f"model {report['model_version']}, run {report['run_id']}"
    lines = [
        f"{head}: {summary['analysis_rows']:,} predictions in {summary['chunks']} chunks "
        f"({chunking}), {summary['labelled_rows']:,} with labels so far; "
        f"performance alerts: {_direction(summary.get('alert_direction', 'lower'))}",
    ]
    verdict = report.get("verdict")
    if verdict is not None:
        reasons = _listed(verdict["reasons"]) or "no alert"
        lines.append(f"latest chunk {verdict['chunk']}: {verdict['verdict']} ({reasons})")
    lines.append(
        f"{'metric':<9} {'chunks':>6} {'realized':>8} {'mean |est-real|':>15} "
        f"{'latest estimate [bounds]':>26} {'alerts':>6}"
    )
    for name, series in report["metrics"].items():
        lines.append(_metric_line(name, series, summary["chunks"]))
    lines.append("alerts: " + ", ".join(f"{k} {v}" for k, v in report["alerts"].items()))
    verdicts = report.get("verdicts")
    if verdicts is not None:
        lines.append("chunks: " + ", ".join(f"{k} {v}" for k, v in verdicts.items()))
    lines.extend(_drifted(report))
    return "\n".join(lines)


def _direction(direction: str) -> str:
    return "on a drop only" if direction == "lower" else "on a drop or a rise"


def _metric_line(name: str, series: Mapping[str, Any], chunk_count: int) -> str:
    if "chunks" in series:  # full detail: every chunk's figures
        chunks = series["chunks"]
        known = [c for c in chunks if c["realized"] is not None and c["estimate"] is not None]
        realized = len(known)
        gap: float | None = (
            sum(abs(c["estimate"] - c["realized"]) for c in known) / len(known) if known else None
        )
        alerts = sum(
            bool(c["alert"]) + bool(c["realized_alert"]) + bool(c["estimate_realized_alert"])
            for c in chunks
        )
    else:
        latest = series["latest"] or {}
        realized = latest.get("realized_chunks", 0)
        gap = latest.get("mean_abs_error")
        alerts = series["alerts"] + series["realized_alerts"] + series["estimate_realized_alerts"]
    latest = series["latest"]
    bounds = "-"
    if latest is not None and latest["estimate"] is not None:
        low, high = latest["lower_bound"], latest["upper_bound"]
        bounds = f"{latest['estimate']:.3f} [{low:.3f}, {high:.3f}]"
    gap_text = "-" if gap is None else f"{gap:.3f}"
    return f"{name:<9} {chunk_count:>6} {realized:>8} {gap_text:>15} {bounds:>26} {alerts:>6}"


def _drifted(report: Mapping[str, Any]) -> list[str]:
    univariate = report["drift"]["univariate"]
    drifted = sorted(
        ((name, series["alerts"]) for name, series in univariate.items() if series["alerts"]),
        key=lambda item: (-item[1], item[0]),
    )
    if not drifted:
        return []
    return ["drifted features (chunks in alert): " + _listed([f"{n} ({c})" for n, c in drifted])]


def _listed(items: list[str]) -> str:
    more = len(items) - _LISTED_FEATURES
    return ", ".join(items[:_LISTED_FEATURES]) + (f" and {more} more" if more > 0 else "")
