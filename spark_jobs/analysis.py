"""The analysis job: raw CDRs of the `config.json` range -> `Processed_Data` + Parquet."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import date
from functools import partial
from pathlib import Path

from pyspark.sql import SparkSession

from config.settings import PipelineDates, Settings
from db.connection import connection
from db.processed import PROCESSED_TABLE, cdr_id_range, replace_processed_range
from spark_jobs.errors import EmptyRangeError
from spark_jobs.io import read_cdr_range, write_staged
from spark_jobs.session import shuffle_partitions_for
from spark_jobs.transforms import aggregate_daily, clean_cdr

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalysisReport:
    """What one analysis run read and wrote."""

    start: date
    end: date
    raw_rows: int
    processed_rows: int
    parquet_path: str
    read_partitions: int
    seconds: float

    def describe(self) -> str:
        return (
            f"analysis {self.start}..{self.end}: {self.raw_rows:,} raw rows -> "
            f"{self.processed_rows:,} subscriber-days in {PROCESSED_TABLE} "
            f"and {self.parquet_path} ({self.seconds:.1f} s)"
        )

    def as_dict(self) -> dict[str, object]:
        return {k: str(v) if isinstance(v, date) else v for k, v in asdict(self).items()}


def run_analysis(spark: SparkSession, settings: Settings, dates: PipelineDates) -> AnalysisReport:
    """Clean and aggregate the raw CDRs of [start_date, end_date]; replace that range.

    Raises:
        EmptyRangeError: no raw CDRs in the range (nothing is written).
    """
    started = time.perf_counter()
    start, end = dates.start_date, dates.end_date
    with connection(settings) as conn:
        bounds = cdr_id_range(conn, start, end)
    if bounds is None:
        raise EmptyRangeError(
            f"DP_CDR_Data has no rows dated {start} to {end}; "
            "check start_date/end_date in the config file or seed the database"
        )
    low, high, raw_rows = bounds
    partitions = min(settings.jdbc_read_partitions, max(1, raw_rows // 50_000 + 1))
    spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions_for(raw_rows, settings)))
    log.info("reading %s raw rows (ids %s..%s) in %s partitions", raw_rows, low, high, partitions)

    raw = read_cdr_range(spark, settings, start, end, (low, high), partitions)
    processed = aggregate_daily(clean_cdr(raw)).cache()
    try:
        parquet_path = Path(settings.output_dir) / "processed" / f"{start}_{end}"
        processed.write.mode("overwrite").parquet(str(parquet_path))
        stored = write_staged(
            processed,
            settings,
            PROCESSED_TABLE,
            partial(replace_processed_range, start=start, end=end),
        )
    finally:
        processed.unpersist()
    return AnalysisReport(
        start, end, raw_rows, stored, str(parquet_path), partitions, time.perf_counter() - started
    )
