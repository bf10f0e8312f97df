"""The versioned model folder: the fitted Spark pipeline, its card and its metrics.

models/<version>/pipeline/      the fitted PipelineModel (indexer, assembler, forest)
models/<version>/model.json     what scoring needs besides the pipeline (ModelCard)
models/<version>/metrics.json   held-out metrics, as printed by the model job
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from spark_jobs.calibration import PlattScaling
from spark_jobs.errors import NoModelError

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
    folder: Path, pipeline: PipelineModel, card: ModelCard, metrics: dict[str, Any]
) -> None:
    """Write the model folder, replacing an earlier save of the same version."""
    folder.mkdir(parents=True, exist_ok=True)
    pipeline.write().overwrite().save(str(folder / PIPELINE_FOLDER))
    (folder / CARD_FILE).write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (folder / METRICS_FILE).write_text(
        json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def load_model(folder: Path) -> tuple[PipelineModel, ModelCard]:
    """The fitted pipeline and card saved in ``folder``.

    Raises:
        NoModelError: the folder or one of its parts is missing.
    """
    from pyspark.ml import PipelineModel

    card_path = folder / CARD_FILE
    if not card_path.is_file() or not (folder / PIPELINE_FOLDER).is_dir():
        raise NoModelError(
            f"the model folder {folder} is missing or incomplete: train again with "
            "`python -m spark_jobs model`, or set MODEL_DIR to where the models are"
        )
    card = ModelCard.model_validate_json(card_path.read_text(encoding="utf-8"))
    return PipelineModel.load(str(folder / PIPELINE_FOLDER)), card
