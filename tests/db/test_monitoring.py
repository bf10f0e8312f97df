"""Monitoring's database layer: prediction frames with late labels, idempotent storage of a
run's figures, the watermark and the run lock, on small hand-checkable rows."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from config.settings import Settings
from db.connection import Connection, connection, transaction
from db.errors import DatabaseError
from db.models import insert_predictions
from db.monitoring import (
    LABEL,
    PREDICTION_FRAME_COLUMNS,
    RunRecord,
    WrittenDay,
    acquire_run_lock,
    advance_watermark,
    days_written,
    get_label_cutoff,
    get_watermark,
    label_cutoff,
    latest_run,
    load_analysis,
    load_analysis_at,
    load_reference,
    max_prediction_id,
    probe,
    record_failed_run,
    release_run_lock,
    run_lock_name,
    store_chunks,
    store_run,
    stored_drift,
    stored_results,
)
from monitoring.compute.result import (
    ChunkSummary,
    MetricSeries,
    MonitoringResult,
    MonitoringRun,
    StatisticSeries,
)
from monitoring.compute.spec import Chunking

VERSION = "m1"
DAY = date(2024, 3, 1)
NOW = datetime(2024, 4, 1, 12, 0, 0)
CONTINUOUS = ["calls", "minutes"]
CATEGORICAL = ["profile"]
FEATURES = [*CONTINUOUS, *CATEGORICAL]


@pytest.fixture
def conn(db_settings: Settings) -> Iterator[Connection]:
    with connection(db_settings) as opened:
        yield opened


def _execute(conn: Connection, sql: str, rows: list[tuple[Any, ...]]) -> None:
    with transaction(conn) as cursor:
        cursor.executemany(sql, rows)


def _model(conn: Connection, version: str = VERSION) -> None:
    _execute(
        conn,
        "INSERT INTO model_registry (version, split_kind, train_start, train_end, test_start, "
        "test_end, params, metrics, features, path, is_current) "
        "VALUES (%s, 'time', '2024-01-01', '2024-01-31', '2024-02-15', '2024-02-29', '{}', "
        "'{}', '[]', '/m', 1)",
        [(version,)],
    )


def _predictions(
    conn: Connection, period: str, rows: list[tuple[str, date, Any, dict[str, Any]]]
) -> None:
    """(subscriber, date, label, features) rows of `VERSION` in ``period``."""
    insert_predictions(
        conn,
        CONTINUOUS,
        CATEGORICAL,
        [
            (VERSION, s, d, period, 0.75, 0.25, 0, label, *(f.get(n) for n in FEATURES))
            for s, d, label, f in rows
        ],
    )


def _processed(conn: Connection, rows: list[tuple[date, str, int | None]]) -> None:
    _execute(
        conn,
        "INSERT INTO Processed_Data (`Date`, `User`, M_Out_Call_Count, M_Out_Call_Time, "
        "M_In_Call_Count, M_In_Call_Time, M_Out_SMS_Count, M_In_SMS_Count, M_Data_Count, "
        "M_Data_Sum, Record_Count, Churn_Within_Horizon) "
        "VALUES (%s, %s, 0, 0, 0, 0, 0, 0, 0, 0, 1, %s)",
        rows,
    )


def _features(calls: float, minutes: float, profile: str) -> dict[str, Any]:
    return {"calls": calls, "minutes": minutes, "profile": profile}


def _count(conn: Connection, table: str) -> int:
    with transaction(conn) as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        return int(cursor.fetchone()[0])


# --- reading predictions ---------------------------------------------------------------------


def test_reference_frame_has_labels_typed_columns_and_features(conn: Connection) -> None:
    _model(conn)
    _predictions(
        conn,
        "reference",
        [
            ("b", DAY, 1, _features(2, 3.5, "data")),
            ("a", DAY, 0, _features(1, 0.5, "voice")),
            ("a", DAY - timedelta(days=1), 0, {"calls": 4, "profile": "voice"}),
        ],
    )

    frame = load_reference(conn, VERSION, CONTINUOUS, CATEGORICAL)

    assert list(frame.columns) == [*PREDICTION_FRAME_COLUMNS, *CONTINUOUS, *CATEGORICAL]
    assert list(frame["subscriber"]) == ["a", "a", "b"]
    assert list(frame["as_of_date"]) == [
        pd.Timestamp(DAY - timedelta(days=1)),
        pd.Timestamp(DAY),
        pd.Timestamp(DAY),
    ]
    assert frame["as_of_date"].dtype == "datetime64[ns]"
    assert list(frame[LABEL]) == [0.0, 0.0, 1.0]
    assert list(frame["calls"]) == [4.0, 1.0, 2.0]
    assert math.isnan(frame["minutes"][0])  # a missing feature is NaN
    assert list(frame["profile"]) == ["voice", "voice", "data"]
    assert frame["calls"].dtype == np.float64
    assert frame["probability_1"].tolist() == [0.25] * 3


def test_analysis_labels_arrive_once_processed_data_is_past_the_label_delay(
    conn: Connection,
) -> None:
    _model(conn)
    days = [DAY + timedelta(days=offset) for offset in range(3)]
    _predictions(
        conn,
        "analysis",
        [(s, d, None, _features(1, 1, "data")) for d in days for s in ("a", "b")],
    )
    # Labels for every prediction but b on the first day; Processed_Data ends 14 days after
    # the second day, so the third day's labels are not known yet.
    _processed(
        conn,
        [(d, s, int(s == "a")) for d in days for s in ("a", "b") if (d, s) != (days[0], "b")],
    )
    _processed(conn, [(days[1] + timedelta(days=14), "z", 0)])

    frame = load_analysis(conn, VERSION, CONTINUOUS, CATEGORICAL, label_delay_days=14)

    labels = {(row.subscriber, row.as_of_date.date()): row.label for row in frame.itertuples()}
    assert labels[("a", days[0])] == 1.0
    assert math.isnan(labels[("b", days[0])])  # no Processed_Data row
    assert labels[("a", days[1])] == 1.0
    assert labels[("b", days[1])] == 0.0
    assert math.isnan(labels[("a", days[2])])  # too recent
    assert math.isnan(labels[("b", days[2])])
    # A shorter delay makes the third day's labels known.
    shorter = load_analysis(conn, VERSION, CONTINUOUS, CATEGORICAL, label_delay_days=13)
    assert shorter[LABEL].notna().sum() == 5


def test_analysis_labels_are_unknown_without_processed_data(conn: Connection) -> None:
    _model(conn)
    _predictions(conn, "analysis", [("a", DAY, None, _features(1, 1, "data"))])

    frame = load_analysis(conn, VERSION, CONTINUOUS, CATEGORICAL, label_delay_days=0)

    assert frame[LABEL].isna().all()
    assert label_cutoff(None, 14) is None
    assert label_cutoff(DAY, 14) == DAY - timedelta(days=14)


def test_frames_of_a_version_without_rows_are_empty_but_typed(conn: Connection) -> None:
    _model(conn)

    frame = load_reference(conn, VERSION, CONTINUOUS, CATEGORICAL)

    assert frame.empty
    assert list(frame.columns) == [*PREDICTION_FRAME_COLUMNS, *CONTINUOUS, *CATEGORICAL]


def _result(starts: list[datetime], estimate: float, feature: str = "calls") -> MonitoringResult:
    """Daily chunks from ``starts``: two metrics at ``estimate``, the drift of ``feature`` and
    of all features: 2 metric rows and 2 drift rows per chunk."""
    count = len(starts)
    chunks = tuple(
        ChunkSummary(
            key=f"{start:%Y-%m-%d}",
            start=pd.Timestamp(start),
            end=pd.Timestamp(start + timedelta(days=1)),
            chunk_rows=500,
            labelled_rows=0,
            ece=0.02,
        )
        for start in starts
    )
    metrics = tuple(
        MetricSeries(
            name=name,
            lower_threshold=0.7,
            upper_threshold=None,
            estimate=(estimate,) * count,
            sampling_error=(0.0167,) * count,
            lower_bound=(estimate - 0.05,) * count,
            upper_bound=(estimate + 0.05,) * count,
            realized=(math.nan,) * count,
            alert=(estimate < 0.7,) * count,
            realized_alert=(None,) * count,
            estimate_realized_alert=(None,) * count,
        )
        for name in ("roc_auc", "f1")
    )

    def statistic(kind: str, subject: str, method: str) -> StatisticSeries:
        return StatisticSeries(
            kind=kind,
            subject=subject,
            method=method,
            values=(0.05,) * count,
            lower_threshold=None,
            upper_threshold=0.1,
            alert=(False,) * count,
        )

    return MonitoringResult(
        chunking=Chunking(period="D"),
        reference_rows=1000,
        reference_chunks=6,
        chunks=chunks,
        metrics=metrics,
        univariate=(statistic("continuous", feature, "jensen_shannon"),),
        multivariate=statistic("multivariate", "all features", "pca_reconstruction_error"),
        missing_values=(),
        unseen_values=(),
        warnings=(),
    )


def _run(
    starts: list[datetime], estimate: float = 0.8, watermark: int = 10, **changes: Any
) -> MonitoringRun:
    return MonitoringRun(
        model_version=VERSION,
        trigger="cli",
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=3),
        watermark_id=watermark,
        result=_result(starts, estimate, **changes),
    )


def _failed(watermark: int = 10) -> RunRecord:
    return RunRecord(
        model_version=VERSION,
        trigger="cli",
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=3),
        watermark_id=watermark,
    )


TWO_DAYS = [datetime(2024, 3, 1), datetime(2024, 3, 2)]


def test_storing_the_same_figures_again_changes_no_row_count(conn: Connection) -> None:
    first = store_run(conn, _run(TWO_DAYS, 0.8))
    counts = (_count(conn, "monitoring_results"), _count(conn, "monitoring_drift"))
    second = store_run(conn, _run(TWO_DAYS, 0.65))

    assert second > first
    assert counts == (4, 4)
    assert (_count(conn, "monitoring_results"), _count(conn, "monitoring_drift")) == counts
    assert _count(conn, "monitoring_runs") == 2
    results = stored_results(conn, VERSION)
    assert results["estimate"].tolist() == [0.65] * 4  # upserted
    assert results["alert"].tolist() == [True] * 4
    assert results["run_id"].unique().tolist() == [second]
    assert results["realized"].isna().all()
    assert results["realized_alert"].tolist() == [None] * 4
    assert math.isnan(results["upper_threshold"][0])


def test_storing_the_same_run_again_stores_the_same_contents(conn: Connection) -> None:
    store_run(conn, _run(TWO_DAYS))
    results, drift = stored_results(conn, VERSION), stored_drift(conn, VERSION)

    again = store_run(conn, _run(TWO_DAYS))

    results_again, drift_again = stored_results(conn, VERSION), stored_drift(conn, VERSION)
    assert set(results_again["run_id"]) == set(drift_again["run_id"]) == {again}
    pd.testing.assert_frame_equal(
        results_again.drop(columns="run_id"), results.drop(columns="run_id")
    )
    pd.testing.assert_frame_equal(drift_again.drop(columns="run_id"), drift.drop(columns="run_id"))


def test_stored_rows_keep_the_result_s_field_names(conn: Connection) -> None:
    run = _run(TWO_DAYS)

    store_run(conn, run)

    stored = stored_results(conn, VERSION)
    rows = run.result.metric_rows()
    assert set(rows[0]) - {"metric"} <= set(stored.columns)
    assert stored["lower_bound"].tolist() == sorted(row["lower_bound"] for row in rows)
    assert stored["chunk_rows"].tolist() == [500] * 4


def test_a_run_replaces_the_figures_of_chunks_it_no_longer_has(conn: Connection) -> None:
    store_run(conn, _run(TWO_DAYS))

    store_run(conn, _run([datetime(2024, 3, 2), datetime(2024, 3, 3)]))

    results = stored_results(conn, VERSION)
    drift = stored_drift(conn, VERSION)
    assert sorted({ts.day for ts in results["chunk_start"]}) == [2, 3]
    assert sorted({ts.day for ts in drift["chunk_start"]}) == [2, 3]


def test_figures_of_other_versions_are_left_alone(conn: Connection) -> None:
    store_run(conn, _run([datetime(2024, 3, 1)]))
    other = replace(_run([datetime(2024, 3, 5)]), model_version="m2")

    store_run(conn, other)

    assert len(stored_results(conn, VERSION)) == 2
    assert len(stored_results(conn, "m2")) == 2


def test_the_run_row_records_what_the_run_saw(conn: Connection) -> None:
    stored = _run([datetime(2024, 3, 1)], watermark=42)
    run_id = store_run(conn, stored)

    run = latest_run(conn, VERSION)

    assert run is not None
    assert run.run_id == run_id
    assert run.status == "succeeded"
    assert run.watermark_id == 42
    assert run.alerts == stored.result.alert_counts()
    assert "total" not in run.alerts
    assert run.verdicts == [verdict.to_json() for verdict in stored.result.verdicts()]
    assert [entry["chunk"] for entry in run.verdicts] == ["2024-03-01"]
    assert run.chunking == "period=D"
    assert (run.reference_rows, run.analysis_rows, run.labelled_rows) == (1000, 500, 0)
    assert run.started_at == NOW
    assert run.error_message is None


def test_a_failed_run_is_recorded_and_leaves_the_figures(conn: Connection) -> None:
    ok = store_run(conn, _run([datetime(2024, 3, 1)]))

    failed = record_failed_run(conn, _failed(), "x" * 2000, consumer="poller")

    assert failed > ok
    last = latest_run(conn, VERSION)
    assert last is not None and last.status == "failed"
    assert last.error_message == "x" * 1024
    assert last.verdicts == []
    succeeded = latest_run(conn, VERSION, "succeeded")
    assert succeeded is not None and succeeded.run_id == ok
    assert len(stored_results(conn, VERSION)) == 2
    assert get_watermark(conn, "poller") == 10


def test_the_watermark_advances_with_the_stored_run_only_when_asked(conn: Connection) -> None:
    assert get_watermark(conn, "poller") == 0

    store_run(conn, _run([datetime(2024, 3, 1)], watermark=5))
    assert get_watermark(conn, "poller") == 0
    run_id = store_run(conn, _run([datetime(2024, 3, 1)], watermark=7), consumer="poller")

    assert get_watermark(conn, "poller") == 7
    with transaction(conn) as cursor:
        cursor.execute("SELECT run_id FROM monitoring_watermark WHERE consumer = 'poller'")
        assert cursor.fetchone() == (run_id,)


def test_the_watermark_never_moves_back(conn: Connection) -> None:
    assert advance_watermark(conn, "poller", 9) == 9
    assert advance_watermark(conn, "poller", 4) == 9
    assert advance_watermark(conn, "other", 4) == 4


def test_a_failing_store_leaves_nothing_behind(conn: Connection) -> None:
    # NOT NULL feature: the drift insert fails after the run row and the metrics.
    broken = _run([datetime(2024, 3, 1)], feature=None)

    with pytest.raises(DatabaseError):
        store_run(conn, broken, consumer="poller")

    assert _count(conn, "monitoring_runs") == 0
    assert _count(conn, "monitoring_results") == 0
    assert get_watermark(conn, "poller") == 0


def test_the_label_cutoff_goes_with_the_run_that_saw_it(conn: Connection) -> None:
    early, late = DAY, DAY + timedelta(days=3)
    advance_watermark(conn, "poller", 5, label_cutoff=early)
    assert get_label_cutoff(conn, "poller") == early

    advance_watermark(conn, "poller", 4, label_cutoff=late)  # an older run: ignored
    assert (get_watermark(conn, "poller"), get_label_cutoff(conn, "poller")) == (5, early)

    store_run(conn, _run(TWO_DAYS, watermark=6), consumer="poller", label_cutoff=late)
    assert (get_watermark(conn, "poller"), get_label_cutoff(conn, "poller")) == (6, late)
    assert get_label_cutoff(conn, "never-ran") is None


# --- incremental runs ------------------------------------------------------------------------


def test_storing_chunks_writes_those_only_and_describes_every_chunk(conn: Connection) -> None:
    three_days = [*TWO_DAYS, datetime(2024, 3, 3)]
    first = store_run(conn, _run(three_days, 0.8))
    merged = _run([*TWO_DAYS, datetime(2024, 3, 4)], 0.6, watermark=20)
    changed = _result([TWO_DAYS[1], datetime(2024, 3, 4)], 0.6)

    second = store_chunks(conn, merged, changed, [datetime(2024, 3, 3)], "poller", DAY)

    results = stored_results(conn, VERSION)
    by_chunk = results.groupby("chunk_key")[["estimate", "run_id"]].first()
    assert by_chunk.to_dict("index") == {
        "2024-03-01": {"estimate": 0.8, "run_id": first},  # kept
        "2024-03-02": {"estimate": 0.6, "run_id": second},  # recomputed
        "2024-03-04": {"estimate": 0.6, "run_id": second},  # new
    }  # 2024-03-03 lost its predictions: its figures are gone
    assert sorted(stored_drift(conn, VERSION)["chunk_key"].unique()) == list(by_chunk.index)
    run = latest_run(conn, VERSION)
    assert run is not None and run.run_id == second
    assert run.chunks == 3
    assert [verdict["chunk"] for verdict in run.verdicts] == list(by_chunk.index)
    assert (get_watermark(conn, "poller"), get_label_cutoff(conn, "poller")) == (20, DAY)


def test_storing_no_changed_chunk_still_records_the_run(conn: Connection) -> None:
    store_run(conn, _run(TWO_DAYS, 0.8))
    counts = _count(conn, "monitoring_results")

    store_chunks(conn, _run(TWO_DAYS[:1], 0.8), None, [TWO_DAYS[1]], "poller", None)

    assert _count(conn, "monitoring_results") == counts // 2
    assert _count(conn, "monitoring_runs") == 2


def test_the_probe_reads_every_watermark_in_one_statement(conn: Connection) -> None:
    empty = probe(conn, "poller")
    assert (empty.newest_id, empty.watermark_id, empty.label_cutoff) == (0, 0, None)
    assert (empty.last_processed, empty.current_version, empty.registered_at) == (None,) * 3

    _model(conn)
    _predictions(conn, "analysis", [("a", DAY, None, {})])
    _processed(conn, [(DAY + timedelta(days=20), "z", 0)])
    advance_watermark(conn, "poller", 1, label_cutoff=DAY)

    seen = probe(conn, "poller")
    assert seen.newest_id == max_prediction_id(conn)
    assert seen.last_processed == DAY + timedelta(days=20)
    assert (seen.watermark_id, seen.label_cutoff) == (1, DAY)
    assert seen.current_version == VERSION
    assert isinstance(seen.registered_at, datetime)


def test_days_written_are_those_of_the_predictions_past_the_watermark(conn: Connection) -> None:
    _model(conn)
    _predictions(conn, "reference", [("a", DAY - timedelta(days=9), 1, {})])
    _predictions(conn, "analysis", [("a", DAY, None, {}), ("b", DAY, None, {})])
    seen = max_prediction_id(conn)
    later = DAY + timedelta(days=1)
    _predictions(conn, "analysis", [("a", later, None, {}), ("b", later, None, {})])
    newest = max_prediction_id(conn)

    assert days_written(conn, seen, newest) == [WrittenDay(VERSION, "analysis", later)]
    assert days_written(conn, 0, seen) == [
        WrittenDay(VERSION, "analysis", DAY),
        WrittenDay(VERSION, "reference", DAY - timedelta(days=9)),
    ]
    assert days_written(conn, newest, newest) == []


def test_analysis_of_some_days_at_a_given_label_cutoff(conn: Connection) -> None:
    _model(conn)
    days = [DAY + timedelta(days=offset) for offset in range(4)]
    _predictions(conn, "analysis", [("a", d, None, _features(1, 1, "data")) for d in days])
    _processed(conn, [(d, "a", 1) for d in days])

    frame = load_analysis_at(
        conn, VERSION, CONTINUOUS, CATEGORICAL, days[1], [(days[0], days[1]), (days[3], days[3])]
    )

    assert [stamp.date() for stamp in frame["as_of_date"]] == [days[0], days[1], days[3]]
    assert frame[LABEL].tolist()[:2] == [1.0, 1.0]
    assert math.isnan(frame[LABEL].tolist()[2])  # past the cut-off
    everything = load_analysis_at(conn, VERSION, CONTINUOUS, CATEGORICAL, None)
    assert len(everything) == 4 and everything[LABEL].isna().all()
    nothing = load_analysis_at(conn, VERSION, CONTINUOUS, CATEGORICAL, None, [])
    assert nothing.empty
    assert list(nothing.columns) == list(everything.columns)


# --- ids and the run lock --------------------------------------------------------------------


def test_max_prediction_id_grows_with_every_write(conn: Connection) -> None:
    assert max_prediction_id(conn) == 0
    _model(conn)
    _predictions(conn, "analysis", [("a", DAY, None, {})])
    first = max_prediction_id(conn)

    with transaction(conn) as cursor:
        cursor.execute("DELETE FROM model_predictions")
    _predictions(conn, "analysis", [("a", DAY, None, {})])

    assert first > 0
    assert max_prediction_id(conn) > first


def test_the_run_lock_admits_one_session_and_is_freed_with_it(db_settings: Settings) -> None:
    name = run_lock_name(db_settings.db_name)
    with connection(db_settings) as first, connection(db_settings) as second:
        assert acquire_run_lock(first, name, 0)
        assert not acquire_run_lock(second, name, 0.1)
        release_run_lock(first, name)
        assert acquire_run_lock(second, name, 0)
        assert not acquire_run_lock(first, name, 0)
    # Both sessions are closed: a process that dies mid-run leaves the lock free.
    with connection(db_settings) as third:
        assert acquire_run_lock(third, name, 0)
        release_run_lock(third, name)


def test_run_lock_names_fit_the_server_limit() -> None:
    assert len(run_lock_name("d" * 64)) == 64
    assert run_lock_name("a") != run_lock_name("b")
