"""`python -m db`, and the exit codes every CLI of the project shares (config.cli).

0 done; 1 nothing to do, data that does not allow it, or a server that cannot be reached;
2 a usage or configuration mistake.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from config.settings import PROJECT_ROOT, Settings
from db.__main__ import _parser, main
from db.cdr import frame_to_rows, insert_cdr_rows
from db.connection import connection, transaction
from db.schema import CDR_COLUMNS
from tests.config.cli_help import help_without_default

# Every CLI command that reads the settings; each must refuse a bad DB_NAME the same way.
EVERY_COMMAND = [
    pytest.param(["db", "init"], id="db-init"),
    pytest.param(["db", "summary"], id="db-summary"),
    pytest.param(["db", "server"], id="db-server"),
    pytest.param(["eda"], id="eda"),
    pytest.param(["ingest", "seed"], id="ingest-seed"),
    pytest.param(["ingest", "serve"], id="ingest-serve"),
    pytest.param(["spark_jobs", "analysis"], id="spark_jobs-analysis"),
    pytest.param(["spark_jobs", "model"], id="spark_jobs-model"),
    pytest.param(["spark_jobs", "score"], id="spark_jobs-score"),
    pytest.param(["monitoring", "run"], id="monitoring-run"),
    pytest.param(["monitoring", "serve"], id="monitoring-serve"),
    pytest.param(["monitoring", "poll"], id="monitoring-poll"),
]


def _run(command: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "OUTPUT_DIR": str(tmp_path / "out"),
        "MODEL_DIR": str(tmp_path / "models"),
        # Should a command get past its settings, it must not take a port someone else uses.
        "INGEST_PORT": "5601",
        "MONITORING_PORT": "5602",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", *command],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _closed_port() -> int:
    with socket.socket() as probe:  # nothing listens on it once the probe is closed
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("command", EVERY_COMMAND)
def test_a_bad_db_name_exits_2_with_one_line_naming_it(command: list[str], tmp_path: Path) -> None:
    result = _run(command, tmp_path, DB_NAME="my-db")

    line = _one_line(result.stderr)
    assert result.returncode == 2, result.stderr
    assert "DB_NAME" in line and "'my-db'" in line
    assert result.stdout == ""
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "command", [["db", "init"], ["db", "summary"], ["eda"]], ids=["db-init", "db-summary", "eda"]
)
def test_an_unreachable_server_exits_1_with_one_line(command: list[str], tmp_path: Path) -> None:
    port = _closed_port()

    result = _run(command, tmp_path, DB_HOST="127.0.0.1", DB_PORT=str(port), DB_SOCKET="")

    line = _one_line(result.stderr)
    assert result.returncode == 1, result.stderr
    assert f"127.0.0.1:{port} is unreachable" in line
    assert result.stdout == ""


def _row(day: str, msisdn: str, calls: int) -> dict[str, object]:
    return {
        "DP_DATE": pd.Timestamp(day),
        "DP_MSISDN": msisdn,
        "DP_MOC_COUNT": calls,
        "DP_MOC_DURATION": 1.0,
        "DP_MTC_COUNT": 1,
        "DP_MTC_DURATION": 1.0,
        "DP_MOSMS_COUNT": 0,
        "DP_MTSMS_COUNT": 0,
        "DP_DATA_COUNT": 1,
        "DP_DATA_VOLUME": 2.0,
        "PSEUDO_CHURNED": 0,
    }


@pytest.fixture
def summary_db(db_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A database with CDRs on 2024-01-01, -02 and -04, named by the environment."""
    frame = pd.DataFrame(
        [
            _row("2024-01-01 08:00", "a", 2),
            _row("2024-01-02 09:00", "a", 3),
            _row("2024-01-04 10:00", "b", 4),
        ],
        columns=list(CDR_COLUMNS),
    )
    with connection(db_settings) as conn, transaction(conn) as cursor:
        insert_cdr_rows(conn, cursor, frame_to_rows(frame), chunk_rows=10)
    monkeypatch.setenv("DB_NAME", db_settings.db_name)
    return db_settings


def _config(tmp_path: Path, start: str, end: str) -> Path:
    path = tmp_path / "config.json"
    payload = {
        "start_date": start,
        "end_date": end,
        "processed_start": start,
        "processed_end": end,
    }
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def _days(out: str) -> list[date]:
    return [date.fromisoformat(line.split()[0]) for line in out.splitlines()[2:]]


def test_summary_reads_the_range_of_the_config_file(
    summary_db: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "2024-01-02", "2024-01-03")

    assert main(["summary", "--config", str(config)]) == 0

    out = capsys.readouterr().out
    assert out.startswith("Daily summary from 2024-01-02 to 2024-01-03")
    assert _days(out) == [date(2024, 1, 2)]


def test_summary_flags_override_the_config_file(
    summary_db: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, "2024-01-02", "2024-01-03")

    assert main(["summary", "--config", str(config), "--start", "2024-01-01"]) == 0
    assert _days(capsys.readouterr().out) == [date(2024, 1, 1), date(2024, 1, 2)]

    assert main(["summary", "--config", str(config), "--end", "2024-01-31"]) == 0
    assert _days(capsys.readouterr().out) == [date(2024, 1, 2), date(2024, 1, 4)]

    # Both flags given: the config file is not needed at all.
    missing = tmp_path / "absent.json"
    assert (
        main(["summary", "--config", str(missing), "--start", "2024-01-04", "--end", "2024-01-04"])
        == 0
    )
    assert _days(capsys.readouterr().out) == [date(2024, 1, 4)]


def test_summary_of_an_empty_range_exits_1(
    summary_db: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summary", "--start", "2030-01-01", "--end", "2030-01-31"]) == 1
    captured = capsys.readouterr()
    assert "no CDRs between 2030-01-01 and 2030-01-31" in _one_line(captured.err)
    assert captured.out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2024-01-05", "--end", "2024-01-04"], "--start 2024-01-05 is after --end"),
        (["--start", "2099-01-01"], "start 2099-01-01 is after end 2024-01-03"),
        (["--config", "{absent}"], "cannot read"),
        (["--config", "{bad}"], "key 'end_date' has bad value '2024-13-01'"),
    ],
    ids=["flags-reversed", "start-after-the-file-end", "missing-file", "bad-file"],
)
def test_summary_usage_and_config_mistakes_exit_2(
    summary_db: Settings,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    config = _config(tmp_path, "2024-01-02", "2024-01-03")
    bad = tmp_path / "bad.json"
    bad.write_text(
        config.read_text().replace('"end_date": "2024-01-03"', '"end_date": "2024-13-01"')
    )
    paths = {"{absent}": str(tmp_path / "absent.json"), "{bad}": str(bad)}
    args = [paths.get(arg, arg) for arg in args]
    if "--config" not in args:
        args += ["--config", str(config)]

    assert main(["summary", *args]) == 2
    assert message in _one_line(capsys.readouterr().err)


def test_a_bad_date_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["summary", "--start", "2024-02-30"])

    assert exit_info.value.code == 2
    assert "not a YYYY-MM-DD date: '2024-02-30'" in capsys.readouterr().err


def test_every_flag_shows_its_default() -> None:
    parser = _parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == {"init", "server", "summary"}
    for command in (parser, *commands.choices.values()):
        assert help_without_default(command) == [], command.prog
