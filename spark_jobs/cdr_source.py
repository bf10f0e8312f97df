"""A Structured Streaming source over new `DP_CDR_Data` rows (Spark's Python data source API).

Spark has no MySQL streaming source, so this one is written with
:class:`pyspark.sql.datasource.DataSourceStreamReader`:

* an offset is ``{"id": n}``: every row with ``id <= n`` has been admitted;
* :meth:`CdrStreamReader.latestOffset` reads the committed ``MAX(id)`` and admits it only once
  it is final (see below), capped at ``maxRowsPerTrigger`` ids after the start;
* :meth:`CdrStreamReader.partitions` splits ``(start, end]`` into ``numPartitions`` id slices,
  and :meth:`CdrStreamReader.read` fetches a slice and returns it as Arrow record batches.

**Out-of-order commits.** Auto-increment ids are handed out when rows are inserted, not
when they commit: with two writers, a transaction can still hold ids 100-199 when another
has committed 200-299. Reading up to ``MAX(id)`` = 299 then would skip 100-199 for good.
So each trigger first counts the committed rows after its start (one range read, capped
like the batch): when no id is missing up to the highest one, that maximum is final. Only
when ids are missing (a transaction still holds them, or rolled back) does the reader, with
``writerCheck=innodb_trx`` (the default), note the transactions writing at that moment
(`information_schema.INNODB_TRX`) and admit the maximum once all of them have ended. That
slow path costs a 0.15 s pause (InnoDB refreshes that view every 0.1 s) plus the wait for
those writers (at most ``settleSeconds`` per trigger; later triggers keep waiting). The view
is server-wide (MariaDB does not say which table a transaction writes), so an unrelated
writer can delay the watermark, never lose a row. It needs the PROCESS privilege;
``writerCheck=none`` trusts ``MAX(id)`` as is, which is right for a single writer (the
ingest service inserts each batch in one transaction).

**Admission control** caps the id span of a trigger: a micro-batch holds at most
``maxRowsPerTrigger`` rows, fewer when ids have gaps (rolled-back inserts, rare with the
loaders' one-transaction batches). It also bounds the trigger's range count; without it the
first trigger of a query started on a large backlog counts the whole backlog once.

**The password** never travels in the options (which Spark keeps in plans and logs): the
options name the server, account and database, and each Python worker reads the password
the way :class:`config.settings.Settings` does, from ``DB_PASSWORD`` in its environment,
`.env` or `.local/db.env`. On a multi-host cluster, set ``DB_PASSWORD`` on the executors
(``spark.executorEnv.DB_PASSWORD``, which Spark redacts) or in their `.env`.

``DP_DATE`` (a DATETIME) is read as UTC, the session time zone the project sets.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import StructType

from config.settings import ConfigError, Settings, load_settings
from db.cdr_stream import (
    CDR_STREAM_COLUMNS,
    cdr_text_rows_between,
    id_window,
    max_cdr_id,
    open_writers,
    read_committed,
)
from db.connection import Connection, close_quietly, connect, connection
from db.errors import DatabaseError
from spark_jobs.errors import SparkJobError
from spark_jobs.schemas import RAW_CDR_SCHEMA

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

SOURCE_NAME = "cdr_mysql"
# The rows a streamed micro-batch holds: `DP_CDR_Data` as Spark's batch reads see it.
CDR_STREAM_SCHEMA: StructType = RAW_CDR_SCHEMA
_ARROW_SCHEMA = to_arrow_schema(CDR_STREAM_SCHEMA, timezone="UTC")

# InnoDB rebuilds its INNODB_TRX view when it is older than 0.1 s (trx0i_s.cc): waiting a bit
# longer after reading MAX(id) guarantees the view we read next is younger than that maximum.
_TRX_VIEW_REFRESH_SECONDS = 0.15
# Candidate watermarks kept while writers are open; older ones only resolve later, not wrongly.
_MAX_PENDING = 64
# How long a trigger waits for open writers, and how long an `availableNow` run waits
# (it ends at the first trigger that admits nothing).
_AVAILABLE_NOW_SETTLE_SECONDS = 30.0
_WARN_AFTER_SECONDS = 60.0

_OPTION_NAMES = {
    "host": "the database server's host",
    "port": "its TCP port",
    "user": "the account",
    "database": "the database holding DP_CDR_Data",
    "socket": "a Unix socket instead of host:port (optional)",
    "connecttimeout": "seconds to wait for a connection",
    "maxrowspertrigger": "admission control: at most this many ids per micro-batch",
    "numpartitions": "id slices (Spark tasks) per micro-batch",
    "startingid": "'earliest', 'latest' or an id: a new query reads the rows after it",
    "fetchrows": "rows per Arrow batch fetched from the server",
    "writercheck": "'innodb_trx' (wait for open writers) or 'none' (single writer)",
    "settleseconds": "how long a trigger waits for open writers before admitting less",
}


class CdrSourceOptionError(SparkJobError, ValueError):
    """The streaming source's options are missing or invalid; the message names the option."""


@dataclass(frozen=True)
class CdrSourceOptions:
    """The validated options of the source: where the table is and how much to admit."""

    host: str
    port: int
    user: str
    database: str
    socket: str | None = None
    connect_timeout: int = 5
    max_rows_per_trigger: int | None = None
    num_partitions: int = 2
    starting_id: int | Literal["earliest", "latest"] = "earliest"
    fetch_rows: int = 10_000
    writer_check: bool = True
    settle_seconds: float = 0.5

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> CdrSourceOptions:
        """Validate Spark's string options (names are case-insensitive).

        Raises:
            CdrSourceOptionError: an option is missing, unknown or out of range.
        """
        given = {key.lower(): value for key, value in options.items()}
        unknown = sorted(set(given) - set(_OPTION_NAMES))
        if unknown:
            raise CdrSourceOptionError(
                f"{SOURCE_NAME}: unknown option(s) {', '.join(unknown)}; known: "
                + ", ".join(sorted(_OPTION_NAMES))
            )
        missing = [name for name in ("host", "port", "user", "database") if not given.get(name)]
        if missing:
            raise CdrSourceOptionError(f"{SOURCE_NAME}: missing option(s) {', '.join(missing)}")
        starting = given.get("startingid", "earliest").strip().lower()
        writer_check = given.get("writercheck", "innodb_trx").strip().lower()
        if writer_check not in ("innodb_trx", "none"):
            raise CdrSourceOptionError(
                f"{SOURCE_NAME}: writerCheck must be 'innodb_trx' or 'none', not {writer_check!r}"
            )
        max_rows = given.get("maxrowspertrigger")
        return cls(
            host=given["host"],
            port=_positive_int(given, "port"),
            user=given["user"],
            database=given["database"],
            socket=given.get("socket") or None,
            connect_timeout=_positive_int(given, "connecttimeout", 5),
            max_rows_per_trigger=None
            if max_rows is None
            else _positive_int(given, "maxrowspertrigger"),
            num_partitions=_positive_int(given, "numpartitions", 2),
            starting_id=(
                starting  # type: ignore[arg-type]
                if starting in ("earliest", "latest")
                else _non_negative_int(starting, "startingId")
            ),
            fetch_rows=_positive_int(given, "fetchrows", 10_000),
            writer_check=writer_check == "innodb_trx",
            settle_seconds=_non_negative_float(given.get("settleseconds", "0.5"), "settleSeconds"),
        )

    def settings(self) -> Settings:
        """Settings for this server and database; the password comes from this host's
        environment (``DB_PASSWORD``, `.env`, `.local/db.env`), never from the options.

        Raises:
            CdrSourceOptionError: the resulting settings are invalid.
        """
        try:
            return load_settings(
                db_host=self.host,
                db_port=self.port,
                db_user=self.user,
                db_name=self.database,
                db_socket=self.socket,
                db_connect_timeout=self.connect_timeout,
            )
        except ConfigError as exc:
            raise CdrSourceOptionError(f"{SOURCE_NAME}: {exc}") from exc


def _positive_int(options: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = options.get(name)
    if raw is None:
        if default is None:
            raise CdrSourceOptionError(f"{SOURCE_NAME}: missing option {_display(name)}")
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise CdrSourceOptionError(
            f"{SOURCE_NAME}: option {_display(name)} must be a positive whole number, not {raw!r}"
        )
    return value


def _non_negative_int(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise CdrSourceOptionError(
            f"{SOURCE_NAME}: option {name} must be 'earliest', 'latest' or an id >= 0, not {raw!r}"
        )
    return value


def _non_negative_float(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise CdrSourceOptionError(
            f"{SOURCE_NAME}: option {name} must be a number of seconds >= 0, not {raw!r}"
        )
    return value


def _display(name: str) -> str:
    return {
        "maxrowspertrigger": "maxRowsPerTrigger",
        "numpartitions": "numPartitions",
        "connecttimeout": "connectTimeout",
        "fetchrows": "fetchRows",
    }.get(name, name)


def cdr_source_options(
    settings: Settings,
    *,
    max_rows_per_trigger: int | None = None,
    num_partitions: int = 2,
    starting_id: int | str = "earliest",
    writer_check: bool = True,
) -> dict[str, str]:
    """The source's options for the database ``settings`` name (without the password)."""
    options = {
        "host": settings.db_host,
        "port": str(settings.db_port),
        "user": settings.db_user,
        "database": settings.db_name,
        "connectTimeout": str(settings.db_connect_timeout),
        "numPartitions": str(num_partitions),
        "startingId": str(starting_id),
        "fetchRows": str(settings.jdbc_fetch_size),
        "writerCheck": "innodb_trx" if writer_check else "none",
    }
    if settings.db_socket:
        options["socket"] = settings.db_socket
    if max_rows_per_trigger is not None:
        options["maxRowsPerTrigger"] = str(max_rows_per_trigger)
    return options


def read_cdr_stream(
    spark: SparkSession,
    settings: Settings,
    *,
    max_rows_per_trigger: int | None = None,
    num_partitions: int = 2,
    starting_id: int | str = "earliest",
    writer_check: bool = True,
) -> DataFrame:
    """A streaming DataFrame of the `DP_CDR_Data` rows committed from now on.

    Raises:
        CdrSourceOptionError: an option is invalid (checked here, before Spark sees it).
    """
    options = cdr_source_options(
        settings,
        max_rows_per_trigger=max_rows_per_trigger,
        num_partitions=num_partitions,
        starting_id=starting_id,
        writer_check=writer_check,
    )
    CdrSourceOptions.parse(options)
    spark.dataSource.register(CdrStreamSource)
    return spark.readStream.format(SOURCE_NAME).options(**options).load()


@dataclass(frozen=True)
class IdRange(InputPartition):
    """One Spark task's rows: ``after < id <= until``."""

    after: int
    until: int


def split_id_range(after: int, until: int, parts: int) -> list[IdRange]:
    """``(after, until]`` cut into at most ``parts`` contiguous slices of near-equal id span."""
    span = until - after
    if span <= 0:
        return []
    parts = max(1, min(parts, span))
    bounds = [after + span * i // parts for i in range(parts + 1)]
    return [IdRange(low, high) for low, high in itertools.pairwise(bounds)]


def text_rows_to_record_batch(rows: Sequence[Sequence[bytes | None]]) -> pa.RecordBatch:
    """Rows of server text (`CDR_STREAM_COLUMNS` order, NULL as None) as one Arrow batch of
    `CDR_STREAM_SCHEMA`, each column parsed at once by Arrow.

    Numbers parse exactly as the driver would (both read the same text); DATETIME text
    becomes a UTC timestamp of the same wall-clock time.
    """
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(CDR_STREAM_COLUMNS)
    arrays = []
    for values, arrow_field in zip(columns, _ARROW_SCHEMA, strict=True):
        text = pa.array(values, type=pa.binary()).cast(pa.string())
        if pa.types.is_timestamp(arrow_field.type):
            text = text.cast(pa.timestamp(arrow_field.type.unit))
        arrays.append(text.cast(arrow_field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=_ARROW_SCHEMA)


@dataclass
class _Candidate:
    max_id: int
    writers: frozenset[int]
    seen_at: float


@dataclass
class CommitWatermark:
    """The highest id at or below which every row is committed, or never will be.

    A committed ``MAX(id)`` read while no transaction was writing is final at once; one read
    while transactions were writing becomes final when all of those have ended (only they
    can still hold lower ids).
    """

    safe: int = 0
    pending: list[_Candidate] = field(default_factory=list)

    def observe(self, max_id: int, writers: frozenset[int], now: float) -> int:
        """Record a committed maximum and the writers open just after it was read."""
        if max_id > self.safe:
            if writers:
                self.pending.append(_Candidate(max_id, writers, now))
            else:
                self.safe = max_id
        return self.resolve(writers)

    def resolve(self, writers: frozenset[int]) -> int:
        """Promote the candidates whose writers have all ended, given those open now."""
        for candidate in self.pending:
            if not candidate.writers & writers:
                self.safe = max(self.safe, candidate.max_id)
        self.pending = [c for c in self.pending if c.max_id > self.safe][-_MAX_PENDING:]
        return self.safe

    def waiting_since(self) -> float | None:
        """When the oldest candidate still waiting was seen, if any."""
        return self.pending[0].seen_at if self.pending else None


class CdrStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Plans and reads micro-batches of `DP_CDR_Data` rows by `id` range.

    One instance lives in the driver's planning worker for the whole query (it keeps the
    connection and the watermark); Spark pickles it to the executors, where :meth:`read`
    opens a connection of its own.
    """

    def __init__(self, options: CdrSourceOptions) -> None:
        self.options = options
        self._conn: Connection | None = None
        self._watermark = CommitWatermark()
        self._target: int | None = None
        self._warned_at: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The executors need only the options; a live connection cannot be pickled.
        return {"options": self.options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["options"])  # type: ignore[misc]

    def initialOffset(self) -> dict:
        """Where a query without a checkpoint starts: after `startingId`."""
        starting = self.options.starting_id
        if starting == "earliest":
            return {"id": 0}
        if starting == "latest":
            # The final watermark, not MAX(id): rows an open transaction commits later, below
            # MAX(id), land after the start and belong to the stream.
            return {"id": self._planner(self._committed_watermark, 0)}
        return {"id": int(starting)}

    def getDefaultReadLimit(self) -> ReadLimit:
        """`maxRowsPerTrigger` when set, else everything committed."""
        if self.options.max_rows_per_trigger is None:
            return ReadAllAvailable()
        return ReadMaxRows(self.options.max_rows_per_trigger)

    def prepareForTriggerAvailableNow(self) -> None:
        """Fix the end of an `availableNow` run: the rows committed by now."""
        self._target = self._planner(max_cdr_id)

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        """The end of the next micro-batch: the final committed maximum, within ``limit``."""
        after = int(start["id"])
        bounds = [after + limit.max_rows] if isinstance(limit, ReadMaxRows) else []
        if self._target is not None:
            bounds.append(self._target)
        until = min(bounds, default=None)
        if until is not None and until <= after:
            return {"id": after}  # an `availableNow` run ends here, whatever came since
        end = max(after, self._planner(self._final_id, after, until))
        return {"id": end if until is None else min(end, until)}

    def reportLatestOffset(self) -> dict | None:
        """The final committed id as last seen (shown in the query's progress)."""
        return {"id": self._watermark.safe}

    def partitions(self, start: dict, end: dict) -> Sequence[InputPartition]:
        """``(start, end]`` in `numPartitions` id slices."""
        return split_id_range(int(start["id"]), int(end["id"]), self.options.num_partitions)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        """The rows of one id slice, fetched in Arrow batches of `fetchRows` rows."""
        assert isinstance(partition, IdRange)
        with connection(self.options.settings()) as conn:
            for rows in cdr_text_rows_between(
                conn, partition.after, partition.until, self.options.fetch_rows
            ):
                yield text_rows_to_record_batch(rows)

    def commit(self, end: dict) -> None:
        """Nothing to release: rows stay in the table; the checkpoint holds the offsets."""
        log.debug("%s: committed up to id %s", SOURCE_NAME, end.get("id"))

    def stop(self) -> None:
        """Close the planning connection."""
        self._close()

    def _final_id(self, conn: Connection, after: int, until: int | None) -> int:
        if self.options.writer_check:
            highest, rows = id_window(conn, after, until)
            if rows == highest - after:
                # No id is missing up to `highest`, so no open transaction holds one: final
                # without asking which transactions are open (one range count, no wait).
                self._watermark.safe = max(self._watermark.safe, highest)
                return highest
        return self._committed_watermark(conn, after)

    def _committed_watermark(self, conn: Connection, after: int) -> int:
        committed = max_cdr_id(conn)
        if not self.options.writer_check:
            self._watermark.safe = max(self._watermark.safe, committed)
            return committed
        if committed <= max(after, self._watermark.safe):
            return self._watermark.safe
        time.sleep(_TRX_VIEW_REFRESH_SECONDS)
        self._watermark.observe(committed, open_writers(conn), time.monotonic())
        settle = self.options.settle_seconds
        if self._target is not None:
            settle = max(settle, _AVAILABLE_NOW_SETTLE_SECONDS)
        deadline = time.monotonic() + settle
        while self._watermark.pending and time.monotonic() < deadline:
            time.sleep(_TRX_VIEW_REFRESH_SECONDS)
            self._watermark.resolve(open_writers(conn))
        self._warn_if_stalled()
        return self._watermark.safe

    def _warn_if_stalled(self) -> None:
        since = self._watermark.waiting_since()
        now = time.monotonic()
        if since is None or now - since < _WARN_AFTER_SECONDS:
            return
        if self._warned_at is None or now - self._warned_at >= _WARN_AFTER_SECONDS:
            self._warned_at = now
            log.warning(
                "%s: rows above id %d wait for transactions open for %.0f s (a writer that "
                "neither commits nor rolls back holds the stream back)",
                SOURCE_NAME,
                self._watermark.safe,
                now - since,
            )

    def _planner(self, step: Any, *args: Any) -> Any:
        # One connection for the query's lifetime; after an error, the next call reconnects.
        try:
            if self._conn is None:
                self._conn = connect(self.options.settings())
                read_committed(self._conn)
            return step(self._conn, *args)
        except DatabaseError:
            self._close()
            raise

    def _close(self) -> None:
        if self._conn is not None:
            close_quietly(self._conn)
            self._conn = None


class CdrStreamSource(DataSource):
    """The ``cdr_mysql`` streaming source; register it with ``spark.dataSource.register``."""

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        # Validated here so that a bad option fails `load()`, not the first trigger.
        self.parsed = CdrSourceOptions.parse(dict(options))

    @classmethod
    def name(cls) -> str:
        """The format name: ``spark.readStream.format("cdr_mysql")``."""
        return SOURCE_NAME

    def schema(self) -> StructType:
        """The raw CDR columns, `CDR_STREAM_SCHEMA`."""
        return CDR_STREAM_SCHEMA

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        """A reader of new rows by `id` range."""
        return CdrStreamReader(self.parsed)
