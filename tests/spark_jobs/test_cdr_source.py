"""The streaming CDR source: offsets, admission control, out-of-order commits, real queries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from config.settings import Settings
from db.cdr import insert_cdr_rows
from db.connection import Connection, connect, transaction
from spark_jobs.cdr_source import (
    SOURCE_NAME,
    CdrSourceOptionError,
    CdrSourceOptions,
    CdrStreamReader,
    CommitWatermark,
    IdRange,
    cdr_source_options,
    read_cdr_stream,
    split_id_range,
    text_rows_to_record_batch,
)
from spark_jobs.schemas import RAW_CDR_SCHEMA

DAY = datetime(2024, 3, 1)


def _rows(count: int, first: int = 0) -> list[tuple[Any, ...]]:
    return [
        (DAY + timedelta(hours=i), f"2771{i:07d}", i, 1.5, None, 0.0, 2, 3, 4, 10.25, i % 2)
        for i in range(first, first + count)
    ]


def _insert(settings: Settings, count: int, first: int = 0) -> None:
    conn = connect(settings)
    try:
        with transaction(conn) as cursor:
            insert_cdr_rows(conn, cursor, _rows(count, first), chunk_rows=1000)
    finally:
        conn.close()


def _options(settings: Settings, **extra: str) -> CdrSourceOptions:
    return CdrSourceOptions.parse({**cdr_source_options(settings), **extra})


# --- options -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["0", "-5", "ten", "1.5"])
def test_max_rows_per_trigger_must_be_positive(base_settings: Settings, bad: str) -> None:
    with pytest.raises(CdrSourceOptionError, match="maxRowsPerTrigger must be a positive"):
        _options(base_settings, maxRowsPerTrigger=bad)


def test_unknown_and_missing_options_are_named(base_settings: Settings) -> None:
    with pytest.raises(CdrSourceOptionError, match=r"unknown option.*maxrowspertriger"):
        _options(base_settings, maxRowsPerTriger="5")
    options = cdr_source_options(base_settings)
    del options["host"]
    with pytest.raises(CdrSourceOptionError, match=r"missing option.*host"):
        CdrSourceOptions.parse(options)
    with pytest.raises(CdrSourceOptionError, match="startingId"):
        _options(base_settings, startingId="-1")
    with pytest.raises(CdrSourceOptionError, match="writerCheck"):
        _options(base_settings, writerCheck="maybe")


def test_options_carry_no_password(base_settings: Settings) -> None:
    settings = base_settings.model_copy(update={"db_password": SecretStr("s3cret-pw")})
    options = cdr_source_options(settings, max_rows_per_trigger=10)
    assert "s3cret-pw" not in repr(options)
    assert "s3cret-pw" not in repr(CdrSourceOptions.parse(options))
    assert not any("password" in key.lower() for key in options)


# --- pure planning -------------------------------------------------------------------------


def test_split_id_range_covers_the_range_once() -> None:
    assert split_id_range(10, 10, 4) == []
    assert split_id_range(0, 3, 8) == [IdRange(0, 1), IdRange(1, 2), IdRange(2, 3)]
    parts = split_id_range(100, 1101, 3)
    assert [(p.after, p.until) for p in parts] == [(100, 433), (433, 767), (767, 1101)]


def test_server_text_becomes_one_arrow_batch_of_the_raw_schema() -> None:
    row = [b"7", b"2024-03-01 05:06:07", b"it's\\odd\"", b"4294967295", b"1e-2", None]
    row += [b"1000000000", b"0", b"3", b"1", b"120.25", b"1"]
    batch = text_rows_to_record_batch([row, [b"8", b"2024-03-02 00:00:00", b"+27 71"] + [None] * 9])
    assert batch.schema.names == RAW_CDR_SCHEMA.fieldNames()
    first, second = batch.to_pylist()
    assert first["id"] == 7 and first["DP_MSISDN"] == "it's\\odd\""
    assert first["DP_DATE"] == datetime(2024, 3, 1, 5, 6, 7, tzinfo=UTC)
    assert first["DP_MOC_COUNT"] == 4294967295 and first["DP_MOC_DURATION"] == 0.01
    assert first["DP_MTC_COUNT"] is None and first["PSEUDO_CHURNED"] == 1
    assert second["DP_DATA_VOLUME"] is None and second["PSEUDO_CHURNED"] is None
    assert text_rows_to_record_batch([]).num_rows == 0


def test_watermark_waits_for_the_writers_open_when_the_maximum_was_read() -> None:
    mark = CommitWatermark()
    assert mark.observe(10, frozenset(), now=0) == 10  # no writer: final at once
    assert mark.observe(20, frozenset({1}), now=1) == 10  # trx 1 may hold ids 11..19
    assert mark.observe(30, frozenset({1, 2}), now=2) == 10
    # trx 1 ended; a newcomer (3) cannot hold ids below 20, but trx 2 may below 30
    assert mark.resolve(frozenset({2, 3})) == 20
    assert mark.resolve(frozenset({3})) == 30
    assert mark.waiting_since() is None
    assert mark.observe(25, frozenset({9}), now=3) == 30  # never moves back


# --- the reader against the real server ----------------------------------------------------


@pytest.fixture
def reader(db_settings: Settings) -> Iterator[CdrStreamReader]:
    # A long settle: other test sessions may be writing to the same server meanwhile.
    stream_reader = CdrStreamReader(_options(db_settings, settleSeconds="30"))
    yield stream_reader
    stream_reader.stop()


def test_latest_offset_reads_the_committed_maximum(
    db_settings: Settings, reader: CdrStreamReader
) -> None:
    from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

    assert reader.initialOffset() == {"id": 0}
    assert reader.latestOffset({"id": 0}, ReadAllAvailable()) == {"id": 0}
    _insert(db_settings, 25)
    assert reader.latestOffset({"id": 0}, ReadAllAvailable()) == {"id": 25}
    assert reader.latestOffset({"id": 0}, ReadMaxRows(10)) == {"id": 10}
    assert reader.latestOffset({"id": 20}, ReadMaxRows(10)) == {"id": 25}
    latest = CdrStreamReader(_options(db_settings, startingId="latest"))
    try:
        assert latest.initialOffset() == {"id": 25}
    finally:
        latest.stop()
    parts = reader.partitions({"id": 20}, {"id": 25})
    assert parts == [IdRange(20, 22), IdRange(22, 25)]
    batches = [batch for part in parts for batch in reader.read(part)]
    assert [i for batch in batches for i in batch.column("id").to_pylist()] == [21, 22, 23, 24, 25]


def test_available_now_stops_at_the_rows_committed_when_it_began(
    db_settings: Settings, reader: CdrStreamReader
) -> None:
    from pyspark.sql.streaming.datasource import ReadMaxRows

    _insert(db_settings, 10)
    reader.prepareForTriggerAvailableNow()
    _insert(db_settings, 5, first=10)
    assert reader.latestOffset({"id": 0}, ReadMaxRows(8)) == {"id": 8}
    assert reader.latestOffset({"id": 8}, ReadMaxRows(8)) == {"id": 10}
    assert reader.latestOffset({"id": 10}, ReadMaxRows(8)) == {"id": 10}


def test_read_returns_the_stored_values(db_settings: Settings, reader: CdrStreamReader) -> None:
    odd: tuple[Any, ...] = (
        datetime(2024, 1, 3, 4, 5, 6),
        "it's\\odd\" é",
        None,
        1e-2,
        4294967295,
        1e9,
        None,
    )
    odd += (None, 1, 3.3, None)
    conn = connect(db_settings)
    try:
        with transaction(conn) as cursor:
            insert_cdr_rows(conn, cursor, [odd], chunk_rows=1)
    finally:
        conn.close()
    (batch,) = [b for part in reader.partitions({"id": 0}, {"id": 1}) for b in reader.read(part)]
    (row,) = batch.to_pylist()
    assert row["DP_DATE"] == odd[0].replace(tzinfo=UTC)
    assert tuple(row.values())[2:] == odd[1:]


def _open_insert(settings: Settings, count: int) -> tuple[Connection, Any]:
    conn = connect(settings)
    cursor = conn.cursor()
    insert_cdr_rows(conn, cursor, _rows(count), chunk_rows=1000)
    return conn, cursor


def test_ids_committed_out_of_order_are_not_skipped(
    db_settings: Settings, reader: CdrStreamReader
) -> None:
    from pyspark.sql.streaming.datasource import ReadAllAvailable

    slow, slow_cursor = _open_insert(db_settings, 10)  # holds ids 1..10, not committed
    try:
        _insert(db_settings, 10, first=10)  # ids 11..20, committed
        quick = CdrStreamReader(_options(db_settings, settleSeconds="0"))
        try:
            assert quick.latestOffset({"id": 0}, ReadAllAvailable()) == {"id": 0}
        finally:
            quick.stop()
        slow.commit()
    finally:
        slow_cursor.close()
        slow.close()
    assert reader.latestOffset({"id": 0}, ReadAllAvailable()) == {"id": 20}


def test_ids_of_a_rolled_back_insert_do_not_stall_the_stream(
    db_settings: Settings, reader: CdrStreamReader
) -> None:
    from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

    _insert(db_settings, 5)
    conn, cursor = _open_insert(db_settings, 5)  # takes ids 6..10
    conn.rollback()
    cursor.close()
    conn.close()
    _insert(db_settings, 5, first=10)  # ids 11..15
    assert reader.latestOffset({"id": 0}, ReadMaxRows(5)) == {"id": 5}  # no id missing
    assert reader.latestOffset({"id": 5}, ReadAllAvailable()) == {"id": 15}
    parts = reader.partitions({"id": 5}, {"id": 15})
    ids = [i for part in parts for batch in reader.read(part) for i in batch["id"].to_pylist()]
    assert ids == [11, 12, 13, 14, 15]


def test_single_writer_mode_trusts_the_maximum(db_settings: Settings) -> None:
    from pyspark.sql.streaming.datasource import ReadAllAvailable

    _insert(db_settings, 3)
    trusting = CdrStreamReader(_options(db_settings, writerCheck="none"))
    try:
        assert trusting.latestOffset({"id": 1}, ReadAllAvailable()) == {"id": 3}
    finally:
        trusting.stop()


# --- streaming queries on a real local Spark -----------------------------------------------


def _run_available_now(
    spark: Any, settings: Settings, checkpoint: Path, max_rows: int | None
) -> list[list[int]]:
    """Run the source until it has nothing new; the ids of each non-empty micro-batch."""
    batches: list[list[int]] = []

    def collect(frame: Any, batch_id: int) -> None:
        ids = [row.id for row in frame.select("id").collect()]
        if ids:
            batches.append(sorted(ids))

    stream = read_cdr_stream(spark, settings, max_rows_per_trigger=max_rows, num_partitions=2)
    query = (
        stream.writeStream.foreachBatch(collect)
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    assert query.exception() is None
    return batches


@pytest.mark.slow
def test_every_row_arrives_once_across_triggers_and_restarts(
    spark: Any, db_settings: Settings, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "checkpoint"
    _insert(db_settings, 50)
    first = _run_available_now(spark, db_settings, checkpoint, max_rows=12)
    assert [len(ids) for ids in first] == [12, 12, 12, 12, 2]
    assert sorted(i for ids in first for i in ids) == list(range(1, 51))

    _insert(db_settings, 7, first=50)
    again = _run_available_now(spark, db_settings, checkpoint, max_rows=12)
    assert again == [list(range(51, 58))]
    assert _run_available_now(spark, db_settings, checkpoint, max_rows=12) == []


@pytest.mark.slow
def test_rows_arrive_with_their_values(spark: Any, db_settings: Settings, tmp_path: Path) -> None:
    _insert(db_settings, 2)
    rows: list[Any] = []
    query = (
        read_cdr_stream(spark, db_settings)
        .writeStream.foreachBatch(lambda frame, _: rows.extend(frame.orderBy("id").collect()))
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    first = rows[0].asDict()
    assert first["id"] == 1 and first["DP_MSISDN"] == "27710000000"
    assert first["DP_DATE"] == DAY  # session time zone UTC: the DATETIME as stored
    assert first["DP_MTC_COUNT"] is None and first["DP_DATA_VOLUME"] == 10.25
    assert [r.PSEUDO_CHURNED for r in rows] == [0, 1]


@pytest.mark.slow
def test_an_empty_table_gives_no_batch_and_no_error(
    spark: Any, db_settings: Settings, tmp_path: Path
) -> None:
    assert _run_available_now(spark, db_settings, tmp_path / "checkpoint", max_rows=5) == []
    seen: list[int] = []
    query = (
        read_cdr_stream(spark, db_settings, max_rows_per_trigger=5)
        .writeStream.foreachBatch(lambda frame, _: seen.append(frame.count()))
        .option("checkpointLocation", str(tmp_path / "continuous"))
        .trigger(processingTime="100 milliseconds")
        .start()
    )
    try:
        query.processAllAvailable()
        assert query.isActive and query.exception() is None
    finally:
        query.stop()
    assert sum(seen) == 0


@pytest.mark.slow
def test_bad_options_fail_when_the_stream_is_defined(spark: Any, db_settings: Settings) -> None:
    with pytest.raises(CdrSourceOptionError, match="maxRowsPerTrigger"):
        read_cdr_stream(spark, db_settings, max_rows_per_trigger=0)
    options = {**cdr_source_options(db_settings), "maxRowsPerTrigger": "0"}
    with pytest.raises(Exception, match="maxRowsPerTrigger must be a positive") as caught:
        spark.readStream.format(SOURCE_NAME).options(**options).load()
    assert "password" not in str(caught.value).lower()


@pytest.mark.slow
def test_concurrent_writers_lose_no_row(spark: Any, db_settings: Settings, tmp_path: Path) -> None:
    """Two writers whose transactions commit out of id order, read while they write."""
    seen: list[int] = []
    query = (
        read_cdr_stream(spark, db_settings, max_rows_per_trigger=40)
        .writeStream.foreachBatch(lambda frame, _: seen.extend(r.id for r in frame.collect()))
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .trigger(processingTime="0 seconds")
        .start()
    )

    holding = threading.Event()

    def slow_writer() -> None:
        # Takes ids 1..20 first and commits them only after the quick writer's rows landed.
        conn = connect(db_settings)
        try:
            with transaction(conn) as cursor:
                insert_cdr_rows(conn, cursor, _rows(20), chunk_rows=20)
                holding.set()
                time.sleep(8)
        finally:
            conn.close()

    def quick_writer() -> None:
        holding.wait()
        for batch in range(1, 6):
            _insert(db_settings, 20, first=batch * 20)
            time.sleep(0.5)

    try:
        query.processAllAvailable()  # running and warm: it will read while the writers write
        writers = [threading.Thread(target=slow_writer), threading.Thread(target=quick_writer)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
        for _ in range(60):  # other sessions' open writers can hold a trigger back a while
            query.processAllAvailable()
            if len(seen) >= 120:
                break
            time.sleep(0.5)
        assert query.exception() is None
    finally:
        query.stop()
    assert sorted(seen) == list(range(1, 121))


@pytest.mark.slow
def test_a_batch_that_failed_is_replayed_with_the_same_rows(
    spark: Any, db_settings: Settings, tmp_path: Path
) -> None:
    attempts: list[tuple[int, list[int]]] = []
    crash = [True]

    def flaky(frame: Any, batch_id: int) -> None:
        attempts.append((batch_id, sorted(row.id for row in frame.select("id").collect())))
        if batch_id == 1 and crash[0]:
            raise RuntimeError("crash inside batch 1")

    def run() -> Any:
        return (
            read_cdr_stream(spark, db_settings, max_rows_per_trigger=10)
            .writeStream.foreachBatch(flaky)
            .option("checkpointLocation", str(tmp_path / "checkpoint"))
            .trigger(availableNow=True)
            .start()
        )

    _insert(db_settings, 30)
    with pytest.raises(Exception, match="crash inside batch 1"):
        run().awaitTermination()
    _insert(db_settings, 5, first=30)
    crash[0] = False
    run().awaitTermination()
    ids = [list(range(first, first + 10)) for first in (1, 11, 11, 21)] + [list(range(31, 36))]
    assert attempts == list(zip([0, 1, 1, 2, 3], ids, strict=True))
