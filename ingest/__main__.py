"""`python -m ingest`: seed the CDR history, or serve the streaming simulator."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date

from pydantic import ValidationError

from config.settings import ConfigError, Settings, load_settings
from db.errors import DatabaseError
from ingest.client import ClientError, describe_progress, run_stream
from ingest.generator import GeneratorConfig
from ingest.sources import SourceFormatError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ingest", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    seed = commands.add_parser(
        "seed",
        help="load history into DP_CDR_Data (idempotent)",
        description="Load history from the synthetic generator (default), a CSV / CSV.gz "
        "file, or a gs://bucket/object. Loading the same data twice inserts nothing.",
    )
    seed.add_argument("--source", help="a CSV / CSV.gz path or gs://bucket/object")
    defaults = GeneratorConfig()
    seed.add_argument("--subscribers", type=int, default=defaults.subscribers)
    seed.add_argument("--days", type=int, default=defaults.days)
    seed.add_argument("--start-date", type=date.fromisoformat, default=defaults.start_date)
    seed.add_argument("--churn-rate", type=float, default=defaults.churn_rate)
    seed.add_argument("--seed", type=int, default=defaults.seed, help="generator seed")
    seed.add_argument("--no-progress", action="store_true", help="no progress bar")

    serve = commands.add_parser("serve", help="serve the streaming simulator API")
    serve.add_argument("--host", help="address to listen on (default: INGEST_HOST)")
    serve.add_argument("--port", type=int, help="port (default: INGEST_PORT, 5000)")
    serve.add_argument("--threads", type=int, default=8, help="request threads")
    stream = commands.add_parser(
        "stream",
        help="start a stream on a running simulator and follow it to its end",
    )
    stream.add_argument("--url", help="simulator URL (default: http://INGEST_HOST:INGEST_PORT)")
    stream.add_argument("--batch-size", type=int, default=1000)
    stream.add_argument("--num-batches", type=int, default=10)
    stream.add_argument("--interval", type=float, default=60, help="seconds between batches")
    stream.add_argument("--clock", choices=("realtime", "simulated"), default="realtime")
    stream.add_argument("--seed", type=int)
    stream.add_argument("--stream-id", help="resume this stream (or name a new one)")
    stream.add_argument("--scenario", type=json.loads, help="drift knobs as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = load_settings()
        if args.command == "seed":
            return _seed(args, settings)
        if args.command == "stream":
            return _stream(args, settings)
        return _serve(args, settings)
    except (ConfigError, DatabaseError, SourceFormatError, ClientError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _seed(args: argparse.Namespace, settings: Settings) -> int:
    from db.migrate import init_database
    from ingest.seeding import seed_from_generator, seed_from_source

    init_database(settings)
    progress = not args.no_progress and sys.stderr.isatty()
    if args.source:
        report = seed_from_source(settings, args.source, progress=progress)
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
            print(f"error: {problems}".replace("_", "-"), file=sys.stderr)
            return 2
        report = seed_from_generator(settings, config, progress=progress)
    print(report.describe())
    return 0


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
    final = run_stream(url, request, lambda status: print(describe_progress(status), flush=True))
    return 0 if final["state"] == "completed" else 1


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from waitress import serve

    from db.migrate import init_database
    from ingest.app import create_app

    init_database(settings)  # a fresh database gets its schema instead of 500s

    host = args.host or settings.ingest_host
    port = args.port or settings.ingest_port
    app = create_app(settings)
    logging.getLogger(__name__).info("streaming simulator on http://%s:%s", host, port)
    try:
        serve(app, host=host, port=port, threads=args.threads)
    finally:
        app.extensions["ingest.streams"].shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
