"""`python -m eda` end to end on the real database, and its exit codes for bad input."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from config.settings import PROJECT_ROOT, Settings
from eda.__main__ import _parser, main
from eda.report import REPORT_FILE, image_files
from tests.config.cli_help import help_without_default

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _params(tmp_path: Path, start: str, end: str) -> Path:
    path = tmp_path / "query_params.json"
    path.write_text(json.dumps({"start_date": start, "end_date": end}), encoding="utf-8")
    return path


def _files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


@pytest.mark.slow
def test_the_cli_writes_the_report_and_its_figures(
    seeded: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = _params(tmp_path, "2024-01-01", "2024-01-20")
    output = tmp_path / "out"

    code = main(
        ["--config", str(params), "--output", str(output), "--sample-rows", "30"], settings=seeded
    )

    assert code == 0
    folder = output / "eda" / "2024-01-01_2024-01-20"
    assert {path.name for path in _files(output)} == {REPORT_FILE, *image_files()}
    for name in image_files():
        png = (folder / name).read_bytes()
        assert png.startswith(PNG_SIGNATURE), name
        assert len(png) > 15_000, f"{name} is only {len(png)} bytes"
    report = (folder / REPORT_FILE).read_text(encoding="utf-8")
    assert re.findall(r"!\[[^]]*\]\(([^)]+)\)", report) == image_files()
    assert "**This is a sample**" in report and "label 1: 30 of" in report
    out = capsys.readouterr().out
    assert out.startswith("EDA of DP_CDR_Data from 2024-01-01 to 2024-01-20 (20 days, 20 with")
    assert f"report: {folder / REPORT_FILE}" in out
    assert plt.get_fignums() == []


def test_a_bad_date_in_the_params_file_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], base_settings: Settings
) -> None:
    params = _params(tmp_path, "2024-25-26", "2024-01-31")

    code = main(
        ["--config", str(params), "--output", str(tmp_path / "out")], settings=base_settings
    )

    err = capsys.readouterr().err
    assert code == 2
    assert str(params) in err and "key 'start_date' has bad value '2024-25-26'" in err
    assert not (tmp_path / "out").exists()


def test_a_start_after_the_end_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], base_settings: Settings
) -> None:
    params = _params(tmp_path, "2024-02-01", "2024-01-31")

    assert main(["--config", str(params)], settings=base_settings) == 2
    assert "start_date (2024-02-01) is after end_date (2024-01-31)" in capsys.readouterr().err


@pytest.mark.slow
def test_the_module_reports_a_bad_params_file_without_a_traceback(tmp_path: Path) -> None:
    params = _params(tmp_path, "2024-25-26", "2024-01-31")
    # Validation comes before any connection: no database is needed, or touched.
    env = {**os.environ, "DB_PORT": "1", "OUTPUT_DIR": str(tmp_path / "out")}

    result = subprocess.run(
        [sys.executable, "-m", "eda", "--config", str(params)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 2
    assert "key 'start_date' has bad value '2024-25-26'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_an_empty_range_exits_1_and_writes_nothing(
    seeded: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = _params(tmp_path, "2030-01-01", "2030-01-31")
    output = tmp_path / "out"

    code = main(["--config", str(params), "--output", str(output)], settings=seeded)

    assert code == 1
    assert "no CDRs between 2030-01-01 and 2030-01-31" in capsys.readouterr().err
    assert not output.exists()


def test_an_unreachable_database_exits_1_with_a_message(
    base_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = base_settings.model_copy(
        update={"db_host": "127.0.0.1", "db_port": port, "db_socket": None}
    )
    params = _params(tmp_path, "2024-01-01", "2024-01-20")

    code = main(["--config", str(params), "--output", str(tmp_path / "out")], settings=settings)

    err = capsys.readouterr().err
    assert code == 1
    assert f"127.0.0.1:{port} is unreachable" in err
    assert not (tmp_path / "out").exists()


def test_a_database_without_the_schema_exits_1_with_a_message(
    base_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `information_schema` exists on every server and has no DP_CDR_Data.
    settings = base_settings.model_copy(update={"db_name": "information_schema"})
    params = _params(tmp_path, "2024-01-01", "2024-01-20")

    assert main(["--config", str(params), "--output", str(tmp_path)], settings=settings) == 1
    err = capsys.readouterr().err
    assert "error: Unknown table 'DP_CDR_Data'" in err and "python -m db init" in err


def test_a_sample_size_must_be_positive(base_settings: Settings) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--sample-rows", "0"], settings=base_settings)

    assert exit_info.value.code == 2


def test_an_unwritable_output_folder_exits_1_with_a_message(
    seeded: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("", encoding="utf-8")
    params = _params(tmp_path, "2024-01-01", "2024-01-20")

    assert main(["--config", str(params), "--output", str(blocker)], settings=seeded) == 1
    assert f"cannot write to {blocker / 'eda' / '2024-01-01_2024-01-20'}" in capsys.readouterr().err


def test_start_and_end_override_the_params_file(
    seeded: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = _params(tmp_path, "2024-01-01", "2024-01-20")
    output = tmp_path / "out"

    code = main(
        [
            *("--config", str(params), "--start", "2024-01-05", "--end", "2024-01-06"),
            *("--output", str(output), "--sample-rows", "10"),
        ],
        settings=seeded,
    )

    assert code == 0
    assert [p.name for p in (output / "eda").iterdir()] == ["2024-01-05_2024-01-06"]
    assert capsys.readouterr().out.startswith("EDA of DP_CDR_Data from 2024-01-05 to 2024-01-06")


def test_a_start_flag_after_the_file_end_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], base_settings: Settings
) -> None:
    params = _params(tmp_path, "2024-01-01", "2024-01-20")

    assert main(["--config", str(params), "--start", "2024-02-01"], settings=base_settings) == 2
    assert "start 2024-02-01 is after end 2024-01-20" in capsys.readouterr().err


def test_every_flag_shows_its_default() -> None:
    assert help_without_default(_parser()) == []
