"""Latency of the streaming job from a batch's commit in MySQL to its predictions' commit.

Run as ``.venv/bin/python bench/streaming.py [--subscribers N] [--seconds S]
[--batch-rows 1000,10000] [--rate R] [--keep]``. In one run:

- seeds a history (``--subscribers`` x ``--history-days`` from 2024-01-01) into the
  ``streambench`` database, analyses it and trains a small model on it;
- for each ``--batch-rows`` size B, starts the streaming query (``run_stream``, trigger
  ``--trigger-seconds``, at most B rows per micro-batch) and, for ``--seconds`` seconds,
  commits the next simulated days' rows in loads of B rows at ``--rate`` rows per second
  (one load every B / rate seconds). A load's latency is from its commit (the server's
  clock) to the commit of the micro-batch that wrote its last row's predictions
  (``stream_batches.committed_at``, the same clock): p50, p95 and max, and whether the lag
  grew (the mean latency of the last third of loads over the first third's);
- the batch path, side by side: ``run_analysis`` then ``run_score`` over the same streamed
  days, timed.

Progress goes to stderr; the last line of stdout is one JSON object with every figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder heads sys.path; the project root goes in front of it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from config.cli import configure_logging, positive_int
from config.settings import PipelineDates, Settings, load_settings
from db.cdr import frame_to_rows, insert_cdr_rows
from db.connection import connection, drop_database, transaction
from db.ingest_log import Source
from db.migrate import init_database
from db.schema import CDR_COLUMNS
from ingest.generator import GeneratorConfig, generate_cdr
from ingest.seeding import load_frame


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Load:
    """One load of raw rows: its last id and when it committed (server clock)."""

    last_id: int
    rows: int
    committed_at: datetime


def _commit_load(settings: Settings, frame: pd.DataFrame) -> Load:
    rows = frame_to_rows(frame.loc[:, list(CDR_COLUMNS)])
    with connection(settings) as conn:
        with transaction(conn) as cursor:
            insert_cdr_rows(conn, cursor, rows, chunk_rows=10_000)
            cursor.execute("SELECT LAST_INSERT_ID()")
            (first_id,) = cursor.fetchone()
        with transaction(conn) as cursor:
            cursor.execute("SELECT NOW(3)")
            (now,) = cursor.fetchone()
    # One multi-row INSERT per 10k rows: ids are consecutive within this transaction.
    return Load(int(first_id) + len(rows) - 1, len(rows), now)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stream_run(
    spark: Any,
    settings: Settings,
    new_rows: pd.DataFrame,
    batch_rows: int,
    rate: float,
    seconds: float,
    trigger_seconds: float,
    checkpoint: Path,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Stream ``new_rows`` in loads of ``batch_rows`` at ``rate`` rows/s for ``seconds``."""
    from spark_jobs.stream import StreamOptions, run_stream

    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM DP_CDR_Data")
        (start_id,) = cursor.fetchone()
    stop = threading.Event()
    result: dict[str, Any] = {}
    options = StreamOptions(
        checkpoint=checkpoint,
        trigger_seconds=trigger_seconds,
        max_rows_per_trigger=batch_rows,
        starting_id=int(start_id),
    )

    def run() -> None:
        try:
            result["summary"] = run_stream(spark, settings, options, stop)
        except BaseException as exc:
            result["error"] = exc

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    time.sleep(5)  # the query's start; loads committed meanwhile would only wait longer
    loads: list[Load] = []
    interval = batch_rows / rate
    began = time.monotonic()
    offset = 0
    while time.monotonic() - began < seconds and offset < len(new_rows):
        due = began + len(loads) * interval
        time.sleep(max(0.0, due - time.monotonic()))
        loads.append(_commit_load(settings, new_rows.iloc[offset : offset + batch_rows]))
        offset += batch_rows
    sent = offset
    progress(f"  {len(loads)} loads, {sent:,} rows committed; waiting for the stream")
    deadline = time.monotonic() + 600
    query_id = None
    while time.monotonic() < deadline and runner.is_alive():
        query_id = json.loads((checkpoint / "metadata").read_text())["id"]
        with connection(settings) as conn, transaction(conn) as cursor:
            cursor.execute(
                "SELECT COALESCE(MAX(last_cdr_id), 0) FROM stream_batches WHERE query_id = %s",
                (query_id,),
            )
            (done,) = cursor.fetchone()
        if int(done) >= loads[-1].last_id:
            break
        time.sleep(0.5)
    stop.set()
    runner.join(120)
    if "error" in result:
        raise result["error"]
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(
            "SELECT batch_id, last_cdr_id, cdr_rows, subscriber_days, predictions, committed_at "
            "FROM stream_batches WHERE query_id = %s ORDER BY batch_id",
            (query_id,),
        )
        batches = pd.DataFrame(
            cursor.fetchall(),
            columns=["batch", "last_id", "rows", "days", "predictions", "committed_at"],
        )
    latencies = []
    for load in loads:
        written = batches[batches["last_id"] >= load.last_id]["committed_at"]
        if len(written):
            latencies.append((written.iloc[0] - load.committed_at).total_seconds())
    third = max(1, len(latencies) // 3)
    figures = {
        "batch_rows": batch_rows,
        "rate_rows_per_s": rate,
        "seconds": seconds,
        "loads": len(loads),
        "rows": sent,
        "micro_batches": len(batches),
        "mean_rows_per_micro_batch": round(float(batches["rows"].mean()), 1),
        "predictions": int(batches["predictions"].sum()),
        "latency_p50_s": round(statistics.median(latencies), 3),
        "latency_p95_s": round(_quantile(latencies, 0.95), 3),
        "latency_max_s": round(max(latencies), 3),
        "lag_growth_s": round(
            statistics.mean(latencies[-third:]) - statistics.mean(latencies[:third]), 3
        ),
        "achieved_rows_per_s": round(sent / max(1e-9, seconds), 1),
    }
    return figures, batches


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--subscribers", type=positive_int, default=10_000)
    cli.add_argument("--history-days", type=positive_int, default=35)
    cli.add_argument("--seconds", type=float, default=60.0, help="per batch size")
    cli.add_argument("--rate", type=float, default=10_000.0, help="rows per second")
    cli.add_argument("--batch-rows", default="1000,10000", help="comma-separated sizes")
    cli.add_argument("--trigger-seconds", type=float, default=1.0)
    cli.add_argument("--database", default="streambench")
    cli.add_argument("--keep", action="store_true", help="keep the database")
    args = cli.parse_args()
    sizes = [int(part) for part in args.batch_rows.split(",")]
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    configure_logging()

    from spark_jobs.analysis import run_analysis
    from spark_jobs.model import run_model
    from spark_jobs.scoring import run_score
    from spark_jobs.session import build_spark_session

    work = Path(tempfile.mkdtemp(prefix="streambench-"))
    settings = load_settings(
        db_name=args.database,
        output_dir=work / "output",
        model_dir=work / "models",
        model_embargo_days=7,
        model_cv_folds=2,
        model_tuning_max_rows=3000,
        spark_shuffle_partitions=2,
    )
    stream_days = int(args.seconds * args.rate * len(sizes)) // args.subscribers + 1
    config = GeneratorConfig(
        subscribers=args.subscribers,
        days=args.history_days + stream_days + 2,
        churn_rate=0.3,
        seed=11,
    )
    first_new = config.start_date + timedelta(days=args.history_days)
    progress(f"generating {config.subscribers:,} subscribers x {config.days} days")
    frame = generate_cdr(config)
    days = frame["DP_DATE"].dt.date
    drop_database(settings)
    init_database(settings)
    load_frame(
        settings,
        frame[days < first_new].reset_index(drop=True),
        Source("bench-history", "generator", "streaming bench history", {}, 0),
        progress=False,
    )
    new_rows = frame[days >= first_new].sort_values("DP_DATE").reset_index(drop=True)
    last_history = first_new - timedelta(days=1)
    dates = PipelineDates.model_validate(
        {
            "start_date": str(config.start_date),
            "end_date": str(last_history),
            "processed_start": str(config.start_date),
            "processed_end": str(last_history),
        }
    )
    spark = build_spark_session(settings, "streambench")
    report: dict[str, Any] = {"subscribers": args.subscribers, "runs": []}
    try:
        progress("analysis + model of the history")
        run_analysis(spark, settings, dates)
        run_model(spark, settings, dates)
        offset = 0
        streamed_days: list[date] = []
        for size in sizes:
            part = new_rows.iloc[offset:]
            progress(f"streaming {size:,}-row loads at {args.rate:,.0f} rows/s")
            figures, _ = stream_run(
                spark,
                settings,
                part,
                size,
                args.rate,
                args.seconds,
                args.trigger_seconds,
                work / f"checkpoint-{size}",
            )
            offset += figures["rows"]
            streamed_days += sorted(set(part.iloc[: figures["rows"]]["DP_DATE"].dt.date))
            progress(f"  {figures}")
            report["runs"].append(figures)
        first, last = min(streamed_days), max(streamed_days)
        progress(f"batch path: analysis + score of {first}..{last}")
        started = time.perf_counter()
        analysed = run_analysis(
            spark, settings, dates.model_copy(update={"start_date": first, "end_date": last})
        )
        analysis_seconds = time.perf_counter() - started
        scored = run_score(spark, settings, first, last)
        report["batch_path"] = {
            "raw_rows": analysed.raw_rows,
            "analysis_s": round(analysis_seconds, 2),
            "score_s": round(scored.seconds, 2),
            "total_s": round(time.perf_counter() - started, 2),
            "predictions": scored.rows,
        }
        progress(f"  {report['batch_path']}")
    finally:
        spark.stop()
        if not args.keep:
            drop_database(settings)
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
