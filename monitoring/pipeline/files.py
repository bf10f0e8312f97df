"""Reading the file mode's inputs: prediction frames (CSV or Parquet) and the column mapping.

Every failure becomes an `InputError` naming the file, so the CLI can say what is wrong in one
line.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from config.web import validation_error
from monitoring.compute.spec import ColumnMapping
from monitoring.errors import InputError

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")


def load_mapping(path: Path) -> ColumnMapping:
    """The column mapping of a JSON file.

    Raises:
        InputError: The file is missing, is not JSON, or its keys or values are invalid
            (the message names them).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: the mapping must be a JSON object")
    try:
        return ColumnMapping.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: {validation_error(exc).message}") from exc


def read_frame(path: Path, columns: Collection[str] | None = None) -> pd.DataFrame:
    """A CSV or Parquet file (by its extension) as a DataFrame.

    Args:
        path: ``.csv``, ``.parquet`` or ``.pq``.
        columns: Read only these of the file's columns (those it lacks are simply absent, for
            the caller to report); None for all.

    Raises:
        InputError: The file is missing, has another extension, or cannot be parsed.
    """
    suffix = path.suffix.lower()
    if suffix not in CSV_SUFFIXES + PARQUET_SUFFIXES:
        raise InputError(f"{path}: expected a .csv or .parquet file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    wanted = None if columns is None else set(columns)
    try:
        if suffix in CSV_SUFFIXES:
            return pd.read_csv(path, usecols=None if wanted is None else wanted.__contains__)
        if wanted is None:
            frame = pd.read_parquet(path)
        else:
            present = pq.read_schema(path).names
            frame = pd.read_parquet(path, columns=[name for name in present if name in wanted])
        # Arrow's allocator keeps the conversion's scratch memory (~120 MB per million rows)
        # for reuse; the monitoring run that follows has no use for it.
        pa.default_memory_pool().release_unused()
        return frame
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        # pandas' ParserError, EmptyDataError and pyarrow's errors are ValueErrors or OSErrors.
        kind = "CSV" if suffix in CSV_SUFFIXES else "Parquet"
        raise InputError(f"{path}: cannot be read as {kind}: {_first_line(exc)}") from exc


def join_targets(
    analysis: pd.DataFrame, targets: pd.DataFrame, mapping: ColumnMapping
) -> pd.DataFrame:
    """The analysis with the labels of ``targets`` joined on the mapping's id column.

    A label in ``targets`` wins over one already in the analysis (labels arrive late, so the
    targets file is the newer news); analysis rows absent from ``targets`` keep theirs, or none.

    Raises:
        InputError: No id in the mapping, a column missing, or an id repeated in ``targets``.
    """
    if mapping.id is None:
        raise InputError("the mapping has no 'id' column to join the targets on")
    for frame_name, frame, needed in (
        ("analysis", analysis, [mapping.id]),
        ("targets", targets, [mapping.id, mapping.y_true]),
    ):
        missing = [name for name in needed if name not in frame.columns]
        if missing:
            raise InputError(f"the {frame_name} has no column {', '.join(map(repr, missing))}")
    repeated = targets[mapping.id].duplicated()
    if repeated.any():
        example = targets.loc[repeated, mapping.id].iloc[0]
        raise InputError(
            f"the targets repeat {int(repeated.sum()):,} ids (e.g. {example!r}): "
            "each prediction has one label"
        )
    labels = analysis[mapping.id].map(targets.set_index(mapping.id)[mapping.y_true])
    if mapping.y_true in analysis.columns:
        labels = labels.fillna(analysis[mapping.y_true])
    return analysis.assign(**{mapping.y_true: labels})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
