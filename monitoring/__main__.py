"""`python -m monitoring`: label-free monitoring of a model version's predictions.

``run`` in file mode reads the reference and analysis predictions from CSV or Parquet files,
named by ``--reference`` and ``--analysis`` (labels that arrived later may come in a separate
``--targets`` file, joined on the mapping's id), and a JSON mapping of the column roles::

    {"y_true": "churned", "y_pred_proba": "score", "y_pred": "predicted", "timestamp": "ts",
     "id": "prediction_id", "features": ["calls", "sms", "plan"], "categorical": ["plan"]}

It prints the result as JSON on standard output and, with ``--output DIR``, writes the report
(CSV and plots) there. Without ``--reference``, ``run`` monitors a model version's stored
predictions (the current one by default), stores the figures in the database and writes the
report under ``OUTPUT_DIR/monitoring/<version>/``, as ``GET /run-monitoring`` does.

``serve`` starts the monitoring service (``GET /run-monitoring``, the dashboard at ``/``,
``/metrics``, ``/health``); ``poll`` watches ``model_predictions`` and runs once per new data.

Exit status: 0 done; 1 the report could not be written, or the database is unavailable;
2 bad input (a missing file, a bad mapping, missing columns, a single-class reference, too
few rows, an unknown chunk period or model version), said in one ``error:`` line on
standard error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError

from config.cli import positive_int
from config.settings import ConfigError, Settings, load_settings
from db.errors import DatabaseError
from monitoring.errors import InputError, MonitoringError
from monitoring.files import join_targets, load_mapping, read_frame
from monitoring.result import MonitoringResult
from monitoring.spec import (
    CATEGORICAL_METHODS,
    CHUNK_PERIODS,
    CONTINUOUS_METHODS,
    DEFAULT_CATEGORICAL_METHOD,
    DEFAULT_CONTINUOUS_METHOD,
    MIN_CHUNK_ROWS,
    Chunking,
    ColumnMapping,
    validation_message,
)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """Reports usage errors as one ``error:`` line and exit status 2, like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n")


def _parser() -> _Parser:
    parser = _Parser(
        prog="python -m monitoring",
        description="Label-free monitoring of a churn model's predictions: CBPE performance "
        "estimates, realized performance, drift and data quality per chunk.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser(
        "run",
        help="monitor predictions from files (--reference ...) or from the database",
        description="Monitor a model version's predictions and print the result as JSON. "
        "File mode reads --reference, --analysis and --mapping; without --reference the "
        "predictions come from the database.",
    )
    files = run.add_argument_group("file mode")
    files.add_argument("--reference", type=Path, help="reference predictions with labels")
    files.add_argument("--analysis", type=Path, help="predictions to monitor (.csv/.parquet)")
    files.add_argument("--targets", type=Path, help="labels of analysis predictions, by id")
    files.add_argument("--mapping", type=Path, help="JSON file naming the columns' roles")
    database = run.add_argument_group("database mode")
    database.add_argument("--model-version", help="model version to monitor (default: latest)")
    chunks = run.add_mutually_exclusive_group()
    chunks.add_argument(
        "--chunk-period",
        metavar="|".join(CHUNK_PERIODS),
        help="chunk by day, week or month (default: D)",
    )
    chunks.add_argument("--chunk-size", type=positive_int, help="chunk by this many rows")
    run.add_argument("--output", type=Path, help="also write the report (CSV, plots) here")
    run.add_argument(
        "--min-chunk-rows",
        type=positive_int,
        help=f"warn about smaller chunks (default: {MIN_CHUNK_ROWS}; database mode: "
        "MONITORING_MIN_CHUNK_ROWS)",
    )
    run.add_argument(
        "--continuous-method",
        choices=CONTINUOUS_METHODS,
        default=DEFAULT_CONTINUOUS_METHOD,
        help="univariate drift method of continuous features (default: %(default)s)",
    )
    run.add_argument(
        "--categorical-method",
        choices=CATEGORICAL_METHODS,
        default=DEFAULT_CATEGORICAL_METHOD,
        help="univariate drift method of categorical features (default: %(default)s)",
    )
    run.set_defaults(handler=_run)

    serve = commands.add_parser("serve", help="serve the monitoring API and dashboard")
    serve.add_argument("--host", help="address to listen on (default: MONITORING_HOST)")
    serve.add_argument("--port", type=positive_int, help="port (default: MONITORING_PORT, 5001)")
    serve.add_argument("--threads", type=positive_int, default=4, help="request threads")
    serve.set_defaults(handler=_serve)

    poll = commands.add_parser("poll", help="run monitoring whenever new predictions land")
    poll.add_argument(
        "--interval", type=float, help="seconds between checks (default: MONITORING_POLL_INTERVAL)"
    )
    poll.set_defaults(handler=_poll)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; return the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # a usage error (already reported) or --help
        return exc.code if isinstance(exc.code, int) else 2
    level = logging.WARNING if args.command == "run" else logging.INFO
    logging.basicConfig(level=level, format=LOG_FORMAT)
    # NannyML logs every threshold it clips to a metric's range; only its errors matter here.
    logging.getLogger("nannyml").setLevel(logging.ERROR)
    status: int = args.handler(args)
    return status


def _run(args: argparse.Namespace) -> int:
    if args.reference is None:
        return _run_from_database(args)
    return _run_from_files(args)


def _fail(message: str, status: int = 2) -> int:
    print(f"error: {message}", file=sys.stderr)
    return status


def _settings() -> Settings | None:
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _run_from_database(args: argparse.Namespace) -> int:
    if args.analysis or args.mapping or args.targets or args.output:
        return _fail("--analysis, --mapping, --targets and --output need --reference")
    settings = _settings()
    if settings is None:
        return 2
    overrides: dict[str, object] = {}
    if args.chunk_size is not None:
        overrides.update(monitoring_chunk_size=args.chunk_size)
    if args.chunk_period is not None:
        if args.chunk_period not in CHUNK_PERIODS:
            return _fail(f"--chunk-period must be one of {', '.join(CHUNK_PERIODS)}")
        overrides.update(monitoring_chunk_period=args.chunk_period, monitoring_chunk_size=None)
    if args.min_chunk_rows is not None:
        overrides.update(monitoring_min_chunk_rows=args.min_chunk_rows)
    from monitoring.runner import run_for_model

    try:
        _, report = run_for_model(
            settings.model_copy(update=overrides), args.model_version, trigger="cli"
        )
    except MonitoringError as exc:
        return _fail(str(exc))
    except DatabaseError as exc:
        return _fail(str(exc), status=1)
    print(json.dumps(report, allow_nan=False, indent=2))
    return 0


def _serve(args: argparse.Namespace) -> int:
    settings = _settings()
    if settings is None:
        return 2
    from monitoring.service import serve

    try:
        serve(settings, args.host, args.port, args.threads)
    except DatabaseError as exc:
        return _fail(str(exc), status=1)
    return 0


def _poll(args: argparse.Namespace) -> int:
    if args.interval is not None and args.interval <= 0:
        return _fail("--interval must be positive")
    settings = _settings()
    if settings is None:
        return 2
    from monitoring.poller import poll_forever

    poll_forever(settings, interval=args.interval)
    return 0


def _run_from_files(args: argparse.Namespace) -> int:
    try:
        result = _monitor_files(args)
    except MonitoringError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.output is not None:
        from monitoring.report import write_report  # plotly: only when a report is asked for

        try:
            written = write_report(result, args.output)
        except OSError as exc:
            print(f"error: cannot write the report to {args.output}: {exc}", file=sys.stderr)
            return 1
        log.info("wrote %d report files to %s", len(written), args.output)
    print(json.dumps(result.to_json(), allow_nan=False, indent=2))
    return 0


def _monitor_files(args: argparse.Namespace) -> MonitoringResult:
    if args.model_version is not None:
        raise InputError("--model-version selects a model in database mode, not with --reference")
    if args.analysis is None or args.mapping is None:
        raise InputError("file mode needs --analysis and --mapping as well as --reference")
    mapping = load_mapping(args.mapping)
    chunking = _chunking(args)
    reference = read_frame(args.reference, _reference_columns(mapping))
    analysis = read_frame(args.analysis, [*_reference_columns(mapping), *_id(mapping)])
    if args.targets is not None:
        targets = read_frame(args.targets, [mapping.y_true, *_id(mapping)])
        analysis = join_targets(analysis, targets, mapping)
    # Imported here, not at the top: NannyML takes seconds to import, and `--help` or a bad
    # mapping should not wait for it.
    from monitoring.core import run_monitoring

    return run_monitoring(
        reference,
        analysis,
        mapping,
        chunking,
        min_chunk_rows=args.min_chunk_rows or MIN_CHUNK_ROWS,
        continuous_method=args.continuous_method,
        categorical_method=args.categorical_method,
    )


def _chunking(args: argparse.Namespace) -> Chunking:
    try:
        if args.chunk_size is not None:
            return Chunking(size=args.chunk_size)
        if args.chunk_period is not None:
            return Chunking(period=args.chunk_period)
        return Chunking()
    except ValidationError as exc:
        raise InputError(f"invalid chunking: {validation_message(exc)}") from exc


def _reference_columns(mapping: ColumnMapping) -> list[str]:
    return [
        mapping.timestamp,
        mapping.y_pred_proba,
        mapping.y_pred,
        mapping.y_true,
        *mapping.features,
    ]


def _id(mapping: ColumnMapping) -> list[str]:
    return [] if mapping.id is None else [mapping.id]


if __name__ == "__main__":
    sys.exit(main())
