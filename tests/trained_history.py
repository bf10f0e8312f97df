"""One analysed history with a trained model, built once per test session and copied per user.

Training costs tens of seconds; the streaming tests and the closed-loop test start from the
same small history and model. The `trained_history` fixture (tests/conftest.py) builds it in a
database of its own, which no test writes: a test copies it into its own database with
`TrainedHistory.copy_into` and writes there. The model folder stays where it was trained
(the copied registry names it) and is only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from config.settings import PipelineDates, Settings
from db.clone import copy_tables
from db.connection import connection, transaction

# 400 subscribers from 2024-01-01. The generator's days do not depend on how many follow, so
# the history is the first 43 days and the later days arrive, in the tests, as new rows.
SUBSCRIBERS = 400
GENERATED_DAYS = 50
SEED = 5
FIRST_NEW_DAY = date(2024, 2, 13)
DATES = PipelineDates.model_validate(
    {
        "start_date": "2024-01-01",
        "end_date": "2024-02-12",
        "processed_start": "2024-01-01",
        "processed_end": "2024-02-08",
    }
)
# Small and quick, as everywhere in the tests but the tests of tuning itself.
MODEL_SETTINGS = {"model_embargo_days": 7, "model_cv_folds": 2, "model_tuning_max_rows": 3000}
# Every table of the schema, parents before children (foreign keys); schema_migrations is
# written by the migration itself.
TABLES = (
    "DP_CDR_Data",
    "ingest_sources",
    "ingest_batches",
    "DailySummary",
    "Processed_Data",
    "model_registry",
    "model_predictions",
    "monitoring_runs",
    "monitoring_results",
    "monitoring_drift",
    "monitoring_watermark",
    "stream_leases",
    "stream_batches",
)


@dataclass(frozen=True)
class TrainedHistory:
    """The generated rows, and the settings of the (read-only) database holding the history
    up to ``FIRST_NEW_DAY``, analysed over ``DATES``, with a current model."""

    frame: pd.DataFrame
    settings: Settings

    def copy_into(self, target: Settings) -> None:
        """Copy every row into ``target``'s database (migrated and empty)."""
        with connection(self.settings) as conn, transaction(conn) as cursor:
            cursor.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"
            )
            names = {_text(name) for (name,) in cursor.fetchall()} - {"schema_migrations"}
        # A table added by a later migration must be listed, not silently left empty.
        assert names == set(TABLES), f"TABLES is not the schema's tables: {sorted(names)}"
        with connection(target) as conn:
            copy_tables(conn, self.settings.db_name, TABLES)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)
