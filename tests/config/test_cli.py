"""The shared CLI convention: date ranges over the config file, help that shows defaults."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import pytest

from config import cli
from config.settings import ConfigError
from tests.config.cli_help import help_without_default

FILE_RANGE = (date(2024, 1, 1), date(2024, 3, 31))


def _args(*flags: str) -> argparse.Namespace:
    parser = cli.parser("prog", None)
    cli.add_date_range(parser)
    return parser.parse_args(list(flags))


class _File:
    """A config file reader that records whether it was asked."""

    def __init__(self, error: Exception | None = None) -> None:
        self.read_from: list[Path | None] = []
        self._error = error

    def __call__(self, path: Path | None) -> tuple[date, date]:
        self.read_from.append(path)
        if self._error is not None:
            raise self._error
        return FILE_RANGE


def test_the_range_comes_from_the_config_file_by_default() -> None:
    read = _File()
    assert cli.date_range(_args(), read) == FILE_RANGE
    assert read.read_from == [None]


def test_the_config_flag_names_the_file_to_read() -> None:
    read = _File()
    cli.date_range(_args("--config", "other.json"), read)
    assert read.read_from == [Path("other.json")]


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--start", "2024-02-01"], (date(2024, 2, 1), date(2024, 3, 31))),
        (["--end", "2024-01-15"], (date(2024, 1, 1), date(2024, 1, 15))),
    ],
)
def test_one_flag_overrides_its_end_of_the_file_range(
    flags: list[str], expected: tuple[date, date]
) -> None:
    assert cli.date_range(_args(*flags), _File()) == expected


def test_both_flags_need_no_readable_file() -> None:
    read = _File(ConfigError("config.json: cannot read"))
    args = _args("--start", "2024-05-01", "--end", "2024-05-02")
    assert cli.date_range(args, read) == (date(2024, 5, 1), date(2024, 5, 2))
    assert read.read_from == []


def test_a_bad_file_is_a_config_error_when_it_is_needed() -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        cli.date_range(_args("--start", "2024-05-01"), _File(ConfigError("cannot read")))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--start", "2024-05-02", "--end", "2024-05-01"], "--start 2024-05-02 is after --end"),
        (["--start", "2024-04-01"], "start 2024-04-01 is after end 2024-03-31"),
        (["--end", "2023-12-31"], "start 2024-01-01 is after end 2023-12-31"),
    ],
)
def test_a_reversed_range_is_a_usage_error(flags: list[str], message: str) -> None:
    with pytest.raises(cli.UsageError, match=message):
        cli.date_range(_args(*flags), _File())


def test_run_maps_errors_to_the_shared_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    from db.errors import DatabaseUnavailable, QueryError

    def raising(error: Exception) -> int:
        raise error

    assert cli.run(lambda: raising(ConfigError("settings: DB_NAME bad"))) == cli.EXIT_USAGE
    assert cli.run(lambda: raising(cli.UsageError("--start after --end"))) == cli.EXIT_USAGE
    assert cli.run(lambda: raising(DatabaseUnavailable("server x unreachable"))) == cli.EXIT_FAILED
    assert cli.run(lambda: raising(QueryError("statement failed"))) == cli.EXIT_FAILED
    assert cli.run(lambda: cli.EXIT_OK) == cli.EXIT_OK
    assert capsys.readouterr().err.splitlines() == [
        "error: settings: DB_NAME bad",
        "error: --start after --end",
        "error: server x unreachable",
        "error: statement failed",
    ]


def test_help_shows_every_default_once() -> None:
    parser = cli.parser("prog", None)
    cli.add_date_range(parser)
    parser.add_argument("--rows", type=int, default=5, help="rows per batch")
    parser.add_argument("--out", type=Path, default=None, help="folder (default: OUTPUT_DIR)")

    assert help_without_default(parser) == []
    text = parser.format_help()
    assert "(default: 5)" in text
    assert "(default: None)" not in text
