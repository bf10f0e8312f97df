"""`python -m db`: set up the database server and schema, and read the daily summary."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date

from config.settings import ConfigError, load_settings
from db.cdr import cdr_bounds, daily_summary
from db.connection import connection
from db.errors import DatabaseError
from db.migrate import init_database
from db.server import ensure_server, stop_local_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m db", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("init", help="create DB_NAME if missing and apply pending migrations")
    server = commands.add_parser(
        "server", help="use the configured server, or start a project-local MariaDB"
    )
    server.add_argument("--stop", action="store_true", help="stop the project-local server")
    summary = commands.add_parser(
        "summary", help="refresh DailySummary (GetDailyCDRDataBatch) and print rows per day"
    )
    summary.add_argument(
        "--start", type=date.fromisoformat, help="first day, YYYY-MM-DD (default: earliest)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        settings = load_settings()
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
            with connection(settings) as conn:
                start = args.start
                if start is None:
                    first, _, _ = cdr_bounds(conn)
                    if first is None:
                        print("DP_CDR_Data is empty: nothing to summarise")
                        return 0
                    start = first.date()
                frame = daily_summary(conn, start)
            print(f"Daily summary from {start} (GetDailyCDRDataBatch), {len(frame)} day(s):")
            print(frame.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))
    except (ConfigError, DatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
