"""Cutting time-ordered predictions into chunks, computed once and shared with NannyML.

`chunk_bounds` is the one definition of the chunks: every NannyML calculator receives a
`PresortedChunker` built on it, and the realized metrics, calibration error and row counts use
the same bounds, so all figures of a chunk describe the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring.compute.nannyml_loader import Chunk, Chunker
from monitoring.compute.spec import Chunking

_DAYS_PER_WEEK = 7
# 1970-01-01, day 0 of datetime64[D], was a Thursday: day + 3 counts from a Monday.
_EPOCH_WEEKDAY = 3


@dataclass(frozen=True)
class ChunkBounds:
    """One chunk: a run of consecutive rows of a frame sorted by timestamp.

    Attributes:
        key: Readable name: ``2024-03-01`` (day), ``2024-02-26/2024-03-03`` (week),
            ``2024-03`` (month), ``[0:4999]`` (rows, both ends included).
        start: A period chunk covers ``[start, end)``; a size chunk runs from the timestamp of
            its first row to that of its last, both included.
        end: See ``start``.
        first_row: Position of the chunk's first row in the sorted frame.
        stop_row: Position just after its last row.
    """

    key: str
    start: pd.Timestamp
    end: pd.Timestamp
    first_row: int
    stop_row: int

    @property
    def rows(self) -> int:
        """Number of predictions in the chunk."""
        return self.stop_row - self.first_row


def chunk_bounds(timestamps: np.ndarray, chunking: Chunking) -> list[ChunkBounds]:
    """The chunks of a sorted timestamp column; periods without predictions have no chunk.

    Args:
        timestamps: ``datetime64[ns]`` values in ascending order, without missing values.
        chunking: By calendar period or by number of rows.

    Raises:
        ValueError: The timestamps are not sorted (a bug in the caller, not bad input).
    """
    if len(timestamps) > 1 and bool(np.any(timestamps[1:] < timestamps[:-1])):
        raise ValueError("chunk_bounds needs timestamps in ascending order")
    if chunking.size is not None:
        return _size_bounds(timestamps, chunking.size)
    assert chunking.period is not None
    return _period_bounds(timestamps, chunking.period)


def chunk_ids(bounds: list[ChunkBounds], rows: int) -> np.ndarray:
    """The position of each row's chunk in ``bounds``, for vectorised per-chunk aggregates."""
    sizes = np.fromiter((chunk.rows for chunk in bounds), dtype=np.int64, count=len(bounds))
    if int(sizes.sum()) != rows:
        raise ValueError(f"chunks hold {int(sizes.sum())} rows, the frame {rows}")
    return np.repeat(np.arange(len(bounds), dtype=np.int64), sizes)


def _size_bounds(timestamps: np.ndarray, size: int) -> list[ChunkBounds]:
    bounds = []
    for first in range(0, len(timestamps), size):
        stop = min(first + size, len(timestamps))
        bounds.append(
            ChunkBounds(
                key=f"[{first}:{stop - 1}]",
                start=pd.Timestamp(timestamps[first]),
                end=pd.Timestamp(timestamps[stop - 1]),
                first_row=first,
                stop_row=stop,
            )
        )
    return bounds


def _period_bounds(timestamps: np.ndarray, period: str) -> list[ChunkBounds]:
    if len(timestamps) == 0:
        return []
    days = timestamps.astype("datetime64[D]")
    if period == "D":
        starts = days
    elif period == "W":
        day_numbers = days.astype(np.int64)
        starts = (day_numbers - (day_numbers + _EPOCH_WEEKDAY) % _DAYS_PER_WEEK).astype(
            "datetime64[D]"
        )
    else:
        starts = timestamps.astype("datetime64[M]")
    firsts = np.flatnonzero(np.r_[True, starts[1:] != starts[:-1]])
    stops = np.r_[firsts[1:], len(timestamps)]
    bounds = []
    for first, stop in zip(firsts.tolist(), stops.tolist(), strict=True):
        start = starts[first]
        bounds.append(
            ChunkBounds(
                key=_period_key(start, period),
                start=pd.Timestamp(start),
                end=pd.Timestamp(start + 1 if period != "W" else start + _DAYS_PER_WEEK),
                first_row=first,
                stop_row=stop,
            )
        )
    return bounds


def _period_key(start: np.datetime64, period: str) -> str:
    if period == "W":
        last_day = start + (_DAYS_PER_WEEK - 1)
        return f"{start}/{last_day}"
    return str(start)


class PresortedChunker(Chunker):
    """A NannyML chunker that slices a frame already sorted by timestamp, along `chunk_bounds`.

    NannyML's own chunkers sort and re-index the whole frame on every call, and a run calls
    them once per calculator, per reference column and per metric: dozens of sorts of a
    million rows. Frames are sorted once in `monitoring.compute.prepare`; here each chunk is a
    slice.
    """

    def __init__(self, chunking: Chunking, timestamp_column: str) -> None:
        """Chunk along ``timestamp_column`` (sorted) as ``chunking`` says."""
        super().__init__(timestamp_column_name=timestamp_column)
        self.chunking = chunking

    def split(self, data: pd.DataFrame, columns: list[str] | None = None) -> list[Any]:
        """The chunks of ``data``, keeping only ``columns`` when given (NannyML's interface)."""
        timestamps = data[self.timestamp_column_name].to_numpy()
        chunks = []
        for index, bounds in enumerate(chunk_bounds(timestamps, self.chunking)):
            rows = data.iloc[bounds.first_row : bounds.stop_row]
            chunk = Chunk(
                key=bounds.key,
                data=rows if columns is None else rows[columns],
                start_datetime=bounds.start,
                end_datetime=bounds.end,
                start_index=bounds.first_row,
                end_index=bounds.stop_row - 1,
            )
            chunk.chunk_index = index
            chunks.append(chunk)
        return chunks

    def _split(self, data: pd.DataFrame) -> list[Any]:
        return self.split(data)
