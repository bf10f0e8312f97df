"""`python -m spark_jobs analysis|model|score|stream`: the Spark stage's jobs.

Exit status: 0 done, 1 nothing to do or the data does not allow it (an empty range, no
model yet), 2 a configuration or usage mistake.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from config.settings import (
    ConfigError,
    PipelineDates,
    Settings,
    load_pipeline_dates,
    load_settings,
)
from db.errors import DatabaseError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spark_jobs", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    analysis = commands.add_parser(
        "analysis",
        help="clean and aggregate the raw CDRs of [start_date, end_date] into Processed_Data",
    )
    model = commands.add_parser(
        "model",
        help="train, calibrate and register the churn model on [processed_start, processed_end]",
    )
    for command in (analysis, model):
        command.add_argument("--config", type=Path, help="config.json (default: CONFIG_PATH)")
    score = commands.add_parser(
        "score", help="score later subscriber-days with the current model into model_predictions"
    )
    score.add_argument(
        "--start", type=_iso_date, help="first date (default: the day after the test window)"
    )
    score.add_argument(
        "--end", type=_iso_date, help="last date (default: the latest date in Processed_Data)"
    )
    from spark_jobs.stream import add_stream_command

    add_stream_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "stream":
        from spark_jobs.stream import stream_main

        return stream_main(args)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from spark_jobs.errors import ScoreRangeError, SparkJobError
    from spark_jobs.session import SparkSetupError, build_spark_session

    try:
        settings = load_settings()
        dates = (
            None
            if args.command == "score"
            else load_pipeline_dates(args.config or settings.config_path)
        )
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "score" and args.start and args.end and args.start > args.end:
        print(f"error: --start {args.start} is after --end {args.end}", file=sys.stderr)
        return 2
    try:
        spark = build_spark_session(settings, f"cdr-{args.command}")
        try:
            report = _run(args, spark, settings, dates)
        finally:
            spark.stop()
    except ScoreRangeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if args.start or args.end else 1
    except (SparkJobError, DatabaseError, SparkSetupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.describe())
    return 0


class _Report(Protocol):
    def describe(self) -> str: ...


def _run(
    args: argparse.Namespace, spark: SparkSession, settings: Settings, dates: PipelineDates | None
) -> _Report:
    if args.command == "score":
        from spark_jobs.scoring import run_score

        return run_score(spark, settings, args.start, args.end)
    assert dates is not None  # read for analysis and model
    if args.command == "analysis":
        from spark_jobs.analysis import run_analysis

        return run_analysis(spark, settings, dates)
    from spark_jobs.model import run_model

    return run_model(spark, settings, dates)


if __name__ == "__main__":
    sys.exit(main())
