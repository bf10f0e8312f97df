"""`python -m spark_jobs analysis|model|score|stream`: the Spark stage's jobs.

Each job checks the database (connect + SELECT 1) before it starts Spark, so a wrong
password or an unreachable server fails in a second, not after the JVM's start.

Exit status: 0 done; 1 nothing to do, data that does not allow it (an empty range, no
model yet), a server that cannot be reached or a cluster that grants no executor; 2 a
configuration or usage mistake.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from typing import TYPE_CHECKING, Protocol

from config.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_date_range,
    check_range,
    configure_logging,
    fail,
    parser,
    run,
)
from config.settings import PipelineDates, Settings, load_pipeline_dates, load_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The config file's keys each job's --start/--end override.
_RANGE_KEYS = {
    "analysis": ("start_date", "end_date"),
    "model": ("processed_start", "processed_end"),
}


_CONFIG_HELP = "the JSON file with the dates; when omitted, the CONFIG_PATH setting"


def _parser() -> argparse.ArgumentParser:
    cli = parser("python -m spark_jobs", __doc__)
    cli.add_argument(
        "-v", "--verbose", action="store_true", help="debug logs and Spark's INFO lines"
    )
    commands = cli.add_subparsers(dest="command", required=True)
    analysis = commands.add_parser(
        "analysis",
        help="clean and aggregate the raw CDRs of [start_date, end_date] into Processed_Data",
        formatter_class=cli.formatter_class,
    )
    add_date_range(
        analysis,
        config_help=_CONFIG_HELP,
        start_help="first raw date, YYYY-MM-DD; overrides start_date of the config file",
        end_help="last raw date, YYYY-MM-DD; overrides end_date of the config file",
    )
    model = commands.add_parser(
        "model",
        help="train, calibrate and register the churn model on [processed_start, processed_end]",
        formatter_class=cli.formatter_class,
    )
    add_date_range(
        model,
        config_help=_CONFIG_HELP,
        start_help="first processed date, YYYY-MM-DD; overrides processed_start of the config",
        end_help="last processed date, YYYY-MM-DD; overrides processed_end of the config",
    )
    score = commands.add_parser(
        "score",
        help="score the dates after the model's test window into model_predictions",
        formatter_class=cli.formatter_class,
    )
    add_date_range(
        score,
        config_help="the JSON run configuration, checked when given; score's dates come "
        "from the model and Processed_Data, not from it",
        start_help="first date, YYYY-MM-DD; when omitted, the day after the model's test window",
        end_help="last date, YYYY-MM-DD; when omitted, the latest date in Processed_Data",
    )
    from spark_jobs.stream import add_stream_command

    add_stream_command(commands, cli.formatter_class)
    return cli


def with_overrides(
    dates: PipelineDates, command: str, start: date | None, end: date | None
) -> PipelineDates:
    """``dates`` with ``command``'s range replaced by ``--start``/``--end`` where given.

    Raises:
        UsageError: the range would end before it starts.
    """
    start_key, end_key = _RANGE_KEYS[command]
    first = start or getattr(dates, start_key)
    last = end or getattr(dates, end_key)
    if first > last:
        raise UsageError(
            f"the {command} range would start {first} and end {last}: "
            f"check --start/--end and {start_key}/{end_key} in the config file"
        )
    return dates.model_copy(update={start_key: first, end_key: last})


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one job; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "stream":
        from spark_jobs.stream import stream_main

        return stream_main(args)
    configure_logging(args.verbose)
    return run(lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    from db.connection import ping
    from spark_jobs.errors import ScoreRangeError, SparkJobError
    from spark_jobs.session import SparkSetupError, build_spark_session

    settings = load_settings(**({"spark_verbose": True} if args.verbose else {}))
    check_range(args.start, args.end)
    dates = None
    if args.command != "score" or args.config:
        dates = load_pipeline_dates(args.config or settings.config_path)
    if args.command != "score":
        assert dates is not None
        dates = with_overrides(dates, args.command, args.start, args.end)
    # Before the JVM: a wrong password or a stopped server fails now, not in ~10 s.
    ping(settings)
    try:
        spark = build_spark_session(settings, f"cdr-{args.command}")
        try:
            report = _run(args, spark, settings, dates)
        finally:
            spark.stop()
    except ScoreRangeError as exc:
        return fail(str(exc), EXIT_USAGE if args.start or args.end else EXIT_FAILED)
    except (SparkJobError, SparkSetupError) as exc:
        return fail(str(exc), EXIT_FAILED)
    print(report.describe())
    return EXIT_OK


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
