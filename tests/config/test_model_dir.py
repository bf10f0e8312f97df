"""MODEL_DIR: a local path (made absolute) or a URI of a scheme Spark's Hadoop can reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import ConfigError, load_settings


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("file:///shared/models/", "file:///shared/models"),
        ("hdfs://namenode:8020/models", "hdfs://namenode:8020/models"),
        ("hdfs:///models", "hdfs:///models"),
        ("s3a://bucket/models", "s3a://bucket/models"),
        ("gs://bucket/models", "gs://bucket/models"),
        ("/srv/models", "/srv/models"),
    ],
)
def test_model_dir_takes_a_path_or_a_supported_uri(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("MODEL_DIR", value)
    assert load_settings().model_dir == expected


def test_a_relative_model_dir_is_made_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODEL_DIR", "models")
    assert load_settings().model_dir == str(tmp_path / "models")
    assert load_settings(model_dir=tmp_path / "other").model_dir == str(tmp_path / "other")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("s3://bucket/models", "the scheme s3:// is not supported (Hadoop's S3 connector"),
        (
            "ftp://host/models",
            "the scheme ftp:// is not supported: use a path or a file://, hdfs://, s3a:// or "
            "gs:// URI",
        ),
        ("file://models", "a file:// URI names an absolute path"),
        ("s3a:///models", "a s3a:// URI names its bucket"),
        ("hdfs:///", "the URI names no folder"),
        (" ", "must be a folder path or a URI"),
    ],
)
def test_model_dir_rejects_what_no_executor_could_read(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    monkeypatch.setenv("MODEL_DIR", value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert f"MODEL_DIR has bad value {value!r}: {reason}" in message
    assert "\n" not in message
