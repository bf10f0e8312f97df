"""A streamed day's story from the tables' rows: landed, scored, monitored."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from db.stream_progress import DayPredictions, IngestBatch, RawDay, RunVerdicts, ScoringBatch
from scripts.days import (
    describe_monitored,
    describe_scored,
    describe_story,
    first_verdict,
    follow_days,
    landing_times,
    scoring_time,
    summarize_reasons,
    tell,
)

T0 = datetime(2026, 1, 1, 12, 0, 0)
D0 = date(2024, 4, 1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def raw(*sizes: int, first_id: int = 101) -> list[RawDay]:
    days, next_id = [], first_id
    for i, rows in enumerate(sizes):
        days.append(RawDay(D0 + timedelta(days=i), rows, next_id, next_id + rows - 1))
        next_id += rows
    return days


def test_a_day_lands_with_the_batch_holding_its_last_row() -> None:
    # Days of 3, 3 and 2 rows in batches of 4: day 0 ends in batch 1, day 1 and 2 in batch 2.
    batches = [IngestBatch(1, 4, at(1)), IngestBatch(2, 4, at(2))]

    assert landing_times(raw(3, 3, 2), batches) == [at(1), at(2), at(2)]


def test_a_day_whose_last_row_has_no_committed_batch_has_not_landed() -> None:
    assert landing_times(raw(3, 3), [IngestBatch(1, 4, at(1))]) == [at(1), None]
    assert landing_times(raw(3), []) == [None]


def test_a_day_is_scored_by_the_first_micro_batch_that_read_its_last_row() -> None:
    batches = [
        ScoringBatch("q", 1, 101, 103, 3, at(5)),
        ScoringBatch("q", 2, 104, 110, 7, at(9)),
        ScoringBatch("q2", 1, 100, 110, 7, at(7)),
    ]

    assert scoring_time(103, batches) == at(5)
    assert scoring_time(105, batches) == at(7)
    assert scoring_time(111, batches) is None


def run(
    run_id: int, watermark: int, *chunks: tuple[str, str], status: str = "succeeded"
) -> RunVerdicts:
    verdicts = [
        {"chunk": c, "verdict": v, "reasons": [] if v == "healthy" else ["x:y"]} for c, v in chunks
    ]
    return RunVerdicts(run_id, "v1", status, at(run_id * 10), watermark, verdicts)


def test_the_verdict_is_the_first_runs_that_had_read_all_the_days_predictions() -> None:
    runs = [
        run(1, 50, ("2024-04-01", "data_drift")),  # saw part of the day's predictions
        run(2, 80, ("2024-04-01", "healthy"), status="failed"),
        run(3, 80, ("2024-04-02", "healthy")),  # does not judge that chunk
        run(4, 90, ("2024-04-01", "healthy")),
        run(5, 99, ("2024-04-01", "data_drift")),
    ]

    verdict = first_verdict(D0, 60, runs)

    assert verdict is not None
    assert (verdict.run_id, verdict.verdict) == (4, "healthy")
    assert first_verdict(D0, 100, runs) is None


def test_follow_days_takes_each_day_as_far_as_it_has_come() -> None:
    days = raw(3, 3, 2)  # ids 101-103, 104-106, 107-108
    ingested = [IngestBatch(1, 4, at(1)), IngestBatch(2, 4, at(2))]
    scoring = [ScoringBatch("q", 1, 101, 104, 4, at(6)), ScoringBatch("q", 2, 105, 108, 4, at(8))]
    predictions = [
        DayPredictions(D0, 3, 503),
        DayPredictions(D0 + timedelta(days=1), 2, 506),
        DayPredictions(D0 + timedelta(days=2), 2, 508),
    ]
    runs = [run(1, 505, ("2024-04-01", "healthy"), ("2024-04-02", "data_drift"))]

    running = follow_days(days, ingested, scoring, predictions, runs, stream_ended=False)
    ended = follow_days(days, ingested, scoring, predictions, runs, stream_ended=True)

    assert [(s.step, s.complete, s.scored) for s in running] == [
        (0, True, True),
        (1, True, True),
        (2, False, False),  # the stream may still add rows to its last day
    ]
    assert running[0].latency == 5.0
    assert running[1].latency == 6.0
    assert running[0].verdict is not None and running[0].verdict.verdict == "healthy"
    assert running[1].verdict is None  # run 1 had not read the day's last predictions
    assert running[2].predictions == 0
    assert ended[2].scored and ended[2].predictions == 2


def test_the_story_counts_clean_and_drifted_days_and_names_the_alerts() -> None:
    days = raw(3, 3, 3, 3)
    ingested = [IngestBatch(1, 12, at(1))]
    scoring = [ScoringBatch("q", 1, 101, 112, 12, at(4))]
    predictions = [DayPredictions(d.day, 3, 500 + i) for i, d in enumerate(days)]
    runs = [
        run(
            1,
            999,
            ("2024-04-01", "healthy"),
            ("2024-04-02", "healthy"),
            ("2024-04-03", "healthy"),
            ("2024-04-04", "data_drift"),
        )
    ]
    statuses = follow_days(days, ingested, scoring, predictions, runs, stream_ended=True)

    story = tell(statuses, drift_from=2)
    lines = describe_story(story, drift_from=2)

    assert dict(story.clean) == {"healthy": 2}
    assert dict(story.drifted) == {"healthy": 1, "data_drift": 1}
    assert [(offset, s.day) for offset, s in story.alerts] == [(1, date(2024, 4, 4))]
    assert lines[1] == "  no alert on a clean day"
    assert lines[-1] == "  2024-04-04 (injection day +1): data_drift: x: y"
    assert "drift +1" in describe_monitored(statuses[3], 2)
    assert describe_scored(statuses[0]).endswith("3 predictions,   3.0 s after its last row")


def test_a_stream_that_ends_well_short_of_a_day_leaves_a_partial_day_out_of_the_story() -> None:
    days = raw(10, 10, 4)
    scoring = [ScoringBatch("q", 1, 101, 124, 24, at(4))]
    predictions = [DayPredictions(d.day, d.rows, 500 + i) for i, d in enumerate(days)]
    runs = [run(1, 999, *((d.day.isoformat(), "data_drift") for d in days))]

    running = follow_days(
        days, [IngestBatch(1, 24, at(1))], scoring, predictions, runs, stream_ended=False
    )
    ended = follow_days(
        days, [IngestBatch(1, 24, at(1))], scoring, predictions, runs, stream_ended=True
    )
    story = tell(ended, drift_from=1)

    assert [s.partial for s in running] == [False, False, False]
    assert [s.partial for s in ended] == [False, False, True]
    assert dict(story.drifted) == {"data_drift": 1}
    assert story.partial == (date(2024, 4, 3),)
    assert "partial" in describe_scored(ended[2])


def test_reasons_are_grouped_by_kind_with_a_few_subjects_named() -> None:
    reasons = [
        "estimated_performance:roc_auc",
        "univariate_drift:a",
        "univariate_drift:b",
        "univariate_drift:c",
        "multivariate_drift",
    ]

    assert summarize_reasons(reasons) == (
        "estimated_performance: roc_auc; univariate_drift: 3 (a, b, ...); multivariate_drift"
    )
