"""Each streamed day's story: landed, scored, monitored. Pure functions of what db/ read.

A day lands when the ingest batch holding its last row commits, is scored when the streaming
query's micro-batch that read that row commits, and is monitored by the first successful
monitoring run that had seen all of its predictions and judged its chunk.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from db.stream_progress import DayPredictions, IngestBatch, RawDay, RunVerdicts, ScoringBatch

# A stream's last day with less than this share of the day before's rows is partial.
PARTIAL_SHARE = 0.9


@dataclass(frozen=True)
class Verdict:
    """A monitoring run's verdict on one daily chunk."""

    run_id: int
    verdict: str
    reasons: tuple[str, ...]
    at: datetime


@dataclass(frozen=True)
class DayStatus:
    """How far one streamed day has come.

    Attributes:
        step: The day's index in its stream (0 = the stream's first day).
        complete: No more rows will come for it: a later day has begun, or the stream ended.
        partial: The stream ended on it with under :data:`PARTIAL_SHARE` of the previous
            day's rows: a slice of the subscribers, judged as such by the monitoring.
        landed_at: When the ingest batch holding its last row committed.
        scored_at: When the micro-batch that read its last row committed.
        predictions: Its analysis predictions by the current model.
        verdict: The first verdict on its chunk by a run that had seen all its predictions.
    """

    day: date
    step: int
    rows: int
    complete: bool
    landed_at: datetime | None = None
    scored_at: datetime | None = None
    predictions: int = 0
    verdict: Verdict | None = None
    # The stream ended on it well short of the day before: a slice of the population.
    partial: bool = False

    @property
    def scored(self) -> bool:
        return self.complete and self.scored_at is not None

    @property
    def latency(self) -> float | None:
        """Seconds from the day's last raw-row commit to its predictions' commit."""
        if self.landed_at is None or self.scored_at is None:
            return None
        return (self.scored_at - self.landed_at).total_seconds()


def landing_times(days: Sequence[RawDay], batches: Sequence[IngestBatch]) -> list[datetime | None]:
    """When each day's last row committed: the commit of the ingest batch that held it.

    A stream writes its days in order, each batch the next rows, so the day whose rows end at
    position n (counting from the stream's first row) landed with the batch covering n.
    """
    times: list[datetime | None] = []
    position = 0
    batch_end = 0
    remaining = iter(batches)
    batch: IngestBatch | None = None
    for day in days:
        position += day.rows
        while batch_end < position:
            batch = next(remaining, None)
            if batch is None:
                break
            batch_end += batch.rows
        times.append(batch.committed_at if batch is not None and batch_end >= position else None)
    return times


def scoring_time(last_id: int, batches: Iterable[ScoringBatch]) -> datetime | None:
    """When the first micro-batch that read raw row ``last_id`` committed, if one has."""
    times = [
        b.committed_at
        for b in batches
        if b.first_id is not None and b.last_id is not None and b.first_id <= last_id <= b.last_id
    ]
    return min(times, default=None)


def first_verdict(day: date, max_prediction_id: int, runs: Iterable[RunVerdicts]) -> Verdict | None:
    """The verdict on ``day``'s chunk of the first successful run that had read its
    predictions up to ``max_prediction_id``."""
    key = day.isoformat()
    for run in runs:
        if run.status != "succeeded" or run.watermark_id < max_prediction_id:
            continue
        for chunk in run.verdicts:
            if chunk.get("chunk") == key:
                reasons = tuple(str(r) for r in chunk.get("reasons") or ())
                return Verdict(run.run_id, str(chunk.get("verdict")), reasons, run.finished_at)
    return None


def follow_days(
    raw: Sequence[RawDay],
    ingested: Sequence[IngestBatch],
    scoring: Sequence[ScoringBatch],
    predictions: Sequence[DayPredictions],
    runs: Sequence[RunVerdicts],
    *,
    stream_ended: bool,
) -> list[DayStatus]:
    """Every day of one stream with how far it has come.

    Args:
        raw: The stream's raw rows per day, from its first day on.
        ingested: The stream's committed ingest batches, in order.
        scoring: The streaming query's micro-batches over those rows.
        predictions: The current model's analysis predictions per day.
        runs: Monitoring runs, oldest first.
        stream_ended: The stream wrote its last batch: its last day is complete too.
    """
    by_day = {p.day: p for p in predictions}
    statuses = []
    for step, (day, landed) in enumerate(zip(raw, landing_times(raw, ingested), strict=True)):
        complete = step < len(raw) - 1 or stream_ended
        scored_at = scoring_time(day.last_id, scoring) if complete else None
        scored = by_day.get(day.day)
        verdict = None
        if scored_at is not None and scored is not None:
            verdict = first_verdict(day.day, scored.max_id, runs)
        partial = (
            stream_ended
            and step == len(raw) - 1
            and step > 0
            and day.rows < PARTIAL_SHARE * raw[step - 1].rows
        )
        statuses.append(
            DayStatus(
                day.day,
                step,
                day.rows,
                complete,
                landed,
                scored_at,
                scored.rows if scored is not None and scored_at is not None else 0,
                verdict,
                partial,
            )
        )
    return statuses


# --- what the demo prints -----------------------------------------------------------------


def describe_scored(status: DayStatus, drift_from: int | None = None) -> str:
    """One line for a day whose predictions have committed."""
    latency = "" if status.latency is None else f", {status.latency:5.1f} s after its last row"
    partial = " (partial: the stream ended on it)" if status.partial else ""
    return (
        f"  {status.day}  {_tag(status.step, drift_from)}  {status.rows:6,} rows -> "
        f"{status.predictions:6,} predictions{latency}{partial}"
    )


def describe_monitored(status: DayStatus, drift_from: int | None = None) -> str:
    """One line for a day whose chunk has a stored verdict."""
    assert status.verdict is not None
    verdict = status.verdict
    reasons = f" ({summarize_reasons(verdict.reasons)})" if verdict.reasons else ""
    return (
        f"  {status.day}  {_tag(status.step, drift_from)}  monitored by run "
        f"{verdict.run_id}: {verdict.verdict}{reasons}"
    )


def summarize_reasons(reasons: Sequence[str], named: int = 2) -> str:
    """Reasons (``kind:subject``) grouped by kind, in their order, with at most ``named``
    subjects each: ``univariate_drift: 16 features (M_Data_Count_trend, M_Data_Sum_trend,
    ...), multivariate_drift``."""
    kinds: dict[str, list[str]] = {}
    for reason in reasons:
        kind, _, subject = reason.partition(":")
        kinds.setdefault(kind, [])
        if subject:
            kinds[kind].append(subject)
    parts = []
    for kind, subjects in kinds.items():
        if not subjects:
            parts.append(kind)
        elif len(subjects) == 1:
            parts.append(f"{kind}: {subjects[0]}")
        else:
            shown = ", ".join(subjects[:named]) + (", ..." if len(subjects) > named else "")
            parts.append(f"{kind}: {len(subjects)} ({shown})")
    return "; ".join(parts)


def _tag(step: int, drift_from: int | None) -> str:
    if drift_from is None:
        return f"day {step:2d}"
    offset = step - drift_from
    return f"day {step:2d} ({'clean' if offset < 0 else f'drift +{offset}'})"


@dataclass(frozen=True)
class Story:
    """What the monitoring said about the clean days and the drifted ones."""

    clean: Counter[str] = field(default_factory=Counter)
    drifted: Counter[str] = field(default_factory=Counter)
    # The drifted days that raised an alert: (offset from the injection day, day, verdict).
    alerts: tuple[tuple[int, DayStatus], ...] = ()
    unmonitored: int = 0
    partial: tuple[date, ...] = ()


def tell(days: Sequence[DayStatus], drift_from: int | None) -> Story:
    """Verdict counts of the monitored days before and from the drift injection."""
    clean: Counter[str] = Counter()
    drifted: Counter[str] = Counter()
    alerts = []
    unmonitored = 0
    partial = []
    for status in days:
        if status.partial:
            partial.append(status.day)
            continue
        if status.verdict is None:
            unmonitored += status.complete
            continue
        if drift_from is None or status.step < drift_from:
            clean[status.verdict.verdict] += 1
        else:
            drifted[status.verdict.verdict] += 1
            if status.verdict.verdict != "healthy":
                alerts.append((status.step - drift_from, status))
    return Story(clean, drifted, tuple(alerts), unmonitored, tuple(partial))


def describe_counts(counts: Counter[str]) -> str:
    """``7 healthy, 1 data_drift``, most frequent first; ``none`` when empty."""
    return ", ".join(f"{n} {verdict}" for verdict, n in counts.most_common()) or "none"


def describe_story(story: Story, drift_from: int | None) -> list[str]:
    """The demo's closing lines on what the monitoring caught."""
    lines = [f"Clean days (before the injection): {describe_counts(story.clean)}"]
    alerting = sum(n for verdict, n in story.clean.items() if verdict != "healthy")
    if story.clean:
        lines.append(
            "  no alert on a clean day" if not alerting else f"  {alerting} clean day(s) alerted"
        )
    if drift_from is not None:
        lines.append(f"Drifted days (from day {drift_from}): {describe_counts(story.drifted)}")
        if story.drifted and not story.alerts:
            lines.append("  the drift raised no alert")
    for offset, status in story.alerts:
        assert status.verdict is not None
        lines.append(
            f"  {status.day} (injection day +{offset}): {status.verdict.verdict}: "
            + summarize_reasons(status.verdict.reasons)
        )
    for day in story.partial:
        lines.append(f"Left out: {day}, partial (the stream ended on it)")
    if story.unmonitored:
        lines.append(
            f"{story.unmonitored} complete day(s) not monitored yet: the poller was still at it"
        )
    return lines
