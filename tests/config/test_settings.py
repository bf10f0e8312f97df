"""Settings and the JSON run configurations: real dates, ordered ranges, errors that name things."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from config.settings import (
    PROJECT_ROOT,
    ConfigError,
    load_pipeline_dates,
    load_query_params,
    load_settings,
)


def _write(tmp_path: Path, payload: object, name: str = "c.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(payload) if not isinstance(payload, str) else payload)
    return path


def test_shipped_configs_are_valid() -> None:
    dates = load_pipeline_dates(PROJECT_ROOT / "config" / "config.json")
    params = load_query_params(PROJECT_ROOT / "config" / "query_params.json")
    assert dates.start_date <= dates.end_date
    assert dates.processed_start <= dates.processed_end
    assert params.start_date == date(2024, 1, 1)


def test_pipeline_dates_parse(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "start_date": "2024-01-01",
            "end_date": "2024-02-01",
            "processed_start": "2024-01-05",
            "processed_end": "2024-01-31",
        },
    )
    dates = load_pipeline_dates(path)
    assert (dates.start_date, dates.processed_end) == (date(2024, 1, 1), date(2024, 1, 31))


def test_impossible_date_names_file_key_and_value(tmp_path: Path) -> None:
    # The seed project shipped this very value.
    path = _write(tmp_path, {"start_date": "2024-25-26", "end_date": "2024-03-01"})
    with pytest.raises(ConfigError) as error:
        load_query_params(path)
    message = str(error.value)
    assert str(path) in message and "start_date" in message and "2024-25-26" in message


def test_start_after_end_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, {"start_date": "2024-03-02", "end_date": "2024-03-01"})
    with pytest.raises(ConfigError, match=r"start_date \(2024-03-02\) is after end_date"):
        load_query_params(path)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"start_date": "2024-01-01"}, "key 'end_date' is missing"),
        ({"start_date": "2024-01-01", "end_date": "2024-01-02", "x": 1}, "key 'x' is not recog"),
        ({"start_date": 20240101, "end_date": "2024-01-02"}, "key 'start_date' has bad value"),
        ({"start_date": "2024-01-01T10:00", "end_date": "2024-01-02"}, "start_date"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_query_params(tmp_path: Path, payload: object, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_query_params(_write(tmp_path, payload))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_pipeline_dates(tmp_path / "absent.json")


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PORT", "3399")
    monkeypatch.setenv("DB_NAME", "Other_db")
    monkeypatch.setenv("DB_PASSWORD", "s3cret-value")
    settings = load_settings()
    assert (settings.db_port, settings.db_name) == (3399, "Other_db")
    assert settings.db_password.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(settings) and "s3cret-value" not in str(settings)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DB_PORT", "0"), ("DB_PORT", "many"), ("DB_NAME", "x; DROP"), ("STREAM_MAX_BATCHES", "0")],
)
def test_invalid_environment(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    # One line, naming the variable as the user set it, and its value.
    assert f"{variable} has bad value {value!r}" in message
    assert "\n" not in message
