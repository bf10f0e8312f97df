"""Every picture of a monitoring run, built once for whoever shows it: the report files and the
dashboard page draw the same `Pictures`.

Pure: frames shaped like the monitoring tables and a `Timeline` in, typed values out.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from monitoring.compute.result import VERDICTS
from monitoring.report.figures import (
    DRIFT_KINDS,
    QUALITY_KINDS,
    drift_runs_figure,
    feature_drift_figure,
    multivariate_figure,
    performance_figure,
    quality_figure,
    verdict_figure,
)
from monitoring.report.severity import RankedStatistic, chunk_verdicts, rank_statistics
from monitoring.report.timeline import NO_TIMELINE, Timeline

VERDICT = "verdict"
PERFORMANCE = "performance"
UNIVARIATE_DRIFT = "univariate_drift"
DRIFTING_FEATURES = "drifting_features"
MULTIVARIATE_DRIFT = "multivariate_drift"
DATA_QUALITY = "data_quality"
# The report draws the drift of this many of the most severe features panel by panel.
REPORT_FEATURE_PANELS = 12


@dataclass(frozen=True)
class LatestVerdict:
    """The latest chunk's verdict, what a page shows first.

    Attributes:
        chunk: Its key.
        verdict: ``healthy``, ``data_quality``, ``performance_degraded`` or ``data_drift``.
        reasons: Its alerts as ``kind:subject``, most urgent first.
        counts: Chunks per verdict over the whole run.
    """

    chunk: str
    verdict: str
    reasons: tuple[str, ...]
    counts: dict[str, int]


@dataclass(frozen=True)
class Pictures:
    """What a run's pages show: the verdicts, the rankings and the figures.

    Attributes:
        verdicts: `monitoring.report.severity.chunk_verdicts`.
        latest: The latest chunk's verdict; None without chunks.
        drift: Every feature's drift statistic, most severe first.
        quality: The data-quality statistics in alert, most severe first.
        figures: By name (`VERDICT`, `PERFORMANCE`, ...), in page order; `DATA_QUALITY` only
            when a feature has an issue, `DRIFTING_FEATURES` only when one drifted and asked
            for.
    """

    verdicts: pd.DataFrame
    latest: LatestVerdict | None
    drift: tuple[RankedStatistic, ...]
    quality: tuple[RankedStatistic, ...]
    figures: dict[str, go.Figure]

    @property
    def drifting(self) -> tuple[RankedStatistic, ...]:
        """The drift statistics with an alert, most severe first."""
        return tuple(item for item in self.drift if item.alerts)


def build_pictures(
    results: pd.DataFrame,
    drift: pd.DataFrame,
    timeline: Timeline = NO_TIMELINE,
    *,
    width: int | None = None,
    feature_panels: int = 0,
) -> Pictures:
    """The verdicts, the rankings and the figures of one model version's stored figures.

    Args:
        results: Metric rows (`db.monitoring.stored_results` or `metric_frame`).
        drift: Drift and data-quality rows (`db.monitoring.stored_drift` or `metric_frame`).
        timeline: The reference period and the stream's start, marked on every time axis.
        width: Pixels; None to fill the page.
        feature_panels: Draw the drift of this many of the most severe drifting features,
            one panel each (the report); 0 for none (the dashboard drills down instead).
    """
    verdicts = chunk_verdicts(results, drift)
    ranked_drift = rank_statistics(drift, DRIFT_KINDS)
    quality = rank_statistics(drift, QUALITY_KINDS, alerting_only=True)
    figures = {
        VERDICT: verdict_figure(verdicts, timeline, width),
        PERFORMANCE: performance_figure(results, timeline, width),
        UNIVARIATE_DRIFT: drift_runs_figure(ranked_drift, timeline, width),
    }
    drifting = [item for item in ranked_drift if item.alerts][:feature_panels]
    if drifting:
        figures[DRIFTING_FEATURES] = feature_drift_figure(drift, drifting, timeline, width)
    figures[MULTIVARIATE_DRIFT] = multivariate_figure(drift, timeline, width)
    quality_picture = quality_figure(drift, quality, timeline, width)
    if quality_picture is not None:
        figures[DATA_QUALITY] = quality_picture
    return Pictures(verdicts, _latest(verdicts), ranked_drift, quality, figures)


def _latest(verdicts: pd.DataFrame) -> LatestVerdict | None:
    if verdicts.empty:
        return None
    last = verdicts.iloc[-1]
    counts: dict[str, int] = {str(v): int((verdicts["verdict"] == v).sum()) for v in VERDICTS}
    return LatestVerdict(
        str(last["chunk_key"]), str(last["verdict"]), tuple(last["reasons"]), counts
    )
