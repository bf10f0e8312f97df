"""`python -m monitoring`: label-free monitoring of a model version's predictions.

``run`` in file mode reads the reference and analysis predictions from CSV or Parquet files,
named by ``--reference`` and ``--analysis`` (labels that arrived later may come in a separate
``--targets`` file, joined on the mapping's id), and a JSON mapping of the column roles::

    {"y_true": "churned", "y_pred_proba": "score", "y_pred": "predicted", "timestamp": "ts",
     "id": "prediction_id", "features": ["calls", "sms", "plan"], "categorical": ["plan"]}

It prints a summary table on standard output (per metric: chunks, realized chunks, mean
|estimate - realized|, the latest estimate and its bounds, alerts; then the alert counts and the
verdicts), or the full result as JSON with ``--json``, and with ``--output DIR`` writes the
report (CSV and plots) there. Without ``--reference``, ``run`` monitors a model version's stored
predictions (the current one by default), stores the figures in the database and writes the
report under ``OUTPUT_DIR/monitoring/<DB_NAME>/<version>/``, as ``GET /run-monitoring`` does.

``serve`` starts the monitoring service (``GET /run-monitoring``, the dashboard at ``/``,
``/metrics``, ``/health``); ``poll`` watches ``model_predictions`` and runs once per new data.

Exit status (the project's convention, `config.cli`): 0 done; 1 nothing to do or data that
does not allow it (no model, a single-class reference, too few rows, a run in progress), the
report could not be written, the port is taken, or the database is unavailable or missing;
2 a usage or configuration mistake (a bad flag or setting, a missing file, a bad mapping,
missing columns). Errors are one ``error:`` line on standard error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import NoReturn

from pydantic import ValidationError

from config.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    HelpFormatter,
    UsageError,
    configure_logging,
    fail,
    positive_int,
    run,
)
from config.settings import load_settings
from config.web import validation_error
from monitoring.compute.result import MonitoringResult
from monitoring.compute.spec import (
    ALERT_DIRECTIONS,
    CATEGORICAL_METHODS,
    CHUNK_PERIODS,
    CONTINUOUS_METHODS,
    DEFAULT_CATEGORICAL_METHOD,
    DEFAULT_CONTINUOUS_METHOD,
    MIN_CHUNK_ROWS,
    AlertPolicy,
    Chunking,
    ColumnMapping,
)
from monitoring.errors import InputError, MonitoringError
from monitoring.pipeline.files import join_targets, load_mapping, read_frame

log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    """The project's help format; usage errors as one ``error:`` line and exit status 2."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"error: {message}\n")


def _parser() -> _Parser:
    parser = _Parser(
        prog="python -m monitoring",
        description="Label-free monitoring of a churn model's predictions: CBPE performance "
        "estimates, realized performance, drift and data quality per chunk.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run_cmd = commands.add_parser(
        "run",
        help="monitor predictions from files (--reference ...) or from the database",
        description="Monitor a model version's predictions and print a summary (the full "
        "result as JSON with --json). "
        "File mode reads --reference, --analysis and --mapping; without --reference the "
        "predictions come from the database.",
    )
    files = run_cmd.add_argument_group("file mode")
    files.add_argument("--reference", type=Path, help="reference predictions with labels")
    files.add_argument("--analysis", type=Path, help="predictions to monitor (.csv/.parquet)")
    files.add_argument("--targets", type=Path, help="labels of analysis predictions, by id")
    files.add_argument("--mapping", type=Path, help="JSON file naming the columns' roles")
    database = run_cmd.add_argument_group("database mode")
    database.add_argument(
        "--model-version", help="model version to monitor (default: the current model)"
    )
    chunks = run_cmd.add_mutually_exclusive_group()
    chunks.add_argument(
        "--chunk-period",
        metavar="|".join(CHUNK_PERIODS),
        help="chunk by day, week or month (default: D in file mode, MONITORING_CHUNK_PERIOD "
        "in database mode)",
    )
    chunks.add_argument(
        "--chunk-size",
        type=positive_int,
        help="chunk by this many rows (default: by period; MONITORING_CHUNK_SIZE in database mode)",
    )
    run_cmd.add_argument("--output", type=Path, help="also write the report (CSV, plots) here")
    run_cmd.add_argument(
        "--json", action="store_true", help="print the full result as JSON, not the summary"
    )
    run_cmd.add_argument(
        "--alert-direction",
        choices=ALERT_DIRECTIONS,
        help="performance alerts on a drop (lower) or on a drop or a rise (both) (default: "
        "lower in file mode, MONITORING_ALERT_DIRECTION in database mode)",
    )
    run_cmd.add_argument(
        "--min-chunk-rows",
        type=positive_int,
        help=f"warn about smaller chunks (default: {MIN_CHUNK_ROWS} in file mode, "
        "MONITORING_MIN_CHUNK_ROWS in database mode)",
    )
    run_cmd.add_argument(
        "--continuous-method",
        choices=CONTINUOUS_METHODS,
        default=DEFAULT_CONTINUOUS_METHOD,
        help="univariate drift method of continuous features",
    )
    run_cmd.add_argument(
        "--categorical-method",
        choices=CATEGORICAL_METHODS,
        default=DEFAULT_CATEGORICAL_METHOD,
        help="univariate drift method of categorical features",
    )
    run_cmd.set_defaults(handler=_run)

    serve = commands.add_parser("serve", help="serve the monitoring API and dashboard")
    serve.add_argument("--host", help="address to listen on (default: MONITORING_HOST)")
    serve.add_argument("--port", type=positive_int, help="port (default: MONITORING_PORT)")
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
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    configure_logging(args.verbose)
    if args.command == "run" and not args.verbose:
        # Standard output is the JSON result; standard error only says what went wrong.
        logging.getLogger().setLevel(logging.WARNING)
    # NannyML logs every threshold it clips to a metric's range; only its errors matter here.
    logging.getLogger("nannyml").setLevel(logging.ERROR)
    status: int = run(lambda: args.handler(args))
    return status


def _run(args: argparse.Namespace) -> int:
    if args.reference is None:
        return _run_from_database(args)
    return _run_from_files(args)


def _run_from_database(args: argparse.Namespace) -> int:
    if args.analysis or args.mapping or args.targets or args.output:
        raise UsageError("--analysis, --mapping, --targets and --output need --reference")
    settings = load_settings()
    overrides: dict[str, object] = {}
    if args.chunk_size is not None:
        overrides.update(monitoring_chunk_size=args.chunk_size)
    if args.chunk_period is not None:
        if args.chunk_period not in CHUNK_PERIODS:
            raise UsageError(f"--chunk-period must be one of {', '.join(CHUNK_PERIODS)}")
        overrides.update(monitoring_chunk_period=args.chunk_period, monitoring_chunk_size=None)
    if args.min_chunk_rows is not None:
        overrides.update(monitoring_min_chunk_rows=args.min_chunk_rows)
    if args.alert_direction is not None:
        overrides.update(monitoring_alert_direction=args.alert_direction)
    settings = settings.model_copy(update=overrides)
    from monitoring.pipeline.runner import run_for_model

    try:
        completed = run_for_model(settings, args.model_version, trigger="cli")
    except InputError as exc:
        return fail(str(exc), EXIT_USAGE)
    except MonitoringError as exc:
        return fail(str(exc), EXIT_FAILED)
    _print(completed.to_json(settings.output_dir), args.json)
    return EXIT_OK


def _print(report: dict[str, object], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, allow_nan=False, indent=2))
        return
    from monitoring.report.summary import summary_table

    print(summary_table(report))


def _serve(args: argparse.Namespace) -> int:
    from config.web import PortInUse
    from monitoring.web.app import serve

    try:
        serve(load_settings(), args.host, args.port, args.threads)
    except PortInUse as exc:
        return fail(str(exc), EXIT_FAILED)
    return EXIT_OK


def _poll(args: argparse.Namespace) -> int:
    if args.interval is not None and args.interval <= 0:
        raise UsageError("--interval must be positive")
    settings = load_settings()
    from monitoring.pipeline.poller import poll_forever

    poll_forever(settings, interval=args.interval)
    return EXIT_OK


def _run_from_files(args: argparse.Namespace) -> int:
    try:
        result = _monitor_files(args)
    except InputError as exc:
        return fail(str(exc), EXIT_USAGE)
    except MonitoringError as exc:
        return fail(str(exc), EXIT_FAILED)
    if args.output is not None:
        from monitoring.report import write_report  # plotly: only when a report is asked for

        try:
            written = write_report(result, args.output)
        except OSError as exc:
            return fail(f"cannot write the report to {args.output}: {exc}", EXIT_FAILED)
        log.info("wrote %d report files to %s", len(written), args.output)
    _print(result.to_json(), args.json)
    return EXIT_OK


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
    from monitoring.compute.core import run_monitoring

    return run_monitoring(
        reference,
        analysis,
        mapping,
        chunking,
        min_chunk_rows=args.min_chunk_rows or MIN_CHUNK_ROWS,
        continuous_method=args.continuous_method,
        categorical_method=args.categorical_method,
        policy=AlertPolicy(direction=args.alert_direction or "lower"),
    )


def _chunking(args: argparse.Namespace) -> Chunking:
    try:
        if args.chunk_size is not None:
            return Chunking(size=args.chunk_size)
        if args.chunk_period is not None:
            return Chunking(period=args.chunk_period)
        return Chunking()
    except ValidationError as exc:
        raise InputError(f"invalid chunking: {validation_error(exc).message}") from exc


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
