"""The project's one settings object, and the validated JSON run configurations.

Settings come from the environment, then `.env`, then `.local/db.env` (written by
`python -m db server` when it starts a project-local MariaDB), then the defaults below.
Build them once at an entry point with :func:`load_settings` and pass them down.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_DB_ENV = PROJECT_ROOT / ".local" / "db.env"
_DB_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
# The URI schemes MODEL_DIR may use: Spark ships Hadoop's file:// and hdfs:// file systems;
# s3a:// and gs:// need their connector jars (hadoop-aws, gcs-connector) on the classpath.
MODEL_DIR_SCHEMES = ("file", "hdfs", "s3a", "gs")
_URI_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class ConfigError(ValueError):
    """A configuration file or setting is missing or invalid; the message says where."""


class Settings(BaseSettings):
    """Connection, service and path settings, read from `DB_*` and friends."""

    model_config = SettingsConfigDict(
        env_file=(PROJECT_ROOT / ".env", LOCAL_DB_ENV),
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    db_host: str = "127.0.0.1"
    db_port: int = Field(3306, gt=0, lt=65536)
    db_user: str = "root"
    db_password: SecretStr = SecretStr("")
    # It is written into CREATE/DROP DATABASE statements, where it cannot be bound.
    db_name: str = "RawData"
    db_socket: str | None = None
    db_connect_timeout: int = Field(5, gt=0)
    # When set, the endpoints that change state require `Authorization: Bearer <API_TOKEN>`.
    api_token: SecretStr | None = None
    # A service reports this in /health (random when unset): launchers set it to recognise
    # the process they started.
    instance_id: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")

    output_dir: Path = PROJECT_ROOT / "output"
    config_path: Path = PROJECT_ROOT / "config" / "config.json"
    query_params_path: Path = PROJECT_ROOT / "config" / "query_params.json"

    ingest_host: str = "127.0.0.1"
    ingest_port: int = Field(5000, gt=0, lt=65536)
    monitoring_host: str = "127.0.0.1"
    monitoring_port: int = Field(5001, gt=0, lt=65536)
    # A prediction's label counts as known once Processed_Data reaches this many days past
    # its date (the label says whether the subscriber churns within 14 days).
    monitoring_label_delay_days: int = Field(14, ge=0)
    # Chunks: by calendar period (D, W, M) unless a size in rows is set.
    monitoring_chunk_period: Literal["D", "W", "M"] = "D"
    monitoring_chunk_size: int | None = Field(None, gt=0)
    # Chunks with fewer rows are reported with a warning: their estimates are too noisy.
    monitoring_min_chunk_rows: int = Field(300, gt=0)
    # Performance alerts on a drop only ("lower"), or on a rise too ("both").
    monitoring_alert_direction: Literal["lower", "both"] = "lower"
    # 0: the reference is the model's test window. N > 0: once the labels of the first N days
    # of analysis predictions are known, those days become the reference (the model never
    # trained on them, and they come from the data it is deployed on). 14 on the scenario
    # benchmark: CBPE's ROC-AUC error 0.037 -> 0.011; 7 days raised data-quality false alarms.
    monitoring_reference_days: int = Field(14, ge=0)
    # An idle poll is one indexed query, so the poller can follow the stream closely.
    monitoring_poll_interval: float = Field(2, gt=0)
    monitoring_retry_max_backoff: float = Field(60, gt=0)
    # The poller writes the report files (plots: seconds each) at most this often, off its
    # loop; 0 after every run. The stored figures, the dashboard and /metrics are per run.
    monitoring_report_interval: float = Field(60, ge=0)
    # Seconds between the dashboard's checks for a newer run (it reloads on one); 0: never.
    monitoring_dashboard_refresh: float = Field(30, ge=0)

    # Upper bounds a client may ask of one stream: a typo must not fill the disk.
    stream_max_batch_size: int = Field(100_000, gt=0)
    stream_max_batches: int = Field(100_000, gt=0)
    stream_max_interval: float = Field(86_400, ge=0)
    # How long a batch keeps retrying through a database outage before the stream fails.
    stream_retry_max_seconds: float = Field(300, ge=0)
    stream_retry_initial_backoff: float = Field(0.5, gt=0)
    stream_retry_max_backoff: float = Field(30, gt=0)
    # A stream's statement that waits longer than this on the server fails and is retried, so
    # a hung server shows as `retrying` instead of freezing the stream.
    stream_statement_timeout: float = Field(15, gt=0)
    # One service writes a stream: it holds the stream's lease in the database, renewed as it
    # writes; a lease not renewed for this long (a crashed service) can be taken over.
    stream_lease_seconds: float = Field(60, gt=0)
    # Recent days of history the stream samples its subscribers from.
    stream_base_days: int = Field(7, gt=0)
    stream_base_max_rows: int = Field(200_000, gt=0)

    insert_chunk_rows: int = Field(10_000, gt=0)

    # The streaming query (`python -m spark_jobs stream`): how often it looks for new CDRs,
    # at most how many it admits per micro-batch, and where its checkpoint lives (default
    # OUTPUT_DIR/checkpoints/<DB_NAME>/stream: one per database, see `stream_checkpoint`).
    stream_trigger_seconds: float = Field(2, gt=0)
    stream_max_rows_per_trigger: int = Field(20_000, gt=0)
    stream_checkpoint_dir: Path | None = None

    # Spark: local[*] by default; any master (spark://, yarn, k8s://) by setting SPARK_MASTER.
    spark_master: str = "local[*]"
    spark_driver_memory: str = Field("4g", pattern=r"^\d+[kmgt]$")
    spark_executor_memory: str = Field("4g", pattern=r"^\d+[kmgt]$")
    # On a cluster master, how long a job waits for its first executor before it stops with
    # an error (a cluster too small for SPARK_EXECUTOR_MEMORY never grants one).
    spark_executor_wait_seconds: float = Field(120, gt=0)
    # Show Spark's own INFO lines (log4j profile, task binaries, ...); warnings always show.
    spark_verbose: bool = False
    # None: sized from the data by each job (about one partition per 250k rows, 2 at least).
    spark_shuffle_partitions: int | None = Field(None, gt=0)
    jdbc_jar: Path = Path("/usr/share/java/mariadb-java-client.jar")
    jdbc_fetch_size: int = Field(10_000, gt=0)
    jdbc_batch_size: int = Field(10_000, gt=0)
    jdbc_read_partitions: int = Field(4, gt=0)
    jdbc_write_partitions: int = Field(2, gt=0)
    # The versioned model folders: a path, or a URI every driver and executor reads
    # (file:///shared/models on a shared mount, hdfs://, s3a://bucket/..., gs://bucket/...).
    model_dir: str = str(PROJECT_ROOT / "models")
    # The churn model: see spark_jobs/model.py for how each is used.
    model_seed: int = Field(42, ge=0)
    model_test_fraction: float = Field(0.25, gt=0, lt=1)
    # Days left out between the train and test dates: a label looks this far ahead, so a
    # shorter gap would let training labels describe the test period.
    model_embargo_days: int = Field(14, ge=0)
    # Dates before the data's first date + this are not modelled: their windows are too short.
    model_min_history_days: int = Field(14, ge=1)
    model_calibration_fraction: float = Field(0.2, gt=0, lt=1)
    model_cv_folds: int = Field(3, ge=2)
    # Cross-validation runs on at most this many training rows (a subscriber sample).
    model_tuning_max_rows: int = Field(40_000, gt=0)

    @field_validator("db_name")
    @classmethod
    def _database_identifier(cls, value: str) -> str:
        if not _DB_NAME.fullmatch(value):
            raise ValueError("must be 1 to 64 letters, digits or underscores")
        return value

    @field_validator("model_dir", mode="before")
    @classmethod
    def _model_location(cls, value: Any) -> Any:
        if isinstance(value, Path):
            value = str(value)
        if not isinstance(value, str):
            return value  # pydantic reports the type
        return model_location(value)

    @property
    def stream_checkpoint(self) -> Path:
        """The streaming query's checkpoint folder: `STREAM_CHECKPOINT_DIR`, or one per
        database under the output folder."""
        if self.stream_checkpoint_dir is not None:
            return self.stream_checkpoint_dir
        return self.output_dir / "checkpoints" / self.db_name / "stream"

    def __repr__(self) -> str:
        # SecretStr already masks the password; keep the repr short for logs.
        return (
            f"Settings(db={self.db_user}@{self.db_host}:{self.db_port}/{self.db_name}, "
            f"output_dir={self.output_dir})"
        )


def model_location(value: str) -> str:
    """``MODEL_DIR`` checked: an absolute local path, or a URI of a scheme we support.

    Raises:
        ValueError: empty, an unsupported scheme, or a URI without its bucket or host.
    """
    value = value.strip()
    if not value:
        raise ValueError("must be a folder path or a URI")
    match = _URI_SCHEME.match(value)
    if match is None:
        # Absolute: executors and other processes do not share this process's folder.
        return str(Path(value).expanduser().absolute())
    scheme = match.group(1).lower()
    if scheme not in MODEL_DIR_SCHEMES:
        hint = " (Hadoop's S3 connector is s3a://)" if scheme in ("s3", "s3n") else ""
        *others, last = (f"{name}://" for name in MODEL_DIR_SCHEMES)
        raise ValueError(
            f"the scheme {scheme}:// is not supported{hint}: use a path or a "
            f"{', '.join(others)} or {last} URI"
        )
    rest = value[match.end() :]
    if not rest.strip("/"):
        raise ValueError(f"the URI names no folder: {scheme}://.../models")
    if scheme == "file" and not rest.startswith("/"):
        raise ValueError("a file:// URI names an absolute path: file:///shared/models")
    if scheme in ("s3a", "gs") and not rest.split("/", 1)[0]:
        raise ValueError(f"a {scheme}:// URI names its bucket: {scheme}://bucket/models")
    return value.rstrip("/")


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, raising :class:`ConfigError` when invalid.

    The error is one line naming each bad setting by its variable, e.g. ``DB_NAME``.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe("invalid settings", exc, variables=True)) from exc


class _DateRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _iso_date_only(cls, value: Any, info: ValidationInfo) -> Any:
        # Reject timestamps and numbers: the files hold calendar dates, YYYY-MM-DD.
        if info.field_name is None or cls.model_fields[info.field_name].annotation is not date:
            return value
        if isinstance(value, str):
            return date.fromisoformat(value)
        raise ValueError("expected a date as a 'YYYY-MM-DD' string")


class PipelineDates(_DateRange):
    """`config/config.json`: the raw range (analysis) and the processed range (model)."""

    start_date: date
    end_date: date
    processed_start: date
    processed_end: date
    # How the model job holds out its test rows: later dates ("time"), or a random
    # label-stratified share of the rows ("stratified", for single-snapshot data).
    split: Literal["time", "stratified"] = "time"

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _check_order(self.start_date, self.end_date, "start_date", "end_date")
        _check_order(self.processed_start, self.processed_end, "processed_start", "processed_end")
        return self


class QueryParams(_DateRange):
    """`config/query_params.json`: the date range of the exploratory analysis."""

    start_date: date
    end_date: date

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _check_order(self.start_date, self.end_date, "start_date", "end_date")
        return self


_M = TypeVar("_M", bound=BaseModel)


def _check_order(start: date, end: date, start_key: str, end_key: str) -> None:
    if start > end:
        raise ValueError(f"{start_key} ({start}) is after {end_key} ({end})")


def load_pipeline_dates(path: Path) -> PipelineDates:
    """Read and validate `config.json`; errors name the file, the key and the bad value."""
    return _validate(PipelineDates, path)


def load_query_params(path: Path) -> QueryParams:
    """Read and validate `query_params.json`; errors name the file, the key and the bad value."""
    return _validate(QueryParams, path)


def _validate(model: type[_M], path: Path) -> _M:
    try:
        return model.model_validate(_read_json(path))
    except ValidationError as exc:
        raise ConfigError(_describe(str(path), exc)) from exc


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc.msg} (line {exc.lineno})") from exc


def _describe(source: str, exc: ValidationError, *, variables: bool = False) -> str:
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "(file)"
        # Settings are named as the user sets them: environment variables, upper case.
        key = name.upper() if variables else f"key '{name}'"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            problems.append(f"{key} is missing")
        elif error["type"] == "extra_forbidden":
            problems.append(f"{key} is not recognised")
        elif error["loc"]:
            problems.append(f"{key} has bad value {error['input']!r}: {message}")
        else:
            problems.append(message)
    return f"{source}: " + "; ".join(problems)
