"""Spark's reads and writes: partitioned JDBC reads with explicit schemas, staged writes.

All table names and SQL stay in `db/`; Spark only moves rows. Filters on DataFrames read
here are pushed down by Spark's JDBC source as bound `WHERE` clauses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, timedelta

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from config.settings import Settings
from db.connection import Connection, connection
from db.processed import PROCESSED_TABLE, day_bounds
from db.staging import create_staging, drop_staging
from spark_jobs.schemas import DATE, PROCESSED_SCHEMA, RAW_CDR_SCHEMA
from spark_jobs.session import jdbc_properties, jdbc_url


def _custom_schema(schema: StructType) -> str:
    # Unsigned BIGINT ids would otherwise arrive as DECIMAL(20,0).
    return ", ".join(f"`{f.name}` {f.dataType.simpleString().upper()}" for f in schema.fields)


def conform(frame: DataFrame, schema: StructType) -> DataFrame:
    """``frame`` with exactly ``schema``'s columns, in order, cast to its types."""
    return frame.select(*(F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields))


def read_cdr_range(
    spark: SparkSession,
    settings: Settings,
    start: date,
    end: date,
    id_bounds: tuple[int, int],
    partitions: int,
) -> DataFrame:
    """Raw CDRs dated in [start, end], read in ``partitions`` slices of `id`.

    ``id_bounds`` are MIN and MAX of `id` within the range (ids have gaps, so the
    slices are sized by id, not by row number).
    """
    low, high = id_bounds
    properties = {**jdbc_properties(settings), "customSchema": _custom_schema(RAW_CDR_SCHEMA)}
    frame = spark.read.jdbc(
        jdbc_url(settings),
        "DP_CDR_Data",
        column="id",
        lowerBound=low,
        upperBound=high + 1,
        numPartitions=max(1, partitions),
        properties=properties,
    )
    first, after_last = day_bounds(start, end)
    in_range = (
        (F.col("id") >= low)
        & (F.col("id") <= high)
        & (F.col("DP_DATE") >= F.lit(first))
        & (F.col("DP_DATE") < F.lit(after_last))
    )
    return conform(frame.where(in_range), RAW_CDR_SCHEMA)


def read_table(
    spark: SparkSession, settings: Settings, table: str, schema: StructType
) -> DataFrame:
    """A whole table (filter the result: Spark pushes the filter down to the server)."""
    properties = {**jdbc_properties(settings), "customSchema": _custom_schema(schema)}
    return conform(spark.read.jdbc(jdbc_url(settings), table, properties=properties), schema)


def write_staged(
    frame: DataFrame,
    settings: Settings,
    table: str,
    move_in: Callable[[Connection, str], int],
    columns: Sequence[str] = (),
) -> int:
    """Write ``frame`` to a fresh copy of ``table``, then let ``move_in`` swap it in.

    ``move_in(conn, staging)`` runs one transaction (e.g. delete a range, insert the
    staged rows) and returns the rows it stored; the staging table is dropped either way.
    ``columns``: the staging table's columns when not all of ``table``'s (see
    :func:`db.staging.create_staging`); ``frame`` must hold exactly those.
    """
    with connection(settings) as conn:
        staging = create_staging(conn, table, columns)
    try:
        # Each partition is one writer; more writers than cores only contend for the server.
        frame.coalesce(settings.jdbc_write_partitions).write.jdbc(
            jdbc_url(settings),
            staging,
            mode="append",
            properties=jdbc_properties(settings, write=True),
        )
        with connection(settings) as conn:
            return move_in(conn, staging)
    finally:
        with connection(settings) as conn:
            drop_staging(conn, staging)


def append_in_one_transaction(frame: DataFrame, settings: Settings, table: str) -> None:
    """Append ``frame`` to ``table`` through one JDBC connection that commits once.

    Spark's JDBC writer commits each partition on its own connection; a frame of one
    partition (e.g. from :func:`spark_jobs.scoring.in_key_order`) is therefore written all
    or nothing: a failed write rolls back and leaves ``table`` as it was. ``frame`` must
    hold columns of ``table`` only; the columns it leaves out take their defaults.
    """
    # coalesce(1) merges no work into the last task when the frame has one partition already.
    frame.coalesce(1).write.jdbc(
        jdbc_url(settings),
        table,
        mode="append",
        properties=jdbc_properties(settings, write=True),
    )


def read_processed(spark: SparkSession, settings: Settings, start: date, end: date) -> DataFrame:
    """`Processed_Data` rows dated in [start, end], read in date slices."""
    properties = {**jdbc_properties(settings), "customSchema": _custom_schema(PROCESSED_SCHEMA)}
    days = (end - start).days + 1
    # The options form: DataFrameReader.jdbc() only takes numeric partition bounds.
    frame = (
        spark.read.format("jdbc")
        .options(**properties)
        .option("url", jdbc_url(settings))
        .option("dbtable", PROCESSED_TABLE)
        .option("partitionColumn", DATE)
        .option("lowerBound", str(start))
        .option("upperBound", str(end + timedelta(days=1)))
        .option("numPartitions", max(1, min(settings.jdbc_read_partitions, days)))
        .load()
    )
    return conform(frame.where(F.col(DATE).between(F.lit(start), F.lit(end))), PROCESSED_SCHEMA)
