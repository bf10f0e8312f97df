"""The model folder's files at a local path and at a URI (Hadoop's file:// file system)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pyspark.ml import Pipeline
from pyspark.ml.feature import VectorAssembler

from spark_jobs import storage
from spark_jobs.artifacts import CARD_FILE, METRICS_FILE, ModelCard, load_model, save_model
from spark_jobs.errors import NoModelError
from spark_jobs.storage import StorageError

CARD = ModelCard(
    version="churn-test",
    feature_set_version=1,
    continuous_features=("x",),
    categorical_features=(),
    min_history_days=1,
    long_window_days=1,
    platt_slope=1.5,
    platt_intercept=-0.25,
    threshold=0.4,
)


def test_join_keeps_a_uri_a_uri() -> None:
    assert storage.join("file:///shared/models/", "v1", "model.json") == (
        "file:///shared/models/v1/model.json"
    )
    assert storage.join("s3a://bucket/models", "v1") == "s3a://bucket/models/v1"
    assert storage.join(Path("/srv/models"), "v1") == "/srv/models/v1"
    assert storage.is_uri("hdfs://namenode:8020/m") and not storage.is_uri("/srv/models")
    assert not storage.is_uri("C:\\models")


def test_spark_reads_a_path_as_a_local_file_never_the_default_file_system(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert storage.hadoop_uri("models/v 1") == f"file://{tmp_path}/models/v 1"
    assert storage.hadoop_uri("hdfs://namenode/models") == "hdfs://namenode/models"


@pytest.mark.usefixtures("spark")
@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_text_round_trip_creates_folders_and_replaces(tmp_path: Path, as_uri: bool) -> None:
    base = tmp_path.as_uri() if as_uri else str(tmp_path)
    file = storage.join(base, "a", "b", "card.json")
    storage.write_text(file, "first, longer text\n")
    storage.write_text(file, "zweite — second\n")
    assert storage.read_text(file) == "zweite — second\n"
    # The bytes land in the local folder the URI names.
    assert (tmp_path / "a" / "b" / "card.json").read_text(encoding="utf-8") == "zweite — second\n"
    assert storage.is_file(file) and not storage.is_dir(file)
    assert storage.is_dir(storage.join(base, "a")) and not storage.is_file(storage.join(base, "a"))
    assert not storage.is_file(storage.join(base, "absent"))
    assert not storage.is_dir(storage.join(base, "absent"))


@pytest.mark.usefixtures("spark")
@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_a_missing_file_is_a_storage_error_naming_it(tmp_path: Path, as_uri: bool) -> None:
    file = storage.join(tmp_path.as_uri() if as_uri else str(tmp_path), "absent.json")
    with pytest.raises(StorageError, match=f"cannot read {file}"):
        storage.read_text(file)


@pytest.mark.usefixtures("spark")
def test_a_scheme_without_its_connector_says_which_jar_is_missing() -> None:
    with pytest.raises(StorageError) as error:
        storage.write_text("s3a://no-such-bucket/models/model.json", "{}")
    message = str(error.value)
    assert message.startswith("cannot write s3a://no-such-bucket/models/model.json: ")
    assert "hadoop-aws" in message


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_a_model_folder_saved_at_a_uri_loads_back(spark: Any, tmp_path: Path, as_uri: bool) -> None:
    frame = spark.createDataFrame([(1.0,), (2.0,)], "x double")
    fitted = Pipeline(stages=[VectorAssembler(inputCols=["x"], outputCol="v")]).fit(frame)
    # A space: written by Python (the card) and by Hadoop (the pipeline) at the same place.
    base = tmp_path.as_uri() if as_uri else str(tmp_path)
    folder = storage.join(base, "my models", "churn-test")
    save_model(folder, fitted, CARD, {"test": {"roc_auc": 0.75}})

    on_disk = tmp_path / "my models" / "churn-test"
    assert (on_disk / "pipeline" / "metadata").is_dir()
    assert json.loads((on_disk / METRICS_FILE).read_text()) == {"test": {"roc_auc": 0.75}}
    assert ModelCard.model_validate_json((on_disk / CARD_FILE).read_text()) == CARD
    pipeline, card = load_model(folder)
    assert card == CARD
    assert [row.v[0] for row in pipeline.transform(frame).collect()] == [1.0, 2.0]


@pytest.mark.usefixtures("spark")
@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_an_incomplete_model_folder_is_no_model(tmp_path: Path, as_uri: bool) -> None:
    folder = storage.join(tmp_path.as_uri() if as_uri else str(tmp_path), "churn-test")
    storage.write_text(storage.join(folder, CARD_FILE), CARD.model_dump_json())
    with pytest.raises(NoModelError, match="missing or incomplete"):
        load_model(folder)
