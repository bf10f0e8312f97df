"""`python -m db init|server|summary`: set up the database server and schema, and read the
daily summary.

`summary` covers the raw range of the pipeline's config file (`start_date` to `end_date` of
`config/config.json`, the CONFIG_PATH setting: the range `spark_jobs analysis` processes),
overridden by `--start`/`--end`.

Exit status: 0 done; 1 no CDRs in the range, or the server cannot be reached or refused the
request; 2 invalid settings, config file or arguments.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from config import cli
from config.settings import Settings, load_pipeline_dates, load_settings
from db.cdr import daily_summary
from db.connection import connection
from db.migrate import init_database
from db.server import ensure_server, stop_local_server


def _parser() -> argparse.ArgumentParser:
    parser = cli.parser("python -m db", __doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "init",
        help="create DB_NAME if missing and apply pending migrations",
        formatter_class=cli.HelpFormatter,
    )
    server = commands.add_parser(
        "server",
        help="use the configured server, or start a project-local MariaDB",
        formatter_class=cli.HelpFormatter,
    )
    server.add_argument("--stop", action="store_true", help="stop the project-local server")
    summary = commands.add_parser(
        "summary",
        help="refresh DailySummary (GetDailyCDRDataBatch) and print rows per day",
        description="Refresh DailySummary from the first day of the range on, and print the\n"
        "days of the range: start_date to end_date of the config file unless overridden.",
        formatter_class=cli.HelpFormatter,
    )
    cli.add_date_range(
        summary,
        config_help="the pipeline's JSON config file; its start_date and end_date give the "
        "range (default: the CONFIG_PATH setting, config/config.json)",
        start_help="first date, YYYY-MM-DD, inclusive (default: start_date of the config file)",
        end_help="last date, YYYY-MM-DD, inclusive (default: end_date of the config file)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status."""
    args = _parser().parse_args(argv)
    cli.configure_logging(args.verbose)
    return cli.run(lambda: _command(args, load_settings()))


def _command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "init":
        applied = init_database(settings)
        print(f"database {settings.db_name}: applied {len(applied)} migration(s)", *applied)
    elif args.command == "server":
        if args.stop:
            print("stopped" if stop_local_server() else "no project-local server was running")
        else:
            found = ensure_server(settings)
            print(f"database server: {found.db_user}@{found.db_host}:{found.db_port}")
    else:
        return _summary(args, settings)
    return cli.EXIT_OK


def _summary(args: argparse.Namespace, settings: Settings) -> int:
    def file_range(path: Path | None) -> tuple[date, date]:
        dates = load_pipeline_dates(path or settings.config_path)
        return dates.start_date, dates.end_date

    start, end = cli.date_range(args, file_range)
    with connection(settings) as conn:
        frame = daily_summary(conn, start, end)
    if frame.empty:
        return cli.fail(f"no CDRs between {start} and {end} in DP_CDR_Data: nothing to summarise")
    print(f"Daily summary from {start} to {end} (GetDailyCDRDataBatch), {len(frame)} day(s):")
    print(frame.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    return cli.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
