"""The streaming bench: its latency arithmetic, its modes, and a tiny run end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

import pandas as pd
import pytest

from bench.streaming import Load, latency_figures, parse_args
from config.settings import PROJECT_ROOT, Settings

T0 = datetime(2024, 3, 1, 12, 0, 0)


def _batches(*rows: tuple[int, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [(last_id, T0 + timedelta(seconds=at)) for last_id, at in rows],
        columns=["last_id", "committed_at"],
    )


def test_a_load_is_served_by_the_first_batch_past_its_last_id() -> None:
    loads = [Load(10, 10, T0), Load(20, 10, T0 + timedelta(seconds=1)), Load(30, 10, T0)]
    # Batches end at ids 15 (t=2 s), 25 (t=4 s) and 30 (t=9 s): the first load is served
    # at 2 s, the second at 4 s (3 s after its commit), the third at 9 s.
    figures = latency_figures(loads, _batches((15, 2.0), (25, 4.0), (30, 9.0)))
    assert figures["served_loads"] == 3
    assert figures["latency_p50_s"] == 3.0
    assert figures["latency_max_s"] == figures["latency_p95_s"] == 9.0
    assert figures["lag_growth_s"] == 7.0  # last third (9 s) minus first third (2 s)


def test_unserved_loads_are_not_counted() -> None:
    figures = latency_figures([Load(10, 10, T0), Load(99, 10, T0)], _batches((10, 1.5)))
    assert figures["served_loads"] == 1 and figures["latency_max_s"] == 1.5
    assert latency_figures([Load(10, 10, T0)], _batches()) == {"served_loads": 0}


def test_modes_set_the_sizes_and_flags_keep_theirs() -> None:
    quick = parse_args(["--quick"])
    assert (quick.subscribers, quick.seconds, quick.search_rates) == (3000, 20.0, [5e3, 1e4])
    five_minutes = parse_args(["--seconds", "300", "--batch-rows", "10000,1000"])
    assert (five_minutes.seconds, five_minutes.batch_rows) == (300.0, [1000, 10_000])
    with pytest.raises(SystemExit):
        parse_args(["--search-rates", "0,5"])


@pytest.mark.slow
def test_a_tiny_run_ends_with_one_json_line_of_figures(db_settings: Settings) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "bench/streaming.py",
            "--tiny",
            "--database",
            db_settings.db_name,
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYSPARK_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=3600,  # a hang guard only: ~4 min on an idle 2-core box
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    [run] = report["runs"]
    assert run["batch_rows"] == 500 and run["rows"] > 0
    assert run["served_loads"] == run["loads"]
    assert 0 < run["latency_p50_s"] <= run["latency_p95_s"] <= run["latency_max_s"]
    assert run["predictions"] > 0 and run["cpu_s"] > 0
    assert report["rate_search"]["segments"][0]["rate_rows_per_s"] == 1000.0
    assert report["batch_path"]["raw_rows"] == run["rows"] + sum(
        segment.get("rows", 0) for segment in report["rate_search"]["segments"]
    )
    assert "streaming 500-row loads" in done.stderr
