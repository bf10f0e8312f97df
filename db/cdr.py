"""Reads and writes of the raw CDR table and its daily summary."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from db.connection import Connection, Cursor, transaction
from db.errors import QueryError
from db.maintenance import load_cdr_csv
from db.schema import AMOUNT_COLUMNS, CDR_COLUMNS, DATE_COLUMN, SUBSCRIBER_COLUMN

_COLUMN_LIST = ", ".join(CDR_COLUMNS)
INSERT_CDR = (
    f"INSERT INTO DP_CDR_Data ({_COLUMN_LIST}) "  # noqa: S608 - constant column names
    f"VALUES ({', '.join(['%s'] * len(CDR_COLUMNS))})"
)
_INSERT_CDR_PREFIX = INSERT_CDR.split(" VALUES ")[0].encode() + b" VALUES "
_SELECT_BOUNDS = "SELECT MIN(DP_DATE), MAX(DP_DATE), COUNT(*) FROM DP_CDR_Data"
_SELECT_RECENT = (
    f"SELECT {_COLUMN_LIST} FROM DP_CDR_Data "  # noqa: S608 - constant column names
    "WHERE DP_DATE > %s AND DP_DATE <= %s ORDER BY id DESC LIMIT %s"
)
_COUNT_RANGE = "SELECT COUNT(*) FROM DP_CDR_Data WHERE DP_DATE >= %s AND DP_DATE < %s"
SUMMARY_COLUMNS = (
    "summary_date",
    "cdr_rows",
    "outgoing_calls",
    "outgoing_call_minutes",
    "data_purchases",
    "data_volume_mb",
)

Row = tuple[Any, ...]

_CSV_NULL = r"\N"
# Characters that make a string field need enclosing and escaping under `load_cdr_csv`'s
# FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' (escape character: backslash).
_CSV_SPECIAL = (",", '"', "\\", "\n", "\r", "\0")
# Backslash first: the others' escapes start with one.
_CSV_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\0", "\\0"))
_LOAD_WARNINGS = "SHOW WARNINGS LIMIT 3"


def frame_to_rows(frame: pd.DataFrame) -> list[Row]:
    """Rows of ``frame`` in `CDR_COLUMNS` order as plain Python values, missing values as None."""
    columns: list[list[Any]] = []
    for name in CDR_COLUMNS:
        series = frame[name]
        if name == DATE_COLUMN:
            # numpy turns microsecond datetime64 into datetime.datetime in C
            values = pd.to_datetime(series).to_numpy(dtype="datetime64[us]").astype(object).tolist()
        elif series.hasnans:
            values = series.astype(object).where(series.notna(), None).tolist()
        else:
            values = series.tolist()
        columns.append(values)
    return list(zip(*columns, strict=True))


def insert_cdr_rows(conn: Connection, cursor: Cursor, rows: Sequence[Row], chunk_rows: int) -> None:
    """Insert ``rows`` with multi-row statements of at most ``chunk_rows`` rows each.

    The caller owns the transaction. Chunking keeps one statement under the server's
    `max_allowed_packet` whatever the batch size.
    """
    # With the C extension, bind the values with the driver's own converter (the call
    # `executemany` makes) and join the rows directly: `executemany` then runs a regex
    # substitution per parameter, which measured ~45% of the insert time at 10k rows.
    # The converter takes any sequence, so one call binds a whole column: 11 calls per
    # chunk instead of one per row, which took ~35% off binding and joining 10k rows.
    prepare = getattr(conn, "prepare_for_mysql", None)
    if prepare is None:
        literal = _literal_binder(conn)
        for start in range(0, len(rows), chunk_rows):
            chunk = rows[start : start + chunk_rows]
            text = ",".join("(" + ",".join(map(literal, row)) + ")" for row in chunk)
            cursor.execute(_INSERT_CDR_PREFIX + text.encode("utf-8"))
        return
    for start in range(0, len(rows), chunk_rows):
        chunk = rows[start : start + chunk_rows]
        columns = [prepare(column) for column in zip(*chunk, strict=True)]
        values = b"),(".join(map(b",".join, zip(*columns, strict=True)))
        cursor.execute(_INSERT_CDR_PREFIX + b"(" + values + b")")


def _literal_binder(conn: Connection) -> Callable[[Any], str]:
    """SQL literals for the pure client, as fast as the C extension's binding.

    Its `executemany` costs more than the server's insert (~2x the C extension at 10k
    rows). The common types of a CDR row are formatted here; strings are escaped, and every
    other type converted, by the driver's own converter for the connection's SQL mode.
    """
    converter: Any = conn.converter
    sql_mode = conn.sql_mode

    def literal(value: Any) -> str:
        kind = type(value)
        if value is None:
            return "NULL"
        if kind is int:
            return str(value)
        if kind is float and math.isfinite(value):
            return repr(value)
        if kind is str:
            return "'" + converter.escape(value, sql_mode) + "'"
        if kind is datetime and value.tzinfo is None:
            return "'" + value.isoformat(" ") + "'"
        bound = converter.quote(converter.escape(converter.to_mysql(value), sql_mode))
        return bound.decode("utf-8") if isinstance(bound, bytes) else str(bound)

    return literal


def csv_column(series: pd.Series) -> list[str]:
    """One column's CSV fields: ``\\N`` for NULL, floats as their shortest exact repr."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        # numpy formats in C; MariaDB reads the ISO 'T' between date and time. Whole seconds,
        # as the DATETIME column keeps (and the INSERT path's literal is truncated to).
        stamps = np.datetime_as_string(series.to_numpy(dtype="datetime64[s]"), unit="s")
        return [_CSV_NULL if text == "NaT" else text for text in stamps.tolist()]
    values = series.tolist()
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        return _csv_strings(values)
    to_text: Callable[[Any], str] = repr if pd.api.types.is_float_dtype(series.dtype) else str
    if not series.hasnans:
        return list(map(to_text, values))
    # Nullable integers give pd.NA for a missing value, floats NaN (the one value != itself).
    return [_CSV_NULL if value is pd.NA or value != value else to_text(value) for value in values]


def _csv_strings(values: list[Any]) -> list[str]:
    texts = [_CSV_NULL if _missing(value) else str(value) for value in values]
    joined = "".join(texts)
    if not any(special in joined for special in _CSV_SPECIAL):
        return texts
    return [
        text if _missing(value) else f'"{_escaped(text)}"'
        for value, text in zip(values, texts, strict=True)
    ]


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value != value


def _escaped(text: str) -> str:
    for special, escape in _CSV_ESCAPES:
        text = text.replace(special, escape)
    return text


def csv_text(frame: pd.DataFrame) -> str:
    """``frame``'s `CDR_COLUMNS` as the headerless CSV `load_cdr_csv` reads.

    Measured on 10k simulator rows, file write included: ``DataFrame.to_csv`` takes 1.75x
    as long and the csv module over ``frame_to_rows`` tuples 2.4x (median of 30 paired runs).
    """
    columns = []
    for name in CDR_COLUMNS:
        series = frame[name]
        if name == DATE_COLUMN and not pd.api.types.is_datetime64_any_dtype(series.dtype):
            series = pd.to_datetime(series)
        columns.append(csv_column(series))
    return "\n".join(map(",".join, zip(*columns, strict=True))) + "\n"


def load_cdr_frame(cursor: Cursor, frame: pd.DataFrame, folder: Path) -> None:
    """Load ``frame``'s rows with LOAD DATA LOCAL INFILE, through a file in ``folder``.

    The caller owns the transaction, and its connection must allow local files from
    ``folder`` (``allow_local_infile_in_path``). The file is removed before this returns.

    Raises:
        QueryError: the server stored another number of rows than ``frame`` has, or had to
            adjust a value (LOAD DATA LOCAL turns refused rows into warnings; the caller's
            transaction then rolls back instead of keeping part of the batch).
    """
    handle, name = tempfile.mkstemp(prefix="batch_", suffix=".csv", dir=folder)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(csv_text(frame).encode("utf-8"))
        load_cdr_csv(cursor, path)
        loaded, warnings = cursor.rowcount, cursor.warning_count
        if loaded != len(frame) or warnings:
            cursor.execute(_LOAD_WARNINGS)
            detail = "; ".join(str(row[2]) for row in cursor.fetchall())
            raise QueryError(
                f"LOAD DATA stored {loaded} of {len(frame)} rows with {warnings} warnings: {detail}"
            )
    finally:
        path.unlink(missing_ok=True)


def cdr_bounds(conn: Connection) -> tuple[datetime | None, datetime | None, int]:
    """Earliest and latest `DP_DATE` and the row count of the raw table."""
    with transaction(conn) as cursor:
        cursor.execute(_SELECT_BOUNDS)
        first, last, count = cursor.fetchone()
    return first, last, int(count)


def count_cdr_rows(conn: Connection, start: datetime, end: datetime) -> int:
    """Rows with ``start <= DP_DATE < end``."""
    with transaction(conn) as cursor:
        cursor.execute(_COUNT_RANGE, (start, end))
        (count,) = cursor.fetchone()
    return int(count)


def recent_cdr(conn: Connection, after: datetime, until: datetime, limit: int) -> pd.DataFrame:
    """The newest rows (at most ``limit``) with ``after < DP_DATE <= until``, in `CDR_COLUMNS`."""
    with transaction(conn) as cursor:
        if hasattr(conn, "prepare_for_mysql"):  # the C extension reads rows in C
            cursor.execute(_SELECT_RECENT, (after, until, limit))
            rows = cursor.fetchall()
        else:
            rows = _fetch_recent_as_text(cursor, (after, until, limit))
    return pd.DataFrame(rows, columns=list(CDR_COLUMNS))


def _fetch_recent_as_text(cursor: Cursor, params: tuple[Any, ...]) -> list[Row]:
    """`_SELECT_RECENT`'s rows over the pure client, as the driver would return them.

    The pure client reads a packet per row and converts each value in Python: ~2.5 s for
    the ~80k rows of history a stream starts from, most of its start-up. The server joins
    the rows into a few long texts instead; each value is the text the server would send
    for it in a row (DOUBLEs too: the same formatting, checked over 45k random doubles),
    converted as the driver converts it, and strings travel in hex so no separator can
    occur in them.
    """
    cursor.execute(_GROUP_CONCAT_MAX)
    cursor.execute(_SELECT_RECENT_TEXT, params)
    chunks = [text for (text,) in cursor.fetchall()]
    if cursor.warning_count:  # a chunk was cut at group_concat_max_len
        raise QueryError("the recent CDR rows did not fit the text chunks they were read in")
    if not chunks:
        return []
    # Every line holds one field per column: one split, then every n-th field is a column.
    fields = ",".join(_as_str(chunk) for chunk in chunks).replace("\n", ",").split(",")
    width = len(CDR_COLUMNS)
    if len(fields) % width:
        raise QueryError("the recent CDR rows came back with a field too many or too few")
    columns = [fields[index::width] for index in range(width)]
    converted = [
        _convert_column(column, _TEXT_CONVERTERS[name])
        for name, column in zip(CDR_COLUMNS, columns, strict=True)
    ]
    return list(zip(*converted, strict=True))


def _as_str(value: str | bytes | bytearray) -> str:
    return value if isinstance(value, str) else bytes(value).decode("utf-8")


def _convert_column(values: Sequence[str], convert: Callable[[str], Any]) -> list[Any]:
    if _TEXT_NULL in values:
        return [None if value == _TEXT_NULL else convert(value) for value in values]
    return list(map(convert, values))


def _from_hex(value: str) -> str:
    return bytes.fromhex(value).decode("utf-8")


_TEXT_NULL = "N"  # neither a number, a datetime nor hex
_TEXT_CONVERTERS: dict[str, Callable[[str], Any]] = {
    name: datetime.fromisoformat
    if name == DATE_COLUMN
    else _from_hex
    if name == SUBSCRIBER_COLUMN
    else float
    if name in AMOUNT_COLUMNS
    else int
    for name in CDR_COLUMNS
}
# 4,096 rows of at most ~250 characters per chunk stay well inside this.
_GROUP_CONCAT_MAX = "SET SESSION group_concat_max_len = 4194304"
_SELECT_RECENT_TEXT = (
    "SELECT GROUP_CONCAT(line ORDER BY id DESC SEPARATOR '\\n') FROM ("  # noqa: S608 - constant column names
    "SELECT id, CONCAT_WS(',', "
    + ", ".join(
        f"IFNULL(HEX({name}), '{_TEXT_NULL}')"
        if name == SUBSCRIBER_COLUMN
        else f"IFNULL({name}, '{_TEXT_NULL}')"
        for name in CDR_COLUMNS
    )
    + ") AS line FROM DP_CDR_Data WHERE DP_DATE > %s AND DP_DATE <= %s "
    "ORDER BY id DESC LIMIT %s) AS recent "
    "GROUP BY id DIV 4096 ORDER BY id DIV 4096 DESC"
)


def daily_summary(conn: Connection, start: date, end: date | None = None) -> pd.DataFrame:
    """Refresh `DailySummary` from ``start`` on (`GetDailyCDRDataBatch`); return those days.

    The procedure refreshes every day from ``start`` on; ``end``, when given, only limits
    the days returned.
    """
    with transaction(conn) as cursor:
        cursor.callproc("GetDailyCDRDataBatch", (start,))
        rows: list[Any] = []
        for result in cursor.stored_results():
            rows.extend(result.fetchall())
    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    for column in ("outgoing_call_minutes", "data_volume_mb"):
        frame[column] = frame[column].astype(float)
    if end is not None:
        frame = frame[frame["summary_date"] <= end].reset_index(drop=True)
    return frame
