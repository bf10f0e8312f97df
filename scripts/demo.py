"""`make demo`: the pipeline end to end on the embedded default.

Steps: a database server (the configured one, or a project-local MariaDB), the schema,
seed history, the streaming simulator served over HTTP and one short stream through its
API, the daily summary from the stored procedure, the Spark analysis, model and score jobs,
the EDA, and a monitoring run through the monitoring service's API. Re-running it is safe:
seeding and the demo stream are idempotent, so the data stays the same.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.settings import load_settings  # noqa: E402
from db.cdr import cdr_bounds, daily_summary  # noqa: E402
from db.connection import connection  # noqa: E402
from ingest.client import (  # noqa: E402
    ClientError,
    call,
    describe_error,
    describe_progress,
    run_stream,
    wait_until_healthy,
)

# 91 days, 2024-01-01 to 2024-03-31: the model trains on January and February
# (config.json's processed range), March is scored and its labels arrive within the demo.
SEED_DAYS = "91"
# The stream continues the seeded population (about 2,930 rows a day): 10 x 3,000 rows
# carry it through about ten April days.
DEMO_STREAM = {
    "stream_id": "demo-stream-april",
    "batch_size": 3000,
    "num_batches": 10,
    "interval": 0.5,
    "clock": "simulated",
    "seed": 7,
}
SUMMARY_DAYS = 14


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def run(*args: str) -> None:
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True)


@contextmanager
def service(module: str, url: str) -> Iterator[None]:
    """Run ``python -m <module> serve`` and make sure it is the one answering on ``url``.

    The service gets a fresh ``INSTANCE_ID``; a port held by another process fails the demo
    with that process named, instead of talking to it.
    """
    nonce = secrets.token_hex(8)
    process = subprocess.Popen(
        [sys.executable, "-m", module, "serve"], cwd=ROOT, env={**os.environ, "INSTANCE_ID": nonce}
    )
    try:
        wait_until_healthy(url, timeout=60, instance_id=nonce)
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> int:
    began = time.monotonic()
    step("Database server")
    run("-m", "db", "server")
    step("Schema (versioned migrations)")
    run("-m", "db", "init")
    step("Seed history (synthetic CDR generator)")
    run("-m", "ingest", "seed", "--days", SEED_DAYS)

    settings = load_settings()
    url = f"http://{settings.ingest_host}:{settings.ingest_port}"
    step(f"Streaming simulator on {url}")
    token = settings.api_token.get_secret_value() if settings.api_token else None
    try:
        with service("ingest", url):
            step(
                f"Stream {DEMO_STREAM['num_batches']} batches x {DEMO_STREAM['batch_size']} rows "
                "(simulated clock: the population carried on, day after day)"
            )
            final = run_stream(
                url, DEMO_STREAM, lambda s: print(describe_progress(s), flush=True), token=token
            )
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if final["state"] != "completed":
        print(
            f"the demo stream ended {final['state']}: {describe_error(final['last_error'])}",
            file=sys.stderr,
        )
        return 1

    with connection(settings) as conn:
        first, last, rows = cdr_bounds(conn)
        assert first is not None and last is not None  # seeded above
        start = max(first.date(), last.date() - timedelta(days=SUMMARY_DAYS - 1))
        summary = daily_summary(conn, start)
    step(f"Rows per day from {start} (GetDailyCDRDataBatch); DP_CDR_Data holds {rows:,} rows")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:,.1f}"))

    step("Spark analysis: raw CDRs of config.json's range -> Processed_Data + Parquet")
    run("-m", "spark_jobs", "analysis")
    step("Churn model: features, time split, cross-validated forest, calibration, registry")
    run("-m", "spark_jobs", "model")
    step("Score March and the streamed April days with that model -> model_predictions")
    run("-m", "spark_jobs", "score")
    step("EDA over config/query_params.json's range")
    run("-m", "eda")

    monitoring_url = f"http://{settings.monitoring_host}:{settings.monitoring_port}"
    step(f"Monitoring service on {monitoring_url}: GET /run-monitoring (NannyML CBPE, drift)")
    try:
        with service("monitoring", monitoring_url):
            report = call(monitoring_url, "GET", "/run-monitoring", timeout=600, token=token)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(describe_monitoring(report))
    print(f"\nReport files: {settings.output_dir / report['report']['folder']}")
    print(f"Dashboard: run `make dashboard`, then open {monitoring_url}/")
    print(f"\nDemo done in {time.monotonic() - began:.0f} s. Next steps: README.md.")
    return 0


def describe_monitoring(report: dict[str, Any]) -> str:
    """A few lines of the monitoring run: verdict, per metric estimates against realized
    values, alert counts (`monitoring.report.summary.summary_table`)."""
    from monitoring.report.summary import summary_table

    return summary_table(report)


if __name__ == "__main__":
    sys.exit(main())
