"""The versioned model folder: the fitted Spark pipeline, its card and its metrics.

models/<version>/pipeline/      the fitted PipelineModel (indexer, assembler, forest)
models/<version>/model.json     what scoring needs besides the pipeline (ModelCard)
models/<version>/metrics.json   held-out metrics, as printed by the model job

The folder is a local path or a URI (``MODEL_DIR``): Spark ML writes the pipeline there,
and :mod:`spark_jobs.storage` the card and the metrics, so the whole folder lands where
the driver and the executors both read it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from spark_jobs.calibration import PlattScaling
from spark_jobs.errors import NoModelError
from spark_jobs.storage import (
    Location,
    hadoop_uri,
    is_dir,
    is_file,
    join,
    read_text,
    write_text,
)

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

PIPELINE_FOLDER = "pipeline"
CARD_FILE = "model.json"
METRICS_FILE = "metrics.json"


class ModelCard(BaseModel):
    """How to use a fitted pipeline: its inputs, calibration and decision threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    feature_set_version: int
    continuous_features: tuple[str, ...]
    categorical_features: tuple[str, ...]
    min_history_days: int
    long_window_days: int
    platt_slope: float
    platt_intercept: float
    threshold: float

    @property
    def calibration(self) -> PlattScaling:
        return PlattScaling(self.platt_slope, self.platt_intercept)


def save_model(
    folder: Location, pipeline: PipelineModel, card: ModelCard, metrics: dict[str, Any]
) -> None:
    """Write the model folder, replacing an earlier save of the same version.

    Raises:
        StorageError: a file cannot be written at ``folder``.
    """
    pipeline.write().overwrite().save(hadoop_uri(join(folder, PIPELINE_FOLDER)))
    write_text(join(folder, CARD_FILE), card.model_dump_json(indent=2) + "\n")
    write_text(join(folder, METRICS_FILE), json.dumps(metrics, indent=2, sort_keys=True) + "\n")


def load_model(folder: Location) -> tuple[PipelineModel, ModelCard]:
    """The fitted pipeline and card saved in ``folder`` (a path or a URI).

    Raises:
        NoModelError: the folder or one of its parts is missing.
        StorageError: the folder's file system cannot be reached.
    """
    from pyspark.ml import PipelineModel

    card_file = join(folder, CARD_FILE)
    if not is_file(card_file) or not is_dir(join(folder, PIPELINE_FOLDER)):
        raise NoModelError(
            f"the model folder {folder} is missing or incomplete: train again with "
            "`python -m spark_jobs model`, or set MODEL_DIR to where the models are"
        )
    card = ModelCard.model_validate_json(read_text(card_file))
    return PipelineModel.load(hadoop_uri(join(folder, PIPELINE_FOLDER))), card
