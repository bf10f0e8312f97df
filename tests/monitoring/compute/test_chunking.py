"""Chunk bounds: periods without predictions have no chunk, sizes keep the remainder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.compute.chunking import PresortedChunker, chunk_bounds, chunk_ids
from monitoring.compute.spec import Chunking


def _times(*texts: str) -> np.ndarray:
    return pd.to_datetime(list(texts)).to_numpy(dtype="datetime64[ns]")


TIMES = _times(
    "2024-02-28 23:59",  # Wednesday
    "2024-02-29 08:00",
    "2024-02-29 09:00",
    "2024-03-03 10:00",  # Sunday
    "2024-03-04 00:00",  # Monday
)


def test_daily_chunks_skip_days_without_predictions() -> None:
    bounds = chunk_bounds(TIMES, Chunking(period="D"))

    assert [b.key for b in bounds] == ["2024-02-28", "2024-02-29", "2024-03-03", "2024-03-04"]
    assert [b.rows for b in bounds] == [1, 2, 1, 1]
    assert bounds[1].start == pd.Timestamp("2024-02-29")
    assert bounds[1].end == pd.Timestamp("2024-03-01")


def test_weeks_run_monday_to_sunday() -> None:
    bounds = chunk_bounds(TIMES, Chunking(period="W"))

    assert [b.key for b in bounds] == ["2024-02-26/2024-03-03", "2024-03-04/2024-03-10"]
    assert [b.rows for b in bounds] == [4, 1]
    assert bounds[0].end == pd.Timestamp("2024-03-04")


def test_months() -> None:
    bounds = chunk_bounds(TIMES, Chunking(period="M"))

    assert [(b.key, b.rows) for b in bounds] == [("2024-02", 3), ("2024-03", 2)]
    assert bounds[0].end == pd.Timestamp("2024-03-01")


def test_size_chunks_keep_the_remainder_and_span_their_rows() -> None:
    bounds = chunk_bounds(TIMES, Chunking(size=2))

    assert [(b.key, b.first_row, b.stop_row) for b in bounds] == [
        ("[0:1]", 0, 2),
        ("[2:3]", 2, 4),
        ("[4:4]", 4, 5),
    ]
    assert bounds[1].start == pd.Timestamp("2024-02-29 09:00")
    assert bounds[1].end == pd.Timestamp("2024-03-03 10:00")


def test_unsorted_timestamps_are_a_bug() -> None:
    with pytest.raises(ValueError, match="ascending"):
        chunk_bounds(TIMES[::-1], Chunking())


def test_chunk_ids_number_each_row() -> None:
    bounds = chunk_bounds(TIMES, Chunking(period="D"))

    assert chunk_ids(bounds, len(TIMES)).tolist() == [0, 1, 1, 2, 3]


def test_the_nannyml_chunker_slices_along_the_same_bounds() -> None:
    frame = pd.DataFrame({"ts": TIMES, "value": range(5)})

    chunks = PresortedChunker(Chunking(period="D"), "ts").split(frame, columns=["value"])

    assert [chunk.data["value"].tolist() for chunk in chunks] == [[0], [1, 2], [3], [4]]
    assert [chunk.chunk_index for chunk in chunks] == [0, 1, 2, 3]
    assert [(chunk.start_index, chunk.end_index) for chunk in chunks][1] == (1, 2)
