"""Latency of the streaming job from a batch's commit in MySQL to its predictions' commit.

Run as ``.venv/bin/python bench/streaming.py [--quick | --tiny] [--seconds S]
[--batch-rows 1000,10000] [--rate R] [--search-rates 5000,10000,20000] [--keep --reuse]``.
In one run:

- seeds a history (``--subscribers`` x ``--history-days`` from 2024-01-01) into the
  ``--database`` database (``streamlat_bench``), analyses it and trains a small model on
  it (``--reuse`` skips this when a kept database of an earlier ``--keep`` run has it, and
  deletes what that run streamed);
- for each ``--batch-rows`` size B, starts the streaming query (``run_stream``, trigger
  ``--trigger-seconds``, at most B rows per micro-batch) and, for ``--seconds`` seconds,
  commits the next simulated days' rows in loads of B rows at ``--rate`` rows per second
  (one load every B / rate seconds). A load's latency is from its commit (the server's
  clock) to the commit of the micro-batch that wrote its last row's predictions
  (``stream_batches.committed_at``, written last in that transaction, the same clock):
  p50, p95 and max, and the lag's growth (the mean latency of the last third of loads
  minus the first third's);
- the highest sustained rate: one query (10,000-row micro-batches) fed loads of 10,000
  rows at each of ``--search-rates`` for ``--search-seconds``; a rate is sustained when
  the lag grows by less than ``--max-lag-growth`` seconds over the segment. The search
  stops at the first rate that is not;
- the batch path, side by side: ``run_analysis`` then ``run_score`` over the same
  streamed days, timed.

Progress goes to stderr; the last line of stdout is one JSON object with every figure, the
machine's load average and the CPU seconds this process and its children (the JVM, the
Python workers) spent on each part: the machine is shared, so wall-clock figures alone
say little.
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
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
from db.models import current_model
from db.schema import CDR_COLUMNS
from ingest.generator import GeneratorConfig, generate_cdr
from ingest.seeding import load_frame

START = date(2024, 1, 1)
# The loads of the rate search: one micro-batch each, at most.
SEARCH_BATCH_ROWS = 10_000


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the machine -------------------------------------------------------------------------------


def _tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) of ``root`` and every live descendant (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, parent = int(entry.name), int(fields[1])
        children.setdefault(parent, []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / ticks
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total


@contextmanager
def measured(figures: dict[str, Any]) -> Iterator[None]:
    """Add the wall seconds, CPU seconds of this process tree and the 1-minute load average
    (at the end) of the block to ``figures``."""
    cpu, wall = _tree_cpu_seconds(os.getpid()), time.perf_counter()
    yield
    figures["wall_s"] = round(time.perf_counter() - wall, 2)
    figures["cpu_s"] = round(_tree_cpu_seconds(os.getpid()) - cpu, 2)
    figures["load_1min"] = round(os.getloadavg()[0], 2)


# --- loads and latencies ---------------------------------------------------------------------


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


def latency_figures(loads: list[Load], batches: pd.DataFrame) -> dict[str, Any]:
    """p50/p95/max latency of ``loads`` and the lag's growth, from the query's ``batches``
    (``last_id`` and ``committed_at``): a load is served by the first batch at or past its
    last id."""
    latencies = []
    for load in loads:
        written = batches[batches["last_id"] >= load.last_id]["committed_at"]
        if len(written):
            latencies.append((written.min() - load.committed_at).total_seconds())
    if not latencies:
        return {"served_loads": 0}
    third = max(1, len(latencies) // 3)
    return {
        "served_loads": len(latencies),
        "latency_p50_s": round(statistics.median(latencies), 3),
        "latency_p95_s": round(_quantile(latencies, 0.95), 3),
        "latency_max_s": round(max(latencies), 3),
        "lag_growth_s": round(
            statistics.mean(latencies[-third:]) - statistics.mean(latencies[:third]), 3
        ),
    }


def _max_cdr_id(settings: Settings) -> int:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM DP_CDR_Data")
        (value,) = cursor.fetchone()
    return int(value)


def _stream_batches(settings: Settings, query_id: str) -> pd.DataFrame:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(
            "SELECT batch_id, last_cdr_id, cdr_rows, subscriber_days, predictions, committed_at "
            "FROM stream_batches WHERE query_id = %s ORDER BY batch_id",
            (query_id,),
        )
        return pd.DataFrame(
            cursor.fetchall(),
            columns=["batch", "last_id", "rows", "days", "predictions", "committed_at"],
        )


class RunningStream:
    """The streaming query on a thread of this process, stopped by :meth:`stop`."""

    def __init__(self, spark: Any, settings: Settings, options: Any) -> None:
        from spark_jobs.stream import run_stream

        self.settings, self.checkpoint = settings, options.checkpoint
        self._stop = threading.Event()
        self._result: dict[str, Any] = {}

        def run() -> None:
            try:
                self._result["summary"] = run_stream(spark, settings, options, self._stop)
            except BaseException as exc:  # re-raised by stop()
                self._result["error"] = exc

        self._runner = threading.Thread(target=run, daemon=True)
        self._runner.start()

    @property
    def query_id(self) -> str | None:
        metadata = self.checkpoint / "metadata"
        return json.loads(metadata.read_text())["id"] if metadata.exists() else None

    def wait_started(self, timeout: float = 1800) -> None:
        """Wait for the query's first (empty) trigger: its start (the model's loading, minutes
        on a loaded machine) is not part of a latency."""
        deadline = time.monotonic() + timeout
        while not (self.checkpoint / "commits" / "0").exists() and self._runner.is_alive():
            if time.monotonic() > deadline:
                raise TimeoutError("the streaming query did not start")
            time.sleep(0.2)

    def wait_done(self, last_id: int, timeout: float = 600) -> None:
        """Wait until the query has written the batch holding ``last_id``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._runner.is_alive():
            query_id = self.query_id
            if query_id is not None:
                batches = _stream_batches(self.settings, query_id)
                if len(batches) and int(batches["last_id"].max()) >= last_id:
                    return
            time.sleep(0.5)

    def stop(self) -> Any:
        """Stop the query; its :class:`~spark_jobs.stream.StreamSummary`."""
        self._stop.set()
        self._runner.join(120)
        if "error" in self._result:
            raise self._result["error"]
        return self._result.get("summary")


def step_means(summary: Any) -> dict[str, float]:
    """Mean seconds per micro-batch of each step of ``process_batch`` (and in all)."""
    if summary is None or not summary.batches:
        return {}
    means = {step: s / summary.batches for step, s in summary.step_seconds.items()}
    means["total"] = summary.batch_seconds / summary.batches
    return {step: round(seconds, 3) for step, seconds in means.items()}


def send_loads(
    settings: Settings, rows: pd.DataFrame, load_rows: int, rate: float, seconds: float
) -> list[Load]:
    """Commit ``rows`` in loads of ``load_rows`` at ``rate`` rows/s for ``seconds`` (or until
    the rows run out). A late load is sent at once: the schedule does not drift."""
    loads: list[Load] = []
    interval = load_rows / rate
    began = time.monotonic()
    offset = 0
    while time.monotonic() - began < seconds and offset < len(rows):
        time.sleep(max(0.0, began + len(loads) * interval - time.monotonic()))
        loads.append(_commit_load(settings, rows.iloc[offset : offset + load_rows]))
        offset += load_rows
    return loads


def stream_run(
    spark: Any,
    settings: Settings,
    new_rows: pd.DataFrame,
    batch_rows: int,
    rate: float,
    seconds: float,
    trigger_seconds: float,
    checkpoint: Path,
) -> dict[str, Any]:
    """Stream ``new_rows`` in loads of ``batch_rows`` at ``rate`` rows/s for ``seconds``."""
    from spark_jobs.stream import StreamOptions

    options = StreamOptions(
        checkpoint=checkpoint,
        trigger_seconds=trigger_seconds,
        max_rows_per_trigger=batch_rows,
        starting_id=_max_cdr_id(settings),
    )
    figures: dict[str, Any] = {"batch_rows": batch_rows, "rate_rows_per_s": rate}
    stream = RunningStream(spark, settings, options)
    stream.wait_started()
    with measured(figures):
        loads = send_loads(settings, new_rows, batch_rows, rate, seconds)
        sent = sum(load.rows for load in loads)
        sent_seconds = time.perf_counter()
        progress(f"  {len(loads)} loads, {sent:,} rows committed; waiting for the stream")
        stream.wait_done(loads[-1].last_id)
    summary = stream.stop()
    batches = _stream_batches(settings, str(stream.query_id))
    figures.update(
        {
            "loads": len(loads),
            "rows": sent,
            "achieved_rows_per_s": round(sent / max(1e-9, seconds), 1),
            "drain_s": round(time.perf_counter() - sent_seconds, 2),
            "micro_batches": len(batches),
            "mean_rows_per_micro_batch": round(float(batches["rows"].mean()), 1),
            "predictions": int(batches["predictions"].sum()),
            **latency_figures(loads, batches),
            "seconds_per_step": step_means(summary),
        }
    )
    return figures


def rate_search(
    spark: Any,
    settings: Settings,
    new_rows: pd.DataFrame,
    rates: list[float],
    seconds: float,
    trigger_seconds: float,
    max_growth: float,
    checkpoint: Path,
) -> tuple[dict[str, Any], int]:
    """The highest of ``rates`` (rows/s, ascending) the stream sustains; the rows sent.

    One query, 10,000-row micro-batches; each rate a segment of ``seconds``, the stream
    drained between segments. Sustained: the lag grows less than ``max_growth`` seconds.
    """
    from spark_jobs.stream import StreamOptions

    options = StreamOptions(
        checkpoint=checkpoint,
        trigger_seconds=trigger_seconds,
        max_rows_per_trigger=SEARCH_BATCH_ROWS,
        starting_id=_max_cdr_id(settings),
    )
    stream = RunningStream(spark, settings, options)
    stream.wait_started()
    segments: list[dict[str, Any]] = []
    offset, best = 0, None
    try:
        for rate in rates:
            segment: dict[str, Any] = {"rate_rows_per_s": rate}
            with measured(segment):
                loads = send_loads(
                    settings, new_rows.iloc[offset:], SEARCH_BATCH_ROWS, rate, seconds
                )
                if not loads:
                    break
                stream.wait_done(loads[-1].last_id)
            segment["rows"] = sum(load.rows for load in loads)
            offset += segment["rows"]
            segment.update(latency_figures(loads, _stream_batches(settings, str(stream.query_id))))
            segment["sustained"] = segment.get("lag_growth_s", float("inf")) < max_growth
            progress(f"  rate search: {segment}")
            segments.append(segment)
            if not segment["sustained"]:
                break
            best = rate
    finally:
        stream.stop()
    return {
        "batch_rows": SEARCH_BATCH_ROWS,
        "segment_seconds": seconds,
        "max_lag_growth_s": max_growth,
        "highest_sustained_rows_per_s": best,
        "segments": segments,
    }, offset


# --- the set-up and the batch path -------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """The history's dates and the new rows to stream."""

    dates: PipelineDates
    new_rows: pd.DataFrame


def prepare(spark: Any, settings: Settings, args: argparse.Namespace, new_days: int) -> Prepared:
    """Seed, analyse and model the history (or, with ``--reuse``, find it and clear what an
    earlier run streamed); the generated rows after it."""
    from spark_jobs.analysis import run_analysis
    from spark_jobs.model import run_model

    config = GeneratorConfig(
        subscribers=args.subscribers,
        days=args.history_days + new_days,
        churn_rate=0.3,
        seed=11,
        start_date=START,
    )
    first_new = START + timedelta(days=args.history_days)
    last_history = first_new - timedelta(days=1)
    dates = PipelineDates.model_validate(
        {
            "start_date": str(START),
            "end_date": str(last_history),
            "processed_start": str(START),
            "processed_end": str(last_history),
        }
    )
    progress(f"generating {config.subscribers:,} subscribers x {config.days} days")
    frame = generate_cdr(config)
    days = frame["DP_DATE"].dt.date
    new_rows = frame[days >= first_new].sort_values("DP_DATE").reset_index(drop=True)
    if args.reuse and _has_model(settings):
        progress(f"reusing {settings.db_name}: clearing the rows streamed from {first_new} on")
        _clear_streamed(settings, first_new)
        return Prepared(dates, new_rows)
    drop_database(settings)
    init_database(settings)
    load_frame(
        settings,
        frame[days < first_new].reset_index(drop=True),
        Source("bench-history", "generator", "streaming bench history", {}, 0),
        progress=False,
    )
    progress("analysis + model of the history")
    run_analysis(spark, settings, dates)
    run_model(spark, settings, dates)
    return Prepared(dates, new_rows)


def _has_model(settings: Settings) -> bool:
    from db.errors import DatabaseError

    try:
        with connection(settings) as conn:
            model = current_model(conn)
    except DatabaseError:
        return False
    return model is not None and Path(model.path).is_dir()


def _clear_streamed(settings: Settings, first_new: date) -> None:
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute("DELETE FROM DP_CDR_Data WHERE DP_DATE >= %s", (first_new,))
        cursor.execute("DELETE FROM Processed_Data WHERE `Date` >= %s", (first_new,))
        cursor.execute("DELETE FROM model_predictions WHERE as_of_date >= %s", (first_new,))
        cursor.execute("DELETE FROM stream_batches")
    with connection(settings) as conn, transaction(conn) as cursor:
        # New ids follow the history's again: a gap would send the stream's source to its
        # slow path, waiting for every transaction open on the (shared) server.
        cursor.execute("ALTER TABLE DP_CDR_Data AUTO_INCREMENT = 1")


def batch_path(
    spark: Any, settings: Settings, dates: PipelineDates, first: date, last: date
) -> dict[str, Any]:
    """``run_analysis`` then ``run_score`` of [first, last], timed."""
    from spark_jobs.analysis import run_analysis
    from spark_jobs.scoring import run_score

    figures: dict[str, Any] = {"first_day": str(first), "last_day": str(last)}
    with measured(figures):
        started = time.perf_counter()
        analysed = run_analysis(
            spark, settings, dates.model_copy(update={"start_date": first, "end_date": last})
        )
        figures["analysis_s"] = round(time.perf_counter() - started, 2)
        scored = run_score(spark, settings, first, last)
        figures["score_s"] = round(scored.seconds, 2)
    figures.update({"raw_rows": analysed.raw_rows, "predictions": scored.rows})
    return figures


# --- the command line --------------------------------------------------------------------------


def _rates(text: str) -> list[float]:
    try:
        values = sorted(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = []
    if not values or values[0] <= 0:
        raise argparse.ArgumentTypeError(f"must be rates above zero, comma-separated: {text!r}")
    return values


def _sizes(text: str) -> list[int]:
    return [int(rate) for rate in _rates(text)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    cli.add_argument("--subscribers", type=positive_int, default=10_000, help="history size")
    cli.add_argument("--history-days", type=positive_int, default=35, help="days before streaming")
    cli.add_argument("--seconds", type=float, default=60.0, help="seconds of loads per batch size")
    cli.add_argument("--rate", type=float, default=10_000.0, help="rows per second")
    cli.add_argument("--batch-rows", type=_sizes, default=[1000, 10_000], help="load sizes")
    cli.add_argument(
        "--search-rates",
        type=_rates,
        default=[5000.0, 10_000.0, 15_000.0, 20_000.0],
        help="rates (rows/s) of the sustained-rate search, ascending",
    )
    cli.add_argument("--search-seconds", type=float, default=30.0, help="seconds per rate")
    cli.add_argument("--no-search", action="store_true", help="skip the sustained-rate search")
    cli.add_argument("--no-batch-path", action="store_true", help="skip the batch path")
    cli.add_argument(
        "--max-lag-growth",
        type=float,
        default=2.0,
        help="a rate is sustained while the lag grows less than this over a segment (s)",
    )
    cli.add_argument("--trigger-seconds", type=float, default=0.5, help="stream trigger")
    cli.add_argument("--database", default="streamlat_bench", help="scratch database")
    cli.add_argument("--keep", action="store_true", help="keep the database and model")
    cli.add_argument(
        "--reuse", action="store_true", help="reuse a kept database's history and model"
    )
    cli.add_argument(
        "--quick",
        action="store_true",
        help="a few minutes: 3,000 subscribers, 20 s per size, a 2-rate search of 15 s",
    )
    cli.add_argument(
        "--tiny", action="store_true", help="the smallest run (tests): 400 subscribers, 1k rows/s"
    )
    args = cli.parse_args(argv)
    if args.quick:
        args.subscribers, args.seconds = 3000, 20.0
        args.search_rates, args.search_seconds = [5000.0, 10_000.0], 15.0
    if args.tiny:
        args.subscribers, args.history_days, args.seconds, args.rate = 400, 43, 3.0, 1000.0
        args.batch_rows, args.search_rates, args.search_seconds = [500], [1000.0], 3.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    configure_logging()

    from spark_jobs.session import build_spark_session

    work = Path("/tmp") / f"{args.database}-work"
    settings = load_settings(
        db_name=args.database,
        output_dir=work / "output",
        model_dir=work / "models",
        model_embargo_days=7,
        model_cv_folds=2,
        model_tuning_max_rows=3000,
        spark_shuffle_partitions=2,
    )
    rows_needed = args.seconds * args.rate * len(args.batch_rows)
    if not args.no_search:
        rows_needed += args.search_seconds * sum(args.search_rates)
    new_days = int(rows_needed) // args.subscribers + 2
    spark = build_spark_session(settings, "streamlat-bench")
    report: dict[str, Any] = {
        "subscribers": args.subscribers,
        "trigger_seconds": args.trigger_seconds,
        "cores": os.cpu_count(),
        "runs": [],
    }
    try:
        prepared = prepare(spark, settings, args, new_days)
        offset = 0
        for size in args.batch_rows:
            progress(f"streaming {size:,}-row loads at {args.rate:,.0f} rows/s")
            figures = stream_run(
                spark,
                settings,
                prepared.new_rows.iloc[offset:],
                size,
                args.rate,
                args.seconds,
                args.trigger_seconds,
                work / f"checkpoint-{time.time_ns()}",
            )
            offset += figures["rows"]
            progress(f"  {figures}")
            report["runs"].append(figures)
        if not args.no_search:
            progress(f"sustained-rate search over {args.search_rates} rows/s")
            report["rate_search"], sent = rate_search(
                spark,
                settings,
                prepared.new_rows.iloc[offset:],
                args.search_rates,
                args.search_seconds,
                args.trigger_seconds,
                args.max_lag_growth,
                work / f"checkpoint-{time.time_ns()}",
            )
            offset += sent
        if not args.no_batch_path:
            streamed = prepared.new_rows.iloc[:offset]["DP_DATE"].dt.date
            first, last = min(streamed), max(streamed)
            progress(f"batch path: analysis + score of {first}..{last}")
            report["batch_path"] = batch_path(spark, settings, prepared.dates, first, last)
            progress(f"  {report['batch_path']}")
    finally:
        spark.stop()
        if not args.keep:
            drop_database(settings)
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
