"""The one convention every command-line entry point follows.

Exit status, the same in every CLI of the project:

- ``0`` (:data:`EXIT_OK`): done;
- ``1`` (:data:`EXIT_FAILED`): nothing to do, data that does not allow it, or a server that
  cannot be reached;
- ``2`` (:data:`EXIT_USAGE`): a usage or configuration mistake (a bad flag, setting or file).

Every flag shows its default in ``--help`` (:class:`HelpFormatter`); date ranges come from the
config file and are overridden by ``--start``/``--end`` (:func:`add_date_range`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATE_FORMAT = "%H:%M:%S"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each flag's default and keeps the module docstring's layout."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # A flag whose default is None and whose help already says what it defaults to
        # (a setting, the config file) would otherwise also read "(default: None)".
        text = action.help or ""
        if action.default is None and "default" in text:
            return text
        return super()._get_help_string(action)


def parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """An argument parser with the project's help format."""
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=HelpFormatter
    )


def positive_int(text: str) -> int:
    """An argparse type: a whole number above zero, or a usage error that says so."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text!r}")
    return value


def iso_date(text: str) -> date:
    """An argparse type: a ``YYYY-MM-DD`` calendar date."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


def add_date_range(
    command: argparse.ArgumentParser,
    *,
    config_help: str = "the JSON file with the date range (default: the CONFIG_PATH setting)",
    start_help: str = "first date, YYYY-MM-DD; overrides the config file",
    end_help: str = "last date, YYYY-MM-DD; overrides the config file",
) -> None:
    """Add ``--config``, ``--start`` and ``--end`` with the same meaning everywhere."""
    command.add_argument("--config", type=Path, default=None, help=config_help)
    command.add_argument("--start", type=iso_date, default=None, help=start_help)
    command.add_argument("--end", type=iso_date, default=None, help=end_help)


def check_range(start: date | None, end: date | None) -> None:
    """Raise a usage error (exit 2) when ``start`` is after ``end``."""
    if start is not None and end is not None and start > end:
        raise UsageError(f"--start {start} is after --end {end}")


def date_range(
    args: argparse.Namespace, read_file: Callable[[Path | None], tuple[date, date]]
) -> tuple[date, date]:
    """The range of :func:`add_date_range`'s flags: ``--start``/``--end`` over the config file.

    Args:
        args: Parsed arguments holding ``config``, ``start`` and ``end``.
        read_file: Reads the range of a config file (``None``: the default file); called only
            when ``--start`` or ``--end`` is missing, so both flags need no readable file.

    Raises:
        ConfigError: The config file is missing or invalid (exit 2).
        UsageError: The resulting start is after its end (exit 2).
    """
    if args.start is not None and args.end is not None:
        check_range(args.start, args.end)
        return args.start, args.end
    file_start, file_end = read_file(args.config)
    start = file_start if args.start is None else args.start
    end = file_end if args.end is None else args.end
    if start > end:
        raise UsageError(
            f"start {start} is after end {end} (--start and --end override the config file's)"
        )
    return start, end


class UsageError(Exception):
    """A usage mistake found after argument parsing; the CLI exits 2 with this message."""


def configure_logging(verbose: bool = False) -> None:
    """One log format for every CLI, Python's lines and Spark's alike.

    Quiet by default: our own progress at INFO, third-party chatter at WARNING.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=LOG_FORMAT,
        datefmt=LOG_DATE_FORMAT,
        force=True,
    )
    if not verbose:
        for noisy in ("py4j", "urllib3", "matplotlib", "PIL", "waitress.queue"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str, code: int = EXIT_FAILED) -> int:
    """Print ``error: message`` to stderr and return ``code`` for ``sys.exit``."""
    print(f"error: {message}", file=sys.stderr)
    return code


def run(main: Callable[[], int]) -> int:
    """Run a CLI body, turning the project's errors into the shared exit codes.

    Configuration and usage mistakes exit 2; an unreachable or refusing server, and every
    other error of our own hierarchies that reaches the edge, exit 1. Anything else is a bug
    and keeps its traceback.
    """
    from config.settings import ConfigError
    from db.errors import DatabaseError

    try:
        return main()
    except (ConfigError, UsageError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except DatabaseError as exc:
        return fail(str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
