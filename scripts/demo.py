"""`make demo` and `make loop`: the closed loop of the pipeline on the embedded default.

`make demo` (``python scripts/demo.py``): a database server, the schema, seeded history, the
Spark analysis and model; then the streaming query starts (while March is batch-scored),
with the monitoring poller, the monitoring service and the ingest service beside it. One
stream goes through `POST /start_stream`: clean days first, then a sudden covariate drift.
Each day is printed as it is scored (with its latency) and as the poller judges it; the run
ends with what the monitoring said about the clean days and the drifted ones, and stops
everything it started. Re-running it is safe: the seed and the stream are idempotent, and
the streaming checkpoint belongs to the database.

`make loop` (``python scripts/demo.py loop``): the same processes and an endless clean
stream, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.settings import Settings, load_settings  # noqa: E402
from db.errors import DatabaseError  # noqa: E402
from ingest.client import ClientError  # noqa: E402
from scripts.children import ChildFailed, supervised  # noqa: E402
from scripts.days import DayStatus, describe_story, tell  # noqa: E402
from scripts.loop import (  # noqa: E402
    LoopOptions,
    follow_stream,
    latencies,
    service_url,
    start_scoring,
    start_services,
)
from scripts.stages import (  # noqa: E402
    SEED_DAYS,
    StageFailed,
    batch_score,
    current_version,
    has_model,
    history_end,
    prepare_database,
    score_args,
    seed_history,
    step,
    train,
)

# Days 0-5 of the stream are clean; from day 6 on, voice usage drops to 0.6x and data usage
# grows 1.8x (ingest.scenario.CovariateDrift's defaults). The seeded population streams
# about 2,930 rows a day, so 12 batches of 3,000 rows make 12 whole days and a part of a
# 13th. One stream, so that no clean day is cut short by a stream's end.
DRIFT_FROM_DAY = 6
DEMO_STREAM: dict[str, Any] = {
    "stream_id": "demo-closed-loop",
    "batch_size": 3000,
    "num_batches": 12,
    "interval": 4.0,
    "clock": "simulated",
    "seed": 7,
    "scenario": {"covariate_drift": {"from_step": DRIFT_FROM_DAY}},
}
# `make loop`: about a simulated day every LOOP_INTERVAL seconds, until stopped.
LOOP_INTERVAL = 8.0


def _token(settings: Settings) -> str | None:
    return settings.api_token.get_secret_value() if settings.api_token else None


def report(days: list[DayStatus], drift_from: int | None) -> None:
    for line in describe_story(tell(days, drift_from), drift_from):
        print(line)
    seconds = latencies(days)
    if seconds:
        ordered = sorted(seconds)
        print(
            f"Latency, last raw row -> predictions, over {len(seconds)} days: "
            f"median {ordered[len(ordered) // 2]:.1f} s, max {ordered[-1]:.1f} s"
        )


def demo(settings: Settings, options: LoopOptions, log_dir: Path) -> None:
    seed_history()
    train()
    end = history_end(settings, DEMO_STREAM["stream_id"])
    with supervised(ROOT, log_dir) as children:
        step(
            "Started together: the streaming query (its first micro-batch takes 30-40 s), "
            f"the batch score up to {end}, the monitoring poller and service, the ingest service"
        )
        start_scoring(children, settings, options)
        score = children.start("batch-score", score_args(end))
        ingest = start_services(children, settings, options)
        children.finish(score)
        print(f"  batch score done: {score.log_tail(1).strip()}")
        step(
            f"Stream {DEMO_STREAM['num_batches']} x {DEMO_STREAM['batch_size']:,} rows "
            f"through POST /start_stream: clean days, covariate drift from day {DRIFT_FROM_DAY}"
        )
        watcher = follow_stream(
            settings,
            ingest,
            DEMO_STREAM,
            children,
            lambda line: print(line, flush=True),
            model_version=current_version(settings),
            drift_from=DRIFT_FROM_DAY,
            token=_token(settings),
        )
        step("What the monitoring said")
        report(watcher.days, DRIFT_FROM_DAY)


def loop(settings: Settings, options: LoopOptions, log_dir: Path) -> None:
    if not has_model(settings):
        seed_history()
        train()
        batch_score(history_end(settings, "-"))
    stream = {
        "stream_id": f"loop-{datetime.now():%Y%m%d-%H%M%S}",
        "batch_size": 3000,
        "num_batches": settings.stream_max_batches,
        "interval": LOOP_INTERVAL,
        "clock": "simulated",
    }
    with supervised(ROOT, log_dir) as children:
        step("Streaming query, monitoring poller, monitoring service, ingest service")
        start_scoring(children, settings, options)
        ingest = start_services(children, settings, options)
        step(f"Streaming {stream['stream_id']} until Ctrl-C")
        follow_stream(
            settings,
            ingest,
            stream,
            children,
            lambda line: print(line, flush=True),
            model_version=current_version(settings),
            token=_token(settings),
        )


def _parser() -> argparse.ArgumentParser:
    from config.cli import parser

    cli = parser("scripts/demo.py", "the closed loop: stream, score, monitor")
    cli.add_argument(
        "mode",
        nargs="?",
        choices=("demo", "loop"),
        default="demo",
        help="demo: the set-up and one stream with a drift, then stop; loop: stream until Ctrl-C",
    )
    return cli


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    began = time.monotonic()
    options = LoopOptions()
    try:
        prepare_database()
        settings = load_settings()
        log_dir = settings.output_dir / "demo" / settings.db_name
        if args.mode == "loop":
            loop(settings, options, log_dir)
        else:
            demo(settings, options, log_dir)
    except KeyboardInterrupt:
        print(f"\nStopped after {time.monotonic() - began:.0f} s.")
        # Ctrl-C is how the loop ends; it cuts the demo short.
        return 0 if args.mode == "loop" else 130
    except (StageFailed, ChildFailed, ClientError, DatabaseError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from monitoring.pipeline.runner import report_folder

    print(f"\nDemo done in {time.monotonic() - began:.0f} s (seed {SEED_DAYS} days included).")
    print(f"Process logs: {log_dir}/")
    print(f"Monitoring report: {report_folder(settings, current_version(settings))}/")
    monitoring = service_url(settings.monitoring_host, settings.monitoring_port)
    print(f"Dashboard: `make dashboard`, then open {monitoring}/. EDA: `python -m eda`.")
    print("The loop until Ctrl-C: `make loop`. Next steps: README.md.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
