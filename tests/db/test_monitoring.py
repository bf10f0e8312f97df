"""Monitoring's database layer: prediction frames with late labels, idempotent storage of a
run's figures, the watermark and the run lock, on small hand-checkable rows."""

from __future__ import annotations

import json
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
from db.monitoring import (
    LABEL,
    PREDICTION_FRAME_COLUMNS,
    RunRecord,
    acquire_run_lock,
    advance_watermark,
    expand_features,
    get_watermark,
    label_cutoff,
    latest_run,
    load_analysis,
    load_reference,
    max_prediction_id,
    record_failed_run,
    release_run_lock,
    run_lock_name,
    store_run,
    stored_drift,
    stored_results,
)

VERSION = "m1"
DAY = date(2024, 3, 1)
NOW = datetime(2024, 4, 1, 12, 0, 0)
CONTINUOUS = ["calls", "minutes"]
CATEGORICAL = ["profile"]


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


def _predictions(conn: Connection, period: str, rows: list[tuple[str, date, Any, str]]) -> None:
    """(subscriber, date, label, features JSON) rows of `VERSION` in ``period``."""
    _execute(
        conn,
        "INSERT INTO model_predictions (model_version, subscriber, as_of_date, period, "
        "probability_0, probability_1, prediction, label, features) "
        "VALUES (%s, %s, %s, %s, 0.75, 0.25, 0, %s, %s)",
        [(VERSION, s, d, period, label, features) for s, d, label, features in rows],
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


def _features(calls: float, minutes: float, profile: str) -> str:
    return json.dumps({"calls": calls, "minutes": minutes, "profile": profile})


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
            ("a", DAY - timedelta(days=1), 0, json.dumps({"calls": 4, "profile": "voice"})),
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
    assert math.isnan(frame["minutes"][0])  # a feature missing from the JSON is NaN
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


def test_expand_features_falls_back_to_per_row_parsing_for_odd_documents() -> None:
    documents = [
        '{"calls": 1, "minutes": 2.5, "profile": 3}',  # a numeric category
        '{\n  "calls": 2,\n  "profile": "voice"\n}',  # pretty-printed
        '{"calls": null, "minutes": 1, "extra": true}',
    ]

    frame = expand_features(documents, CONTINUOUS, CATEGORICAL)

    assert list(frame.columns) == [*CONTINUOUS, *CATEGORICAL]
    assert frame["calls"].tolist()[:2] == [1.0, 2.0]
    assert math.isnan(frame["calls"][2])
    assert frame["profile"].tolist()[:2] == [3, "voice"]
    assert frame["calls"].dtype == np.float64


def test_expand_features_keeps_values_that_are_not_numbers_for_the_core_to_report() -> None:
    frame = expand_features(['{"calls": "many"}', '{"calls": 1}'], ["calls"], [])

    assert frame["calls"].tolist() == ["many", 1]


# --- storing runs ----------------------------------------------------------------------------


def _metric_row(start: datetime, metric: str, estimate: float) -> dict[str, Any]:
    return {
        "metric": metric,
        "chunk_key": f"{start:%Y-%m-%d}",
        "chunk_start": start,
        "chunk_end": start + timedelta(days=1),
        "estimate": estimate,
        "lower": estimate - 0.05,
        "upper": estimate + 0.05,
        "sampling_error": 0.0167,
        "realized": float("nan"),
        "lower_threshold": 0.7,
        "upper_threshold": None,
        "alert": estimate < 0.7,
        "realized_alert": None,
        "estimate_realized_alert": None,
        "ece": 0.02,
        "rows": 500,
        "labelled_rows": 0,
    }


def _drift_row(start: datetime, feature: str, value: float) -> dict[str, Any]:
    return {
        "kind": "continuous",
        "feature": feature,
        "method": "jensen_shannon",
        "chunk_key": f"{start:%Y-%m-%d}",
        "chunk_start": start,
        "chunk_end": start + timedelta(days=1),
        "value": value,
        "sampling_error": None,
        "lower_threshold": None,
        "upper_threshold": 0.1,
        "alert": value > 0.1,
    }


def _run(watermark: int = 10, **changes: Any) -> RunRecord:
    return RunRecord(
        model_version=VERSION,
        trigger="cli",
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=3),
        watermark_id=watermark,
        chunking="period=D",
        reference_rows=1000,
        analysis_rows=1000,
        labelled_rows=0,
        chunks=2,
        alerts={"estimated_performance": 1, "total": 1},
        warnings=0,
        **changes,
    )


def _figures(starts: list[datetime], estimate: float) -> tuple[list[Any], list[Any]]:
    metrics = [_metric_row(s, m, estimate) for s in starts for m in ("roc_auc", "f1")]
    drift = [_drift_row(s, f, 0.05) for s in starts for f in ("calls", "minutes")]
    return metrics, drift


def test_storing_the_same_figures_again_changes_no_row_count(conn: Connection) -> None:
    starts = [datetime(2024, 3, 1), datetime(2024, 3, 2)]
    metrics, drift = _figures(starts, 0.8)

    first = store_run(conn, _run(), metrics, drift)
    counts = (_count(conn, "monitoring_results"), _count(conn, "monitoring_drift"))
    second = store_run(conn, _run(), *_figures(starts, 0.65))

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


def test_a_run_replaces_the_figures_of_chunks_it_no_longer_has(conn: Connection) -> None:
    store_run(conn, _run(), *_figures([datetime(2024, 3, 1), datetime(2024, 3, 2)], 0.8))

    store_run(conn, _run(), *_figures([datetime(2024, 3, 2), datetime(2024, 3, 3)], 0.8))

    results = stored_results(conn, VERSION)
    drift = stored_drift(conn, VERSION)
    assert sorted({ts.day for ts in results["chunk_start"]}) == [2, 3]
    assert sorted({ts.day for ts in drift["chunk_start"]}) == [2, 3]


def test_figures_of_other_versions_are_left_alone(conn: Connection) -> None:
    store_run(conn, _run(), *_figures([datetime(2024, 3, 1)], 0.8))
    other = replace(_run(), model_version="m2")

    store_run(conn, other, *_figures([datetime(2024, 3, 5)], 0.8))

    assert len(stored_results(conn, VERSION)) == 2
    assert len(stored_results(conn, "m2")) == 2


def test_the_run_row_records_what_the_run_saw(conn: Connection) -> None:
    run_id = store_run(conn, _run(watermark=42), *_figures([datetime(2024, 3, 1)], 0.8))

    run = latest_run(conn, VERSION)

    assert run is not None
    assert run.run_id == run_id
    assert run.status == "succeeded"
    assert run.watermark_id == 42
    assert run.alerts == {"estimated_performance": 1, "total": 1}
    assert run.started_at == NOW
    assert run.error_message is None


def test_a_failed_run_is_recorded_and_leaves_the_figures(conn: Connection) -> None:
    ok = store_run(conn, _run(), *_figures([datetime(2024, 3, 1)], 0.8))

    failed = record_failed_run(conn, _run(), "x" * 2000, consumer="poller")

    assert failed > ok
    last = latest_run(conn, VERSION)
    assert last is not None and last.status == "failed"
    assert last.error_message == "x" * 1024
    succeeded = latest_run(conn, VERSION, "succeeded")
    assert succeeded is not None and succeeded.run_id == ok
    assert len(stored_results(conn, VERSION)) == 2
    assert get_watermark(conn, "poller") == 10


def test_the_watermark_advances_with_the_stored_run_only_when_asked(conn: Connection) -> None:
    assert get_watermark(conn, "poller") == 0

    store_run(conn, _run(watermark=5), *_figures([datetime(2024, 3, 1)], 0.8))
    assert get_watermark(conn, "poller") == 0
    run_id = store_run(
        conn, _run(watermark=7), *_figures([datetime(2024, 3, 1)], 0.8), consumer="poller"
    )

    assert get_watermark(conn, "poller") == 7
    with transaction(conn) as cursor:
        cursor.execute("SELECT run_id FROM monitoring_watermark WHERE consumer = 'poller'")
        assert cursor.fetchone() == (run_id,)


def test_the_watermark_never_moves_back(conn: Connection) -> None:
    assert advance_watermark(conn, "poller", 9) == 9
    assert advance_watermark(conn, "poller", 4) == 9
    assert advance_watermark(conn, "other", 4) == 4


def test_a_failing_store_leaves_nothing_behind(conn: Connection) -> None:
    metrics, drift = _figures([datetime(2024, 3, 1)], 0.8)
    drift.append({**drift[0], "feature": None})  # NOT NULL: the insert fails mid-transaction

    with pytest.raises(Exception, match="feature"):
        store_run(conn, _run(), metrics, drift, consumer="poller")

    assert _count(conn, "monitoring_runs") == 0
    assert _count(conn, "monitoring_results") == 0
    assert get_watermark(conn, "poller") == 0


# --- ids and the run lock --------------------------------------------------------------------


def test_max_prediction_id_grows_with_every_write(conn: Connection) -> None:
    assert max_prediction_id(conn) == 0
    _model(conn)
    _predictions(conn, "analysis", [("a", DAY, None, "{}")])
    first = max_prediction_id(conn)

    with transaction(conn) as cursor:
        cursor.execute("DELETE FROM model_predictions")
    _predictions(conn, "analysis", [("a", DAY, None, "{}")])

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
