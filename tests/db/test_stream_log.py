"""The stream's prediction writes name only the columns a model fills."""

from __future__ import annotations

from typing import Any

import pytest

from db.models import PREDICTION_COLUMNS, written_columns
from db.stream_log import replace_predictions


def test_written_columns_keep_the_model_s_slots_in_table_order() -> None:
    columns = written_columns(("a", "b"), ("profile",))
    assert columns == (
        *PREDICTION_COLUMNS[: PREDICTION_COLUMNS.index("label") + 1],
        "f01",
        "f02",
        "c1",
    )
    assert written_columns((), ()) == PREDICTION_COLUMNS[: PREDICTION_COLUMNS.index("label") + 1]


@pytest.mark.parametrize("columns", [("subscriber", "model_version"), ("model_version", "bad")])
def test_replace_predictions_refuses_unknown_or_reordered_columns(columns: tuple[str, ...]) -> None:
    cursor: Any = None  # refused before any statement
    with pytest.raises(ValueError, match="not columns of model_predictions"):
        replace_predictions(cursor, [("v", "s")], columns)
