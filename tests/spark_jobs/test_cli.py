"""`python -m spark_jobs`: flags, date overrides, exit codes, and the database check that
runs before any JVM starts (these tests never start Spark)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import spark_jobs.session
from config.cli import UsageError
from config.settings import PipelineDates
from spark_jobs.__main__ import main as spark_main
from spark_jobs.__main__ import with_overrides

DATES = PipelineDates.model_validate(
    {
        "start_date": "2024-01-01",
        "end_date": "2024-04-30",
        "processed_start": "2024-01-01",
        "processed_end": "2024-02-29",
    }
)


@pytest.fixture
def no_spark(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records (instead of starting) every SparkSession the CLI asks for."""
    started: list[str] = []

    def refuse(settings: Any, app_name: str) -> Any:
        started.append(app_name)
        raise AssertionError("the CLI started Spark")

    monkeypatch.setattr(spark_jobs.session, "build_spark_session", refuse)
    return started


def test_start_and_end_override_the_job_s_own_keys() -> None:
    analysis = with_overrides(DATES, "analysis", date(2024, 2, 1), None)
    assert (analysis.start_date, analysis.end_date) == (date(2024, 2, 1), date(2024, 4, 30))
    assert analysis.processed_start == DATES.processed_start
    model = with_overrides(DATES, "model", None, date(2024, 2, 10))
    assert (model.processed_start, model.processed_end) == (date(2024, 1, 1), date(2024, 2, 10))
    assert (model.start_date, model.end_date) == (DATES.start_date, DATES.end_date)
    assert with_overrides(DATES, "model", None, None) == DATES
    with pytest.raises(UsageError, match="processed_start/processed_end"):
        with_overrides(DATES, "model", date(2024, 3, 5), None)


def test_help_shows_each_flag_s_default(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("analysis", "model", "score"):
        with pytest.raises(SystemExit) as exit_info:
            spark_main([command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "--config" in text and "--start" in text and "--end" in text
        assert "(default: " in text


def test_a_wrong_password_fails_before_spark_starts(
    monkeypatch: pytest.MonkeyPatch, no_spark: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DB_PASSWORD", "not-the-password")
    for command in ("analysis", "model", "score"):
        assert spark_main([command]) == 1
        assert "refused the connection" in capsys.readouterr().err
    assert no_spark == []


def test_an_unreachable_server_exits_1_and_a_bad_db_name_exits_2(
    monkeypatch: pytest.MonkeyPatch, no_spark: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DB_PORT", "4199")  # in this suite's port range; nothing listens
    assert spark_main(["analysis"]) == 1
    assert "unreachable" in capsys.readouterr().err
    monkeypatch.delenv("DB_PORT")
    monkeypatch.setenv("DB_NAME", "my-db")
    assert spark_main(["model"]) == 2
    assert "DB_NAME" in capsys.readouterr().err
    assert no_spark == []


def test_usage_mistakes_exit_2_before_spark(
    tmp_path: Path, no_spark: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**DATES.model_dump(mode="json")}))
    assert spark_main(["analysis", "--config", str(config), "--start", "2024-05-02"]) == 2
    assert "start_date/end_date" in capsys.readouterr().err
    assert spark_main(["model", "--start", "2024-02-02", "--end", "2024-02-01"]) == 2
    assert "is after --end" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert spark_main(["score", "--config", str(broken)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert no_spark == []
