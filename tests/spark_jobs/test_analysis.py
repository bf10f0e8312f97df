"""The analysis job against the real database: ranges, re-runs, empty and invalid ranges."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from config.settings import PipelineDates, Settings
from db.connection import connection, transaction
from db.processed import count_processed
from ingest.generator import GeneratorConfig, generate_cdr
from ingest.seeding import seed_from_generator
from spark_jobs.__main__ import main as spark_main
from spark_jobs.analysis import EmptyRangeError, run_analysis

HISTORY = GeneratorConfig(subscribers=40, days=20, seed=11)


def _dates(start: str, end: str) -> PipelineDates:
    return PipelineDates(
        start_date=start,
        end_date=end,
        processed_start=start,
        processed_end=end,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def seeded(module_db_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = module_db_settings.model_copy(
        update={"output_dir": tmp_path_factory.mktemp("out"), "jdbc_read_partitions": 3}
    )
    seed_from_generator(settings, HISTORY, progress=False)
    return settings


def _expected_subscriber_days(start: date, end: date) -> int:
    frame = generate_cdr(HISTORY)
    days = frame["DP_DATE"].dt.date
    chosen = frame[(days >= start) & (days <= end)]
    return len(chosen.groupby([chosen["DP_DATE"].dt.date, "DP_MSISDN"]))


def _processed_rows(settings: Settings) -> list[tuple[Any, ...]]:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute("SELECT * FROM Processed_Data ORDER BY `Date`, `User`")
        return list(cursor.fetchall())


@pytest.mark.slow
def test_analysis_writes_the_range_and_reruns_replace_it(spark: Any, seeded: Settings) -> None:
    dates = _dates("2024-01-03", "2024-01-12")
    first = run_analysis(spark, seeded, dates)
    expected = _expected_subscriber_days(date(2024, 1, 3), date(2024, 1, 12))
    assert first.processed_rows == expected
    with connection(seeded) as conn:
        assert count_processed(conn, date(2024, 1, 1), date(2024, 12, 31)) == expected
    parquet = spark.read.parquet(first.parquet_path)
    assert parquet.count() == expected
    stored = _processed_rows(seeded)

    again = run_analysis(spark, seeded, dates)
    assert _processed_rows(seeded) == stored  # the same rows, value for value
    wider = run_analysis(spark, seeded, _dates("2024-01-10", "2024-01-15"))
    with connection(seeded) as conn:
        total = count_processed(conn, date(2024, 1, 1), date(2024, 12, 31))
    assert again.processed_rows == expected
    assert total == _expected_subscriber_days(date(2024, 1, 3), date(2024, 1, 15))
    assert wider.processed_rows == _expected_subscriber_days(date(2024, 1, 10), date(2024, 1, 15))


@pytest.mark.slow
def test_processed_totals_match_the_raw_rows(spark: Any, seeded: Settings) -> None:
    run_analysis(spark, seeded, _dates("2024-01-01", "2024-01-20"))
    with connection(seeded) as conn, transaction(conn) as cursor:
        cursor.execute("SELECT SUM(DP_MOC_COUNT), ROUND(SUM(DP_DATA_VOLUME), 2) FROM DP_CDR_Data")
        raw = cursor.fetchone()
        cursor.execute(
            "SELECT SUM(M_Out_Call_Count), ROUND(SUM(M_Data_Sum), 2) FROM Processed_Data"
        )
        processed = cursor.fetchone()
    assert tuple(float(v) for v in raw) == tuple(float(v) for v in processed)


def test_empty_range_writes_nothing(spark: Any, seeded: Settings) -> None:
    with connection(seeded) as conn:
        before = count_processed(conn, date(2000, 1, 1), date(2100, 1, 1))
    with pytest.raises(EmptyRangeError, match="no rows dated 2030-01-01 to 2030-01-31"):
        run_analysis(spark, seeded, _dates("2030-01-01", "2030-01-31"))
    with connection(seeded) as conn:
        assert count_processed(conn, date(2000, 1, 1), date(2100, 1, 1)) == before


def _config(tmp_path: Path, **values: str) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    return path


def test_cli_rejects_invalid_dates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(
        tmp_path,
        start_date="2024-25-26",
        end_date="2024-01-02",
        processed_start="2024-01-01",
        processed_end="2024-01-02",
    )
    assert spark_main(["analysis", "--config", str(path)]) == 2
    assert "start_date" in capsys.readouterr().err
