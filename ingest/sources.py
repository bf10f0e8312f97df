"""Where history comes from: a CSV (optionally gzipped) on disk or in Google Cloud Storage, and
what a stream continues.

:func:`validate_cdr_frame` is the one gate every file passes: it names each unknown or
malformed column and loads nothing when one is found. :func:`stream_base` picks what a new
stream continues: the seeded generator, or profiles of the last weeks of loaded history.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from db.cdr import recent_cdr
from db.connection import Connection
from db.history import history_loads
from db.schema import (
    CDR_COLUMNS,
    COUNT_COLUMNS,
    DATE_COLUMN,
    LABEL_COLUMN,
    MSISDN_MAX_LENGTH,
    SUBSCRIBER_COLUMN,
    USAGE_COLUMNS,
)
from ingest.generator import GeneratorConfig
from ingest.simulator import (
    PROFILE_DAYS,
    GeneratorBase,
    StreamBase,
    profile_base,
    simulated_anchor,
)

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = (DATE_COLUMN, SUBSCRIBER_COLUMN)
# A dump of DP_CDR_Data carries the table's own ids; the database assigns new ones.
IGNORED_COLUMNS = frozenset({"id"})
_GS_URI = re.compile(r"^gs://(?P<bucket>[a-z0-9][a-z0-9._-]{1,220})/(?P<name>.+)$")
_EXAMPLES = 3
_MAX_COUNT = 2**32 - 1  # INT UNSIGNED


class SourceFormatError(ValueError):
    """The file cannot be loaded as CDRs; the message names every offending column."""


@dataclass(frozen=True)
class ValidatedCdr:
    """A frame ready to insert, and what was filled in to get there."""

    frame: pd.DataFrame
    missing_usage_columns: tuple[str, ...]
    ignored_columns: tuple[str, ...]


def validate_cdr_frame(raw: pd.DataFrame) -> ValidatedCdr:
    """Check and convert a frame read as text into `CDR_COLUMNS` with proper types.

    Column names match case-insensitively and ignoring surrounding spaces. Missing usage
    columns and a missing label become NULL; `DP_DATE` and `DP_MSISDN` are required.

    Raises:
        SourceFormatError: unknown columns, missing required ones, or malformed values;
            the message names each column with examples of its bad values.
    """
    canonical = {name.lower(): name for name in CDR_COLUMNS}
    renamed: dict[str, str] = {}
    unknown: list[str] = []
    ignored: list[str] = []
    for column in raw.columns:
        key = str(column).strip().lower()
        if key in canonical:
            renamed[column] = canonical[key]
        elif key in IGNORED_COLUMNS:
            ignored.append(str(column))
        else:
            unknown.append(str(column))
    problems: list[str] = []
    if unknown:
        problems.append(
            "unknown column(s) "
            + ", ".join(repr(c) for c in unknown)
            + f"; expected some of: {', '.join(CDR_COLUMNS)}"
        )
    duplicated = sorted({v for v in renamed.values() if list(renamed.values()).count(v) > 1})
    if duplicated:
        problems.append(f"column(s) given twice: {', '.join(duplicated)}")
    missing_required = [c for c in REQUIRED_COLUMNS if c not in renamed.values()]
    if missing_required:
        problems.append(f"required column(s) missing: {', '.join(missing_required)}")
    if problems:
        raise SourceFormatError("; ".join(problems))

    frame = raw.rename(columns=renamed).drop(columns=ignored)
    out = pd.DataFrame(index=frame.index)
    out[DATE_COLUMN] = _parse(frame[DATE_COLUMN], DATE_COLUMN, problems, _dates, required=True)
    out[SUBSCRIBER_COLUMN] = _parse(
        frame[SUBSCRIBER_COLUMN], SUBSCRIBER_COLUMN, problems, _msisdns, required=True
    )
    missing_usage = tuple(c for c in USAGE_COLUMNS if c not in frame.columns)
    for column in USAGE_COLUMNS:
        if column in missing_usage:
            out[column] = pd.Series(pd.NA, index=frame.index, dtype="Float64")
        elif column in COUNT_COLUMNS:
            out[column] = _parse(frame[column], column, problems, _counts)
        else:
            out[column] = _parse(frame[column], column, problems, _amounts)
    if LABEL_COLUMN in frame.columns:
        out[LABEL_COLUMN] = _parse(frame[LABEL_COLUMN], LABEL_COLUMN, problems, _labels)
    else:
        out[LABEL_COLUMN] = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    if problems:
        raise SourceFormatError("malformed column(s): " + "; ".join(problems))
    return ValidatedCdr(out.reset_index(drop=True), missing_usage, tuple(ignored))


Converter = Callable[[pd.Series], tuple[pd.Series, pd.Series]]


def _parse(
    series: pd.Series,
    column: str,
    problems: list[str],
    convert: Converter,
    *,
    required: bool = False,
) -> pd.Series:
    """Convert one column, appending a description of its bad values to ``problems``."""
    text = series.astype("string").str.strip()
    blank = text.isna() | (text == "")
    values, bad = convert(text.where(~blank))
    bad = bad & ~blank
    if required:
        bad = bad | blank
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        examples = ", ".join(
            f"row {i + 2}: {'(empty)' if blank.iloc[i] else repr(text.iloc[i])}"
            for i in rows[:_EXAMPLES]
        )
        problems.append(f"{column} has {len(rows)} bad value(s) ({examples})")
    return values


def _dates(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    parsed = pd.to_datetime(text, errors="coerce", format="mixed")
    return parsed, parsed.isna()


def _msisdns(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    too_long = text.str.len() > MSISDN_MAX_LENGTH
    return text.astype(object), too_long.fillna(False).astype(bool)


def _numbers(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    numbers = pd.to_numeric(text, errors="coerce")
    bad = numbers.isna() | ~np.isfinite(numbers.astype("Float64").fillna(0)) | (numbers < 0)
    return numbers.astype("Float64"), bad.fillna(True).astype(bool)


def _counts(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    numbers, bad = _numbers(text)
    whole = (numbers.fillna(0) % 1 == 0) & (numbers.fillna(0) <= _MAX_COUNT)
    bad = bad | ~whole.astype(bool)
    return numbers.where(~bad).round().astype("Int64"), bad


def _amounts(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    numbers, bad = _numbers(text)
    return numbers.where(~bad), bad


def _labels(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    numbers = pd.to_numeric(text, errors="coerce").astype("Float64")
    bad = ~numbers.isin([0, 1]).fillna(False).astype(bool)
    return numbers.where(~bad).astype("Int64"), bad


def read_cdr_csv(path: Path) -> ValidatedCdr:
    """Read and validate a CDR CSV (``.csv`` or ``.csv.gz``).

    Raises:
        SourceFormatError: the file is missing, unreadable or not valid CDRs.
    """
    if not path.is_file():
        raise SourceFormatError(f"{path}: no such file")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, EOFError) as exc:
        raise SourceFormatError(f"{path}: cannot be read as CSV: {exc}") from exc
    except pd.errors.EmptyDataError as exc:
        raise SourceFormatError(f"{path}: the file is empty") from exc
    try:
        validated = validate_cdr_frame(raw)
    except SourceFormatError as exc:
        raise SourceFormatError(f"{path}: {exc}") from exc
    if validated.frame.empty:
        raise SourceFormatError(f"{path}: the file has a header but no rows")
    return validated


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes: a load's identity, so loading it twice changes nothing."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def parse_gs_uri(uri: str) -> tuple[str, str]:
    """Split ``gs://bucket/object`` into bucket and object name."""
    match = _GS_URI.match(uri)
    if not match:
        raise SourceFormatError(f"{uri!r} is not a gs://bucket/object URI")
    return match["bucket"], match["name"]


def download_gcs_object(uri: str, target: Path) -> Path:
    """Download ``gs://bucket/object`` to ``target`` with google-cloud-storage.

    Standard credentials apply (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud, metadata server);
    with `STORAGE_EMULATOR_HOST` set, the emulator is used anonymously.
    """
    # Imported here: google-cloud-storage takes a second to import and only gs:// needs it.
    from google.api_core import exceptions as gcs_errors
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage

    bucket_name, object_name = parse_gs_uri(uri)
    try:
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            client = storage.Client.create_anonymous_client()
        else:
            client = storage.Client()
        blob = client.bucket(bucket_name).blob(object_name)
        suffix = ".csv.gz" if object_name.endswith(".gz") else ".csv"
        destination = target.with_suffix(suffix)
        blob.download_to_filename(str(destination))
    except gcs_errors.NotFound as exc:
        raise SourceFormatError(f"{uri}: no such object") from exc
    except gcs_errors.Forbidden as exc:
        raise SourceFormatError(f"{uri}: access denied with the current credentials") from exc
    except DefaultCredentialsError as exc:
        raise SourceFormatError(
            f"{uri}: no Google Cloud credentials found; set GOOGLE_APPLICATION_CREDENTIALS"
        ) from exc
    except gcs_errors.GoogleAPIError as exc:
        raise SourceFormatError(f"{uri}: download failed: {exc}") from exc
    log.info("downloaded %s (%d bytes)", uri, destination.stat().st_size)
    return destination


def stream_base(conn: Connection, base_until: datetime, max_rows: int) -> StreamBase:
    """What a stream whose history ends on ``base_until`` continues.

    The generator, when the latest seeding load was generated and the history ends at or
    after its last day (later days were streamed from it); otherwise profiles of the last
    :data:`~ingest.simulator.PROFILE_DAYS` days of the table (at most ``max_rows`` rows).

    Raises:
        EmptyBaseError: there is no history to continue.
        DatabaseError: the database cannot be read.
    """
    first_day = simulated_anchor(base_until).date()
    loads = history_loads(conn)
    if loads and loads[-1].kind == "generator":
        fields = GeneratorConfig.model_fields
        config = GeneratorConfig.model_validate(
            {key: value for key, value in loads[-1].params.items() if key in fields}
        )
        offset = (first_day - config.start_date).days
        if offset >= config.days:
            return GeneratorBase(config, offset)
    recent = recent_cdr(conn, base_until - timedelta(days=PROFILE_DAYS), base_until, max_rows)
    return profile_base(recent, first_day)
