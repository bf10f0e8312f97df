"""The batch stages the closed loop starts from: each a `python -m ...` command, run in turn."""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

from config.settings import Settings
from db.connection import connection

ROOT = Path(__file__).resolve().parent.parent
# 91 days, 2024-01-01 to 2024-03-31: the model trains on January and February (config.json's
# processed range); March is batch-scored, the monitoring's first analysis days.
SEED_DAYS = "91"


class StageFailed(RuntimeError):
    """A stage's command exited with an error; its own message is above."""


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def run(*args: str) -> None:
    """Run ``python <args>`` in the project folder; raise :class:`StageFailed` if it fails."""
    finished = subprocess.run([sys.executable, *args], cwd=ROOT, check=False)
    if finished.returncode != 0:
        raise StageFailed(f"`python {' '.join(args)}` exited with status {finished.returncode}")


def prepare_database() -> None:
    """A database server (the configured one or a project-local MariaDB) and the schema."""
    step("Database server")
    run("-m", "db", "server")
    step("Schema (versioned migrations)")
    run("-m", "db", "init")


def seed_history() -> None:
    step(f"Seed history: {SEED_DAYS} days of the synthetic CDR generator (idempotent)")
    run("-m", "ingest", "seed", "--days", SEED_DAYS)


def train() -> None:
    """The Spark analysis (raw CDRs -> Processed_Data) and the churn model."""
    step("Spark analysis: raw CDRs of config.json's range -> Processed_Data + Parquet")
    run("-m", "spark_jobs", "analysis")
    step("Churn model: features, time split, cross-validated forest, calibration, registry")
    run("-m", "spark_jobs", "model")


def batch_score(end: date) -> None:
    """Score the days after the model's test window up to ``end`` (the seeded history)."""
    step(f"Batch score: the days after the model's test window up to {end} -> model_predictions")
    run(*score_args(end))


def score_args(end: date) -> list[str]:
    """`python -m spark_jobs score` of the days after the model's test window to ``end``."""
    return ["-m", "spark_jobs", "score", "--end", end.isoformat()]


def history_end(settings: Settings, stream_id: str) -> date:
    """The last day before ``stream_id``'s first day, or, before it ran, the latest raw day."""
    from db.cdr import cdr_bounds
    from db.ingest_log import get_source

    with connection(settings) as conn:
        source = get_source(conn, stream_id)
        if source is not None and source.anchor_date is not None:
            return source.anchor_date.date() - timedelta(days=1)
        _, last, _ = cdr_bounds(conn)
    if last is None:
        raise StageFailed("DP_CDR_Data is empty: the seed did not run")
    return last.date()


def has_model(settings: Settings) -> bool:
    """Whether a current model is registered."""
    from db.models import current_model

    with connection(settings) as conn:
        return current_model(conn) is not None


def current_version(settings: Settings) -> str:
    """The current model's version."""
    from db.models import current_model

    with connection(settings) as conn:
        model = current_model(conn)
    if model is None:
        raise StageFailed("no model trained: run `python -m spark_jobs model`")
    return model.version


def max_cdr_id(settings: Settings) -> int:
    """The highest `DP_CDR_Data.id` (0 for an empty table)."""
    from db.cdr_stream import max_cdr_id as read

    with connection(settings) as conn:
        return read(conn)
