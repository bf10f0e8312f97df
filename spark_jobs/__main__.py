"""`python -m spark_jobs analysis|model|score`: the Spark stage's jobs."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from config.settings import ConfigError, load_pipeline_dates, load_settings
from db.errors import DatabaseError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m spark_jobs", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    analysis = commands.add_parser(
        "analysis",
        help="clean and aggregate the raw CDRs of [start_date, end_date] into Processed_Data",
    )
    analysis.add_argument("--config", type=Path, help="config.json (default: CONFIG_PATH)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from spark_jobs.analysis import EmptyRangeError, run_analysis
    from spark_jobs.session import SparkSetupError, build_spark_session

    try:
        settings = load_settings()
        dates = load_pipeline_dates(args.config or settings.config_path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        spark = build_spark_session(settings, f"cdr-{args.command}")
        try:
            report = run_analysis(spark, settings, dates)
        finally:
            spark.stop()
    except EmptyRangeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (DatabaseError, SparkSetupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
