"""Seeding the real database from the generator, a CSV file and the GCS emulator."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from db.connection import connection, transaction
from db.ingest_log import committed_batches
from ingest.generator import GeneratorConfig, generate_cdr
from ingest.seeding import seed_from_generator, seed_from_source
from ingest.sources import SourceFormatError
from tests.table_digest import TableSnapshot, table_snapshot

SMALL = GeneratorConfig(subscribers=40, days=12, seed=3)


def _count(settings: Settings, table: str = "DP_CDR_Data") -> int:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        return int(cursor.fetchone()[0])


def _small_chunks(settings: Settings) -> Settings:
    return settings.model_copy(update={"insert_chunk_rows": 100})


def _loaded(settings: Settings) -> tuple[TableSnapshot, ...]:
    """What a load leaves behind: the CDR rows (with their ids), the batch log, the sources."""
    return tuple(
        table_snapshot(settings, table)
        for table in ("DP_CDR_Data", "ingest_batches", "ingest_sources")
    )


def test_generator_seed_is_idempotent(db_settings: Settings) -> None:
    settings = _small_chunks(db_settings)
    expected = len(generate_cdr(SMALL))
    first = seed_from_generator(settings, SMALL, progress=False)
    after_first = _loaded(settings)
    second = seed_from_generator(settings, SMALL, progress=False)
    assert _loaded(settings) == after_first
    assert first.rows_inserted == expected == _count(settings)
    assert second.rows_inserted == 0 and second.batches_skipped == first.batches_total
    assert "already loaded" in second.describe()
    assert _count(settings, "ingest_batches") == first.batches_total == -(-expected // 100)


def test_other_generator_parameters_are_another_source(db_settings: Settings) -> None:
    seed_from_generator(db_settings, SMALL, progress=False)
    other = SMALL.model_copy(update={"seed": 4})
    seed_from_generator(db_settings, other, progress=False)
    assert _count(db_settings) == len(generate_cdr(SMALL)) + len(generate_cdr(other))


def test_interrupted_load_resumes_without_duplicates(db_settings: Settings) -> None:
    settings = _small_chunks(db_settings)
    report = seed_from_generator(settings, SMALL, progress=False)
    # The resumed batches get new ids; the rows themselves must be the ones lost.
    complete = table_snapshot(settings, "DP_CDR_Data", exclude={"id"})
    with connection(settings) as conn, transaction(conn) as cursor:
        # Undo the last two batches as a crash before their commit would have left things.
        cursor.execute(
            "DELETE FROM DP_CDR_Data ORDER BY id DESC LIMIT %s",
            (report.rows_total - 100 * (report.batches_total - 2),),
        )
        cursor.execute(
            "DELETE FROM ingest_batches WHERE source_id = %s AND batch_no >= %s",
            (report.source_id, report.batches_total - 2),
        )
    resumed = seed_from_generator(settings, SMALL, progress=False)
    assert resumed.batches_skipped == report.batches_total - 2
    assert _count(settings) == report.rows_total
    assert table_snapshot(settings, "DP_CDR_Data", exclude={"id"}) == complete


def test_csv_seed_then_again(db_settings: Settings, tmp_path: Path) -> None:
    frame = generate_cdr(SMALL).drop(columns=["DP_DATA_VOLUME"])
    path = tmp_path / "history.csv.gz"
    frame.to_csv(path, index=False)
    first = seed_from_source(db_settings, str(path), progress=False)
    after_first = _loaded(db_settings)
    again = seed_from_source(db_settings, str(path), progress=False)
    assert first.rows_inserted == len(frame) == _count(db_settings)
    assert again.rows_inserted == 0
    assert _loaded(db_settings) == after_first
    with connection(db_settings) as conn, transaction(conn) as cursor:
        cursor.execute("SELECT COUNT(*) FROM DP_CDR_Data WHERE DP_DATA_VOLUME IS NULL")
        assert cursor.fetchone()[0] == len(frame)


def test_bad_csv_loads_nothing(db_settings: Settings, tmp_path: Path) -> None:
    frame = generate_cdr(SMALL)
    frame.loc[frame.index[-1], "DP_MOC_COUNT"] = -1  # one bad value in the last row
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(SourceFormatError, match="DP_MOC_COUNT has 1 bad value"):
        seed_from_source(db_settings, str(path), progress=False)
    assert _count(db_settings) == 0 and _count(db_settings, "ingest_sources") == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def gcs_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local GCS emulator with bucket `cdr-raw`; yields its URL."""
    server_module = pytest.importorskip("gcp_storage_emulator.server")
    port = _free_port()
    server = server_module.create_server(
        "127.0.0.1", port, in_memory=True, default_bucket="cdr-raw"
    )
    server.start()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
    try:
        yield url
    finally:
        server.stop()


@pytest.mark.slow
def test_gcs_seed_through_the_emulator(
    db_settings: Settings, gcs_emulator: str, tmp_path: Path
) -> None:
    from google.cloud import storage

    frame = generate_cdr(SMALL)
    path = tmp_path / "RawData.csv"
    frame.to_csv(path, index=False)
    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_emulator
    client = storage.Client.create_anonymous_client()
    client.bucket("cdr-raw").blob("exports/RawData.csv").upload_from_filename(str(path))

    report = seed_from_source(db_settings, "gs://cdr-raw/exports/RawData.csv", progress=False)
    assert report.rows_inserted == len(frame) == _count(db_settings)
    assert report.source_id.startswith("gcs-")
    after_first = _loaded(db_settings)
    again = seed_from_source(db_settings, "gs://cdr-raw/exports/RawData.csv", progress=False)
    assert again.rows_inserted == 0 and _count(db_settings) == len(frame)
    assert _loaded(db_settings) == after_first
    with connection(db_settings) as conn:
        assert sum(committed_batches(conn, report.source_id).values()) == len(frame)

    with pytest.raises(SourceFormatError, match="no such object"):
        seed_from_source(db_settings, "gs://cdr-raw/exports/absent.csv", progress=False)
