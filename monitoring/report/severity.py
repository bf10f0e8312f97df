"""What the dashboard and the report put first: each chunk's verdict, and the statistics in
alert ranked by severity with their alerts collapsed into runs of consecutive chunks.

Pure functions of frames shaped like the monitoring tables (`db.monitoring.stored_results` and
`stored_drift`, or `MonitoringResult.metric_rows` / `drift_rows` / `quality_rows` through
`monitoring.report.figures.metric_frame`). The verdicts are recomputed from the stored rows
rather than read from one run's record, so a run that stored only its new chunks still shows
every chunk's verdict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitoring.compute.result import ChunkVerdict

_CHUNK = ["chunk_start", "chunk_end", "chunk_key"]


@dataclass(frozen=True)
class AlertRun:
    """Consecutive chunks in which one statistic alerted.

    Attributes:
        first_chunk: Key of the run's first chunk.
        last_chunk: Key of its last chunk.
        start: Start of the first chunk.
        end: End of the last chunk.
        chunks: Chunks in the run.
    """

    first_chunk: str
    last_chunk: str
    start: pd.Timestamp
    end: pd.Timestamp
    chunks: int

    @property
    def label(self) -> str:
        """``2024-03-05–2024-03-20 (16 chunks)``, or ``2024-03-05 (1 chunk)``."""
        span = self.first_chunk
        if self.last_chunk != self.first_chunk:
            span = f"{self.first_chunk}–{self.last_chunk}"
        return f"{span} ({self.chunks} chunk{'s' if self.chunks != 1 else ''})"


@dataclass(frozen=True)
class RankedStatistic:
    """One statistic (a feature's drift or data-quality rate) summarised over its chunks.

    Attributes:
        kind: E.g. ``continuous``, ``categorical``, ``missing_values``.
        feature: The feature (``all features`` for multivariate drift).
        method: E.g. ``jensen_shannon``.
        chunks: Chunks with a figure.
        alerts: Chunks in alert.
        peak: The largest value relative to its threshold over the chunks (value / upper
            threshold, or lower threshold / value); NaN without a threshold to compare with.
        latest: The latest chunk's value (NaN when missing).
        lower_threshold: Alert below this; None for no bound.
        upper_threshold: Alert above this; None for no bound.
        runs: The alerts as runs of consecutive chunks, oldest first.
    """

    kind: str
    feature: str
    method: str
    chunks: int
    alerts: int
    peak: float
    latest: float
    lower_threshold: float | None
    upper_threshold: float | None
    runs: tuple[AlertRun, ...]

    @property
    def share(self) -> float:
        """Share of the chunks in alert."""
        return self.alerts / self.chunks if self.chunks else 0.0


def alert_runs(series: pd.DataFrame) -> tuple[AlertRun, ...]:
    """The alerts of one statistic's chunk rows as runs of consecutive chunks.

    Args:
        series: One statistic's rows (``chunk_key``, ``chunk_start``, ``chunk_end``,
            ``alert``), in any order: they are taken in chunk order.
    """
    rows = series.sort_values(["chunk_start", "chunk_end"])
    runs: list[AlertRun] = []
    current: list[tuple[str, pd.Timestamp, pd.Timestamp]] = []
    for key, start, end, alert in zip(
        rows["chunk_key"], rows["chunk_start"], rows["chunk_end"], rows["alert"], strict=True
    ):
        if bool(alert):
            current.append((str(key), pd.Timestamp(start), pd.Timestamp(end)))
            continue
        if current:
            runs.append(_run(current))
            current = []
    if current:
        runs.append(_run(current))
    return tuple(runs)


def rank_statistics(
    statistics: pd.DataFrame, kinds: Iterable[str], *, alerting_only: bool = False
) -> tuple[RankedStatistic, ...]:
    """The statistics of ``kinds``, most severe first: by share of chunks in alert, then by
    peak value relative to the threshold, then by feature name.

    Args:
        statistics: Statistic rows (`db.monitoring.stored_drift`'s columns).
        kinds: The kinds to rank, e.g. ``("continuous", "categorical")``.
        alerting_only: Leave out the statistics that never alerted.
    """
    rows = statistics[statistics["kind"].isin(tuple(kinds))]
    ranked = []
    for (kind, feature, method), series in rows.groupby(["kind", "feature", "method"], sort=True):
        series = series.sort_values(["chunk_start", "chunk_end"])
        alerts = int(series["alert"].astype(bool).sum())
        if alerting_only and not alerts:
            continue
        lower = _last_threshold(series["lower_threshold"])
        upper = _last_threshold(series["upper_threshold"])
        values = pd.to_numeric(series["value"]).astype(float)
        ranked.append(
            RankedStatistic(
                kind=str(kind),
                feature=str(feature),
                method=str(method),
                chunks=len(series),
                alerts=alerts,
                peak=_peak(values, lower, upper),
                latest=float(values.iloc[-1]) if len(values) else math.nan,
                lower_threshold=lower,
                upper_threshold=upper,
                runs=alert_runs(series),
            )
        )
    return tuple(sorted(ranked, key=_severity))


def chunk_verdicts(results: pd.DataFrame, statistics: pd.DataFrame) -> pd.DataFrame:
    """Each stored chunk's verdict (`ChunkVerdict.of`, the one place the precedence lives).

    Args:
        results: Metric rows (``metric``, ``alert``, ``realized_alert``,
            ``estimate_realized_alert`` and the chunk columns).
        statistics: Drift and data-quality rows (``kind``, ``feature``, ``alert`` and the
            chunk columns).

    Returns:
        One row per chunk in chunk order: ``chunk_key``, ``chunk_start``, ``chunk_end``,
        ``verdict`` and ``reasons`` (a tuple of ``kind:subject``).
    """
    flagged: dict[tuple[object, ...], dict[str, list[str]]] = {}
    for chunk in _chunks(results, statistics):
        flagged[chunk] = {}

    def add(frame: pd.DataFrame, flag: str, kind: str, subject: str) -> None:
        # Flags are booleans, or None where a figure has none (no realized value yet).
        mask = [value is not None and not pd.isna(value) and bool(value) for value in frame[flag]]
        hits = frame.loc[np.array(mask, dtype=bool)]
        for chunk, name in zip(
            hits[_CHUNK].itertuples(index=False, name=None), hits[subject], strict=True
        ):
            flagged[tuple(chunk)].setdefault(kind, []).append(str(name))

    if len(results):
        add(results, "alert", "estimated_performance", "metric")
        # These flags exist only with a realized value; a stored NULL may read back as NaN.
        realized = results[pd.to_numeric(results["realized"]).notna()]
        add(realized, "realized_alert", "realized_performance", "metric")
        add(realized, "estimate_realized_alert", "estimate_vs_realized", "metric")
    if len(statistics):
        for kind, subset in (
            (
                "univariate_drift",
                statistics[statistics["kind"].isin(("continuous", "categorical"))],
            ),
            ("multivariate_drift", statistics[statistics["kind"] == "multivariate"]),
            ("missing_values", statistics[statistics["kind"] == "missing_values"]),
            ("unseen_values", statistics[statistics["kind"] == "unseen_values"]),
        ):
            add(subset, "alert", kind, "feature")
    records = []
    for (start, end, key), kinds in sorted(flagged.items(), key=lambda item: item[0][:2]):
        verdict = ChunkVerdict.of(
            str(key),
            estimated_performance=tuple(kinds.get("estimated_performance", ())),
            realized_performance=tuple(kinds.get("realized_performance", ())),
            estimate_vs_realized=tuple(kinds.get("estimate_vs_realized", ())),
            univariate_drift=tuple(dict.fromkeys(kinds.get("univariate_drift", ()))),
            multivariate_drift=bool(kinds.get("multivariate_drift")),
            missing_values=tuple(kinds.get("missing_values", ())),
            unseen_values=tuple(kinds.get("unseen_values", ())),
        )
        records.append(
            {
                "chunk_key": str(key),
                "chunk_start": pd.Timestamp(start),
                "chunk_end": pd.Timestamp(end),
                "verdict": verdict.verdict,
                "reasons": verdict.reasons,
            }
        )
    columns = ["chunk_key", "chunk_start", "chunk_end", "verdict", "reasons"]
    return pd.DataFrame.from_records(records, columns=columns)


def _chunks(*frames: pd.DataFrame) -> list[tuple[object, ...]]:
    seen: dict[tuple[object, ...], None] = {}
    for frame in frames:
        if len(frame):
            for chunk in frame[_CHUNK].itertuples(index=False, name=None):
                seen.setdefault(tuple(chunk), None)
    return list(seen)


def _run(chunks: list[tuple[str, pd.Timestamp, pd.Timestamp]]) -> AlertRun:
    return AlertRun(chunks[0][0], chunks[-1][0], chunks[0][1], chunks[-1][2], len(chunks))


def _severity(item: RankedStatistic) -> tuple[float, float, str, str]:
    peak = item.peak if not math.isnan(item.peak) else -math.inf
    return (-item.share, -peak, item.feature, item.method)


def _last_threshold(values: pd.Series) -> float | None:
    known = pd.to_numeric(values).dropna()
    return None if known.empty else float(known.iloc[-1])


def _peak(values: pd.Series, lower: float | None, upper: float | None) -> float:
    ratios = []
    if upper is not None and upper > 0:
        ratios.append(values / upper)
    if lower is not None and lower > 0:
        ratios.append(lower / values.where(values > 0))
    if not ratios:
        return math.nan
    peak = pd.concat(ratios).max()
    return math.nan if pd.isna(peak) else float(peak)
