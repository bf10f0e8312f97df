"""`python -m ingest`: seed the CDR history, serve the streaming simulator, or run a stream.

Exit status: 0 done; 1 the data does not allow it, or a server (database, simulator) cannot
be reached or refused; 2 a usage or configuration mistake.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pydantic import ValidationError

from config.cli import (
    EXIT_FAILED,
    EXIT_OK,
    UsageError,
    configure_logging,
    fail,
    iso_date,
    parser,
    positive_int,
    run,
)
from config.settings import Settings, load_settings
from ingest.client import ClientError, describe_progress, run_stream
from ingest.generator import GeneratorConfig
from ingest.sources import SourceFormatError

log = logging.getLogger(__name__)


def _scenario(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object of drift knobs")
    return value


def _parser() -> argparse.ArgumentParser:
    cli = parser("python -m ingest", __doc__)
    cli.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = cli.add_subparsers(dest="command", required=True)

    seed = commands.add_parser(
        "seed",
        help="load history into DP_CDR_Data (idempotent)",
        description="Load history from the synthetic generator (default), a CSV / CSV.gz "
        "file, or a gs://bucket/object. Loading the same data twice inserts nothing.",
        formatter_class=cli.formatter_class,
    )
    seed.add_argument("--source", help="a CSV / CSV.gz path or gs://bucket/object")
    defaults = GeneratorConfig()
    seed.add_argument(
        "--subscribers", type=positive_int, default=defaults.subscribers, help="subscribers"
    )
    seed.add_argument("--days", type=positive_int, default=defaults.days, help="days of history")
    seed.add_argument(
        "--start-date", type=iso_date, default=defaults.start_date, help="first day, YYYY-MM-DD"
    )
    seed.add_argument(
        "--churn-rate", type=float, default=defaults.churn_rate, help="share of churners"
    )
    seed.add_argument("--seed", type=int, default=defaults.seed, help="generator seed")
    seed.add_argument("--no-progress", action="store_true", help="no progress bar")

    serve = commands.add_parser(
        "serve", help="serve the streaming simulator API", formatter_class=cli.formatter_class
    )
    serve.add_argument("--host", help="address to listen on (default: the INGEST_HOST setting)")
    serve.add_argument("--port", type=positive_int, help="port (default: the INGEST_PORT setting)")
    serve.add_argument("--threads", type=positive_int, default=8, help="request threads")

    stream = commands.add_parser(
        "stream",
        help="start a stream on a running simulator and follow it to its end",
        formatter_class=cli.formatter_class,
    )
    stream.add_argument("--url", help="simulator URL (default: http://INGEST_HOST:INGEST_PORT)")
    stream.add_argument("--batch-size", type=positive_int, default=1000, help="rows per batch")
    stream.add_argument("--num-batches", type=positive_int, default=10, help="batches")
    stream.add_argument("--interval", type=float, default=60, help="seconds between batches")
    stream.add_argument(
        "--clock", choices=("realtime", "simulated"), default="realtime", help="row timestamps"
    )
    stream.add_argument("--seed", type=int, help="fixes every random draw (default: random)")
    stream.add_argument("--stream-id", help="resume this stream (or name a new one)")
    stream.add_argument("--scenario", type=_scenario, help="drift knobs as a JSON object")
    return cli


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args.verbose)

    def body() -> int:
        settings = load_settings()
        try:
            if args.command == "seed":
                return _seed(args, settings)
            if args.command == "stream":
                return _stream(args, settings)
            return _serve(args, settings)
        except (SourceFormatError, ClientError) as exc:
            return fail(str(exc), EXIT_FAILED)

    return run(body)


def _seed(args: argparse.Namespace, settings: Settings) -> int:
    from db.migrate import init_database
    from ingest.seeding import seed_from_generator, seed_from_source

    if args.source:
        init_database(settings)
        report = seed_from_source(settings, args.source, progress=_progress(args))
    else:
        try:
            config = GeneratorConfig(
                subscribers=args.subscribers,
                days=args.days,
                start_date=args.start_date,
                churn_rate=args.churn_rate,
                seed=args.seed,
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"--{'-'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise UsageError(problems.replace("_", "-")) from None
        init_database(settings)
        report = seed_from_generator(settings, config, progress=_progress(args))
    print(report.describe())
    return EXIT_OK


def _progress(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _stream(args: argparse.Namespace, settings: Settings) -> int:
    url = args.url or f"http://{settings.ingest_host}:{settings.ingest_port}"
    request = {
        "batch_size": args.batch_size,
        "num_batches": args.num_batches,
        "interval": args.interval,
        "clock": args.clock,
    }
    optional = {"seed": args.seed, "stream_id": args.stream_id, "scenario": args.scenario}
    request.update({key: value for key, value in optional.items() if value is not None})
    token = settings.api_token.get_secret_value() if settings.api_token else None
    final = run_stream(
        url, request, lambda status: print(describe_progress(status), flush=True), token=token
    )
    return EXIT_OK if final["state"] == "completed" else EXIT_FAILED


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from config.web import PortInUse, serve
    from db.migrate import init_database
    from ingest.app import create_app

    init_database(settings)  # a fresh database gets its schema instead of 500s
    host = args.host or settings.ingest_host
    port = args.port or settings.ingest_port
    app = create_app(settings)
    try:
        serve(app, host, port, "INGEST_PORT", threads=args.threads)
    except PortInUse as exc:
        return fail(str(exc), EXIT_FAILED)
    finally:
        app.extensions["ingest.streams"].shutdown()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
