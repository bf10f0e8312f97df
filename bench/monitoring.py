"""Wall time per stage and peak memory of a full monitoring run on a realistic volume.

Run as ``.venv/bin/python bench/monitoring.py [--reference-rows N] [--analysis-rows N]
[--days D] [--repeats K]``. The defaults are the target workload: 100k reference and 1M
analysis predictions of a churn model, daily chunks over 30 days, 10 continuous features
(CDR usage aggregates, 1% of the data volumes missing) and 2 categorical ones (plan, region),
labels known for the older half of the analysis.

The data are generated once, written as Parquet, and each repeat runs in a fresh child process
(``python bench/monitoring.py --child FOLDER``) doing what the CLI's file mode does: import,
read the files, `fit_monitor` (CBPE, univariate and multivariate drift, data quality on the
reference), `calculate` on the analysis, serialise the JSON. Stage times come from the core's
own stage log records, so they time the real code path. The child then calls `calculate` a
second time, the cost when a service keeps the fitted monitor of a model version.

Peak memory is the peak resident set size of the child process, whole: the interpreter, the
imported libraries, the data and the run (`resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`
in the parent; the child also reports its RSS after the imports and after reading the data).
Nothing is sampled: every stage sees every row.

With ``--pipeline``, the parent then times the database mode's public steps themselves, as
`monitoring.pipeline.runner.run_for_model` wires them: `load_inputs` (the predictions of a
registered model from a scratch database ``bench_monitoring_<pid>``, dropped afterwards),
`monitor` (pure), `store` (one transaction) and `write_run_report` (CSV, PNG, HTML), on
``--pipeline-rows`` analysis predictions (a fifth as many reference ones; analysis labels
unknown). It needs the database server of the ``DB_*`` settings.

With ``--poll``, it times the poller instead (and nothing else): ``--poll-rows`` analysis
predictions (1M by default) of one model over ``--days`` daily chunks, with features, and a
fifth as many reference ones, written with `db.models.insert_predictions` into the database
``--poll-db`` (``poller_bench``, dropped afterwards unless ``--poll-keep``); the older half of
the analysis carries its labels. It runs a first poll (full: fit and every chunk), then
``--repeats`` times adds one new day of predictions and the labels of one earlier day (through
`Processed_Data`, whose last date moves a day) and times the next poll cycle, which recomputes
those two chunks only. Beside it: an idle cycle (nothing new), and a full recompute of the same
data with the fit kept (`run_for_model`, what every poll cycle did before), whose figures are
compared with the incremental ones.

Stage times are medians over the repeats; the machine's load average is recorded with them,
as other work on a 2-core machine skews them. Progress goes to stderr; stdout is a table and,
as its last line, one JSON object with every figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder heads sys.path; the project root in front of it makes
# the `monitoring` package importable without installing.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import importlib.metadata
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

TARGET_SECONDS = 3.0
TARGET_PEAK_MB = 1024.0
REFERENCE_FILE = "reference.parquet"
ANALYSIS_FILE = "analysis.parquet"
MAPPING_FILE = "mapping.json"

CONTINUOUS = [
    "calls_out",
    "calls_in",
    "call_minutes",
    "sms_out",
    "data_mb",
    "roaming_minutes",
    "recharge_amount",
    "tenure_days",
    "days_since_recharge",
    "dropped_calls",
]
CATEGORICAL = ["plan", "region"]
PLANS = ["prepaid", "postpaid", "family", "business"]
REGIONS = [f"region_{number}" for number in range(1, 9)]
MAPPING: dict[str, Any] = {
    "y_true": "churned",
    "y_pred_proba": "churn_score",
    "y_pred": "churn_predicted",
    "timestamp": "scored_at",
    "id": "prediction_id",
    "features": [*CONTINUOUS, *CATEGORICAL],
    "categorical": CATEGORICAL,
}
# Stages in the order the core logs them.
FIT_STAGES = [
    "prepare_reference",
    "fit_estimator",
    "fit_univariate_drift",
    "fit_multivariate_drift",
    "fit_data_quality",
]
CALCULATE_STAGES = [
    "prepare_analysis",
    "estimate_performance",
    "realized_performance",
    "univariate_drift",
    "multivariate_drift",
    "data_quality",
]


def generate_predictions(
    rng: np.random.Generator, rows: int, start: pd.Timestamp, days: int
) -> pd.DataFrame:
    """Scored subscribers of a churn model, with the CDR aggregates it scored them on.

    The score is the true churn probability of the generating model, so the model is
    calibrated and CBPE's estimates should match the realized metrics.
    """
    plan = rng.choice(len(PLANS), rows, p=[0.45, 0.3, 0.15, 0.1])
    region = rng.integers(0, len(REGIONS), rows)
    calls_out = rng.poisson(12, rows).astype(np.float64)
    data_mb = rng.lognormal(5.5, 1.1, rows)
    data_mb[rng.uniform(0, 1, rows) < 0.01] = np.nan
    tenure_days = rng.integers(1, 3000, rows).astype(np.float64)
    days_since_recharge = rng.exponential(9, rows)
    dropped_calls = rng.poisson(0.4, rows).astype(np.float64)
    features = {
        "calls_out": calls_out,
        "calls_in": rng.poisson(10, rows) + 0.3 * calls_out,
        "call_minutes": rng.gamma(2.0, 2.5, rows) * (1 + calls_out) / 5,
        "sms_out": rng.poisson(4, rows).astype(np.float64),
        "data_mb": data_mb,
        "roaming_minutes": np.where(rng.uniform(0, 1, rows) < 0.05, rng.gamma(1.5, 20, rows), 0),
        "recharge_amount": rng.gamma(3.0, 5.0, rows),
        "tenure_days": tenure_days,
        "days_since_recharge": days_since_recharge,
        "dropped_calls": dropped_calls,
    }
    logit = (
        -1.2
        - 0.06 * (calls_out - 12)
        - 0.35 * (np.log1p(np.nan_to_num(data_mb, nan=245.0)) - 5.5)
        - 0.0006 * (tenure_days - 1500)
        + 0.09 * (days_since_recharge - 9)
        + 0.45 * dropped_calls
        + np.array([0.6, -0.5, -0.3, -0.8])[plan]
        + rng.normal(0, 0.6, rows)
    )
    score = 1 / (1 + np.exp(-logit))
    seconds = np.sort(rng.uniform(0, days * 86_400, rows))
    frame = pd.DataFrame(
        {
            "prediction_id": np.arange(rows, dtype=np.int64),
            "scored_at": start + pd.to_timedelta(seconds, unit="s"),
            **features,
            "plan": pd.Categorical.from_codes(plan, PLANS),
            "region": pd.Categorical.from_codes(region, REGIONS),
            "churn_score": score,
            "churn_predicted": (score >= 0.5).astype(np.int8),
            "churned": rng.binomial(1, score).astype(np.float32),
        }
    )
    return frame


def write_inputs(folder: Path, reference_rows: int, analysis_rows: int, days: int) -> None:
    """Generate the reference (the month before) and the analysis, and write them."""
    rng = np.random.default_rng(20240301)
    start = pd.Timestamp("2024-03-01")
    reference = generate_predictions(rng, reference_rows, start - pd.Timedelta(days=days), days)
    reference.to_parquet(folder / REFERENCE_FILE, index=False)
    analysis = generate_predictions(rng, analysis_rows, start, days)
    # Labels arrive late: only the older half of the analysis period has them.
    unlabelled = analysis["scored_at"] >= start + pd.Timedelta(days=days / 2)
    analysis.loc[unlabelled, "churned"] = np.nan
    analysis.to_parquet(folder / ANALYSIS_FILE, index=False)
    (folder / MAPPING_FILE).write_text(json.dumps(MAPPING), encoding="utf-8")


def child(folder: Path) -> dict[str, Any]:
    """One timed run in this process: what the parent measures, as a dict."""
    started = time.perf_counter()
    from monitoring.compute.core import fit_monitor
    from monitoring.compute.spec import Chunking
    from monitoring.pipeline.files import load_mapping, read_frame

    timings: dict[str, float] = {"import": time.perf_counter() - started}
    cpu_timings: dict[str, float] = {}
    rss_after_import = _rss_mb()

    class StageRecorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            fields = vars(record)
            if "stage" in fields:
                timings[fields["stage"]] = fields["seconds"]
                cpu_timings[fields["stage"]] = fields["cpu_seconds"]

    core_log = logging.getLogger("monitoring.compute.core")
    core_log.addHandler(StageRecorder())
    core_log.setLevel(logging.DEBUG)
    core_log.propagate = False

    started = time.perf_counter()
    mapping = load_mapping(folder / MAPPING_FILE)
    reference = read_frame(folder / REFERENCE_FILE)
    analysis = read_frame(folder / ANALYSIS_FILE)
    timings["read_files"] = time.perf_counter() - started
    rss_after_read = _rss_mb()

    started, cpu_started = time.perf_counter(), time.process_time()
    monitor = fit_monitor(reference, mapping, Chunking(period="D"))
    result = monitor.calculate(analysis)
    timings["run"] = time.perf_counter() - started
    cpu_timings["run"] = time.process_time() - cpu_started
    started = time.perf_counter()
    text = json.dumps(result.to_json(), allow_nan=False)
    timings["to_json"] = time.perf_counter() - started
    peak_after_run = _peak_rss_mb()

    # The second calculation logs its stages too; the table shows the first's.
    first_calculation = {name: timings[name] for name in CALCULATE_STAGES}
    first_cpu = {name: cpu_timings[name] for name in CALCULATE_STAGES}
    started, cpu_started = time.perf_counter(), time.process_time()
    monitor.calculate(analysis)
    timings["calculate_again"] = time.perf_counter() - started
    cpu_timings["calculate_again"] = time.process_time() - cpu_started
    timings.update(first_calculation)
    cpu_timings.update(first_cpu)

    roc_auc = result.metric("roc_auc")
    gaps = [
        abs(estimate - realized)
        for estimate, realized in zip(roc_auc.estimate, roc_auc.realized, strict=True)
        if not np.isnan(realized)
    ]
    return {
        "timings": timings,
        "cpu_timings": cpu_timings,
        "rss_after_import_mb": rss_after_import,
        "rss_after_read_mb": rss_after_read,
        "peak_rss_after_run_mb": peak_after_run,
        "json_bytes": len(text),
        "chunks": len(result.chunks),
        "reference_chunks": result.reference_chunks,
        "alerts": result.alert_counts(),
        "warnings": len(result.warnings),
        "roc_auc_mean_abs_estimate_error": float(np.mean(gaps)) if gaps else None,
    }


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_children(folder: Path, repeats: int) -> tuple[list[dict[str, Any]], float]:
    """Run ``repeats`` child processes; their reports and the peak RSS of any of them."""
    reports = []
    environment = {**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"}
    for repeat in range(1, repeats + 1):
        print(f"run {repeat}/{repeats} ...", file=sys.stderr, flush=True)
        completed = subprocess.run(
            [sys.executable, __file__, "--child", str(folder)],
            check=True,
            capture_output=True,
            text=True,
            env=environment,
        )
        reports.append(json.loads(completed.stdout.splitlines()[-1]))
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return reports, peak_mb


def summarise(
    reports: list[dict[str, Any]],
    peak_mb: float,
    args: argparse.Namespace,
    load: tuple[Sequence[float], Sequence[float]],
) -> dict[str, Any]:
    """Every figure of the benchmark, medians over the repeats."""
    names = [
        "import",
        "read_files",
        *FIT_STAGES,
        *CALCULATE_STAGES,
        "run",
        "to_json",
        "calculate_again",
    ]
    median = {
        name: statistics.median(report["timings"][name] for report in reports) for name in names
    }
    cpu_names = [*FIT_STAGES, *CALCULATE_STAGES, "run", "calculate_again"]
    cpu = {
        name: statistics.median(report["cpu_timings"][name] for report in reports)
        for name in cpu_names
    }
    fit = sum(median[name] for name in FIT_STAGES)
    calculate = sum(median[name] for name in CALCULATE_STAGES)
    first = reports[0]
    return {
        "workload": {
            "reference_rows": args.reference_rows,
            "analysis_rows": args.analysis_rows,
            "days": args.days,
            "chunking": "D",
            "continuous_features": len(CONTINUOUS),
            "categorical_features": len(CATEGORICAL),
            "labelled_analysis_share": 0.5,
            "chunks": first["chunks"],
            "reference_chunks": first["reference_chunks"],
        },
        "repeats": len(reports),
        "seconds": {
            **{name: round(value, 3) for name, value in median.items()},
            "fit_total": round(fit, 3),
            "calculate_total": round(calculate, 3),
            "total": round(median["run"], 3),
            "total_with_read_and_json": round(
                median["read_files"] + median["run"] + median["to_json"], 3
            ),
            "runs": [round(report["timings"]["run"], 3) for report in reports],
        },
        "cpu_seconds": {
            **{name: round(value, 3) for name, value in cpu.items()},
            "fit_total": round(sum(cpu[name] for name in FIT_STAGES), 3),
            "calculate_total": round(sum(cpu[name] for name in CALCULATE_STAGES), 3),
            "total": round(cpu["run"], 3),
        },
        "memory_mb": {
            "peak_rss": round(peak_mb, 1),
            "peak_rss_of_the_monitoring_run": round(first["peak_rss_after_run_mb"], 1),
            "rss_after_import": round(first["rss_after_import_mb"], 1),
            "rss_after_read": round(first["rss_after_read_mb"], 1),
            "method": "peak RSS of the child process (getrusage RUSAGE_CHILDREN ru_maxrss)",
        },
        "targets": {
            "total_seconds": TARGET_SECONDS,
            "peak_mb": TARGET_PEAK_MB,
            "total_met": median["run"] <= TARGET_SECONDS,
            "memory_met": peak_mb < TARGET_PEAK_MB,
        },
        "checks": {
            "alerts": first["alerts"],
            "warnings": first["warnings"],
            "roc_auc_mean_abs_estimate_error": first["roc_auc_mean_abs_estimate_error"],
            "json_bytes": first["json_bytes"],
        },
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": [round(value, 2) for value in load[0]],
            "load_average_after": [round(value, 2) for value in load[1]],
            "python": platform.python_version(),
            # Not `import nannyml`: that would start flaml's Spark JVM in this process.
            "nannyml": importlib.metadata.version("nannyml"),
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
    }


def table(summary: dict[str, Any]) -> str:
    """The figures for people."""
    seconds = summary["seconds"]
    cpu = summary["cpu_seconds"]
    workload = summary["workload"]
    memory = summary["memory_mb"]
    lines = [
        f"monitoring benchmark: {workload['reference_rows']:,} reference and "
        f"{workload['analysis_rows']:,} analysis rows, {workload['chunks']} daily chunks "
        f"(reference: {workload['reference_chunks']}), median of {summary['repeats']} runs",
        "",
        f"{'stage':<30}{'wall s':>9}{'CPU s':>9}",
    ]

    def row(name: str, label: str | None = None) -> None:
        cpu_text = f"{cpu[name]:>9.3f}" if name in cpu else f"{'':>9}"
        lines.append(f"{label or name:<30}{seconds[name]:>9.3f}{cpu_text}")

    row("import", "import (not in total)")
    row("read_files", "read Parquet (not in total)")
    for name in FIT_STAGES:
        row(name)
    row("fit_total", "= fit on the reference")
    for name in CALCULATE_STAGES:
        row(name)
    row("calculate_total", "= calculate on the analysis")
    row("total", "TOTAL (fit + calculate)")
    row("to_json", "to_json + dumps (not in total)")
    row("calculate_again", "calculate again, fit kept")
    lines += [
        "",
        f"peak RSS {memory['peak_rss']:.0f} MB, of the child process: interpreter and imports "
        f"{memory['rss_after_import']:.0f} MB, after reading the files "
        f"{memory['rss_after_read']:.0f} MB",
        f"targets: total <= {TARGET_SECONDS} s: {summary['targets']['total_met']}; "
        f"peak < {TARGET_PEAK_MB:.0f} MB: {summary['targets']['memory_met']}",
        f"load average before/after: {summary['machine']['load_average_before']} / "
        f"{summary['machine']['load_average_after']} on {summary['machine']['cpus']} CPUs",
    ]
    return "\n".join(lines)


_INSERT_MODEL = (
    "INSERT INTO model_registry (version, split_kind, train_start, train_end, test_start, "
    "test_end, params, metrics, features, path, is_current) "
    "VALUES (%s, 'time', '2024-01-01', '2024-01-31', '2024-02-01', '2024-02-29', '{}', '{}', "
    "%s, '/bench', 1)"
)
PIPELINE_VERSION = "bench-pipeline"


def _prediction_rows(frame: pd.DataFrame, period: str) -> list[tuple[Any, ...]]:
    features = frame[[*CONTINUOUS, *CATEGORICAL]].astype(object).itertuples(index=False)
    return [
        (
            PIPELINE_VERSION,
            f"{prediction_id:08d}",
            scored_at.date(),
            period,
            1.0 - score,
            score,
            int(predicted),
            None if period == "analysis" else int(churned),
            *values,
        )
        for prediction_id, scored_at, score, predicted, churned, values in zip(
            frame["prediction_id"],
            frame["scored_at"],
            frame["churn_score"].astype(float),
            frame["churn_predicted"],
            frame["churned"],
            features,
            strict=True,
        )
    ]


def pipeline(analysis_rows: int, days: int, repeats: int, output: Path) -> dict[str, Any]:
    """Time `load_inputs`, `monitor`, `store` and `write_run_report` on a scratch database."""
    from config.settings import load_settings
    from db.connection import connection, drop_database, transaction
    from db.migrate import init_database
    from db.models import insert_predictions
    from db.monitoring import max_prediction_id
    from monitoring.pipeline.runner import (
        STAGES,
        RunSpec,
        load_inputs,
        monitor,
        report_folder,
        resolve_model,
        store,
        utcnow,
        write_run_report,
    )

    settings = load_settings(
        db_name=f"bench_monitoring_{os.getpid()}",
        output_dir=output,
        monitoring_chunk_period="D",
        monitoring_chunk_size=None,
    )
    rng = np.random.default_rng(20240301)
    start = pd.Timestamp("2024-03-01")
    reference = generate_predictions(rng, analysis_rows // 5, start - pd.Timedelta(days=days), days)
    analysis = generate_predictions(rng, analysis_rows, start, days)
    features = [{"name": name, "type": "continuous"} for name in CONTINUOUS] + [
        {"name": name, "type": "categorical"} for name in CATEGORICAL
    ]
    init_database(settings)
    try:
        print("writing the predictions to the scratch database ...", file=sys.stderr, flush=True)
        with connection(settings) as conn:
            with transaction(conn) as cursor:
                cursor.execute(_INSERT_MODEL, (PIPELINE_VERSION, json.dumps(features)))
            for period, frame in (("reference", reference), ("analysis", analysis)):
                rows = _prediction_rows(frame, period)
                insert_predictions(conn, CONTINUOUS, CATEGORICAL, rows)
        spec = RunSpec.from_settings(settings)
        # `monitor` imports NannyML on its first call; the child's "import" row times that.
        importlib.import_module("monitoring.compute.core")
        seconds: dict[str, list[float]] = {stage: [] for stage in STAGES}
        for repeat in range(1, repeats + 1):
            print(f"pipeline run {repeat}/{repeats} ...", file=sys.stderr, flush=True)
            with connection(settings) as conn:
                model = resolve_model(conn, None)
                watermark = max_prediction_id(conn)
                started = time.perf_counter()
                inputs = load_inputs(conn, model, watermark, spec.label_delay_days)
                seconds["load"].append(time.perf_counter() - started)
                started = time.perf_counter()
                run = monitor(inputs, spec, trigger="cli", started_at=utcnow())
                seconds["monitor"].append(time.perf_counter() - started)
                started = time.perf_counter()
                run_id = store(conn, run)
                seconds["store"].append(time.perf_counter() - started)
            started = time.perf_counter()
            write_run_report(run, report_folder(settings, model.version), run_id)
            seconds["report"].append(time.perf_counter() - started)
    finally:
        drop_database(settings)
    return {
        "reference_rows": len(reference),
        "analysis_rows": len(analysis),
        "chunks": len(run.result.chunks),
        "stored_rows": len(run.result.metric_rows())
        + len(run.result.drift_rows())
        + len(run.result.quality_rows()),
        "seconds": {stage: round(statistics.median(v), 3) for stage, v in seconds.items()},
        "runs": {stage: [round(value, 3) for value in v] for stage, v in seconds.items()},
    }


def pipeline_table(figures: dict[str, Any]) -> str:
    """The pipeline figures for people."""
    lines = [
        "",
        f"database mode, public steps: {figures['reference_rows']:,} reference and "
        f"{figures['analysis_rows']:,} analysis rows, {figures['chunks']} chunks, "
        f"{figures['stored_rows']:,} figure rows stored",
        f"{'step':<30}{'wall s':>9}",
    ]
    names = {
        "load": "load_inputs",
        "monitor": "monitor (pure)",
        "store": "store (one transaction)",
        "report": "write_run_report",
    }
    for stage, value in figures["seconds"].items():
        lines.append(f"{names[stage]:<30}{value:>9.3f}")
    return "\n".join(lines)


_INSERT_PROCESSED = (
    "INSERT INTO Processed_Data (`Date`, `User`, M_Out_Call_Count, M_Out_Call_Time, "
    "M_In_Call_Count, M_In_Call_Time, M_Out_SMS_Count, M_In_SMS_Count, M_Data_Count, "
    "M_Data_Sum, Record_Count, Churn_Within_Horizon) "
    "VALUES (%s, %s, 0, 0, 0, 0, 0, 0, 0, 0, 1, %s)"
)
POLL_TARGET_SECONDS = 5.0
LABEL_DELAY_DAYS = 14


def _labelled_rows(frame: pd.DataFrame, labelled: bool) -> list[tuple[Any, ...]]:
    """``frame`` as analysis rows, carrying their labels when ``labelled``."""
    from db.models import PREDICTION_COLUMNS

    rows = _prediction_rows(frame, "analysis")
    if not labelled:
        return rows
    label_at = PREDICTION_COLUMNS.index("label")
    return [
        (*row[:label_at], int(churned), *row[label_at + 1 :])
        for row, churned in zip(rows, frame["churned"], strict=True)
    ]


def _day_frame(
    rng: np.random.Generator, rows: int, day: pd.Timestamp, first_id: int
) -> pd.DataFrame:
    frame = generate_predictions(rng, rows, day, 1)
    frame["prediction_id"] += first_id
    return frame


def poll(
    analysis_rows: int, days: int, repeats: int, db_name: str, keep: bool, output: Path
) -> dict[str, Any]:
    """Time the poller's cycles on ``analysis_rows`` predictions of one model (see above)."""
    from config.settings import load_settings
    from db.connection import connection, drop_database, transaction
    from db.migrate import init_database
    from db.models import insert_predictions
    from monitoring.pipeline.poller import PollerState, ReportWriter, poll_once
    from monitoring.pipeline.runner import run_for_model

    settings = load_settings(
        db_name=db_name,
        output_dir=output,
        monitoring_chunk_period="D",
        monitoring_chunk_size=None,
        monitoring_label_delay_days=LABEL_DELAY_DAYS,
        # No report during the timed cycles: it is written off the loop, timed on its own.
        monitoring_report_interval=3600.0,
    )
    rng = np.random.default_rng(20240301)
    start = pd.Timestamp("2024-03-01")
    per_day = analysis_rows // days
    reference = generate_predictions(rng, analysis_rows // 5, start - pd.Timedelta(days=days), days)
    features = [{"name": name, "type": "continuous"} for name in CONTINUOUS] + [
        {"name": name, "type": "categorical"} for name in CATEGORICAL
    ]
    labelled_days = days // 2
    drop_database(settings)
    init_database(settings)
    figures: dict[str, Any] = {}
    try:
        print(f"writing {analysis_rows:,} predictions to {db_name} ...", file=sys.stderr)
        started = time.perf_counter()
        frames: dict[int, pd.DataFrame] = {}
        with connection(settings) as conn:
            with transaction(conn) as cursor:
                cursor.execute(_INSERT_MODEL, (PIPELINE_VERSION, json.dumps(features)))
            insert_predictions(
                conn, CONTINUOUS, CATEGORICAL, _prediction_rows(reference, "reference")
            )
            for offset in range(days):
                day = start + pd.Timedelta(days=offset)
                frames[offset] = _day_frame(rng, per_day, day, offset * per_day)
                rows = _labelled_rows(frames[offset], labelled=offset < labelled_days)
                insert_predictions(conn, CONTINUOUS, CATEGORICAL, rows)
            # Processed_Data reaches the label delay past the last labelled day.
            _processed_reaches(conn, start + pd.Timedelta(days=labelled_days - 1), [])
        figures["write_seconds"] = round(time.perf_counter() - started, 1)

        importlib.import_module("monitoring.compute.core")
        state = PollerState(reports=ReportWriter(settings.monitoring_report_interval))
        print("first poll (full) ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        assert poll_once(settings, state=state)
        figures["first_poll_seconds"] = round(time.perf_counter() - started, 3)
        assert state.last is not None and state.reports is not None
        figures["first_poll_stages"] = _rounded(state.last.seconds)
        started = time.perf_counter()
        state.reports.flush()
        figures["report_seconds"] = round(time.perf_counter() - started, 3)

        idle = []
        for _ in range(max(repeats, 5)):
            started = time.perf_counter()
            assert not poll_once(settings, state=state)
            idle.append(time.perf_counter() - started)

        cycles: list[dict[str, Any]] = []
        load_before = os.getloadavg()
        for repeat in range(repeats):
            offset = days + repeat
            day = start + pd.Timedelta(days=offset)
            new = _day_frame(rng, per_day, day, offset * per_day)
            label_offset = labelled_days + repeat
            with connection(settings) as conn:
                insert_predictions(conn, CONTINUOUS, CATEGORICAL, _labelled_rows(new, False))
                _processed_reaches(
                    conn, start + pd.Timedelta(days=label_offset), frames[label_offset]
                )
            print(f"poll cycle {repeat + 1}/{repeats} ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            assert poll_once(settings, state=state)
            seconds = time.perf_counter() - started
            polled = state.last
            assert polled is not None and polled.mode == "incremental", polled
            cycles.append(
                {
                    "seconds": round(seconds, 3),
                    "stages": _rounded(polled.seconds),
                    "recomputed": list(polled.recomputed),
                    "rows_read": polled.rows_read,
                    "chunks": len(polled.run.result.chunks),
                    "load_average": [round(value, 2) for value in os.getloadavg()],
                }
            )
        load_after = os.getloadavg()

        print("full recompute (fit kept) ...", file=sys.stderr, flush=True)
        full_runs = []
        for _ in range(2):  # the first fits; the second is what a poll cycle cost before
            started = time.perf_counter()
            completed = run_for_model(settings, None, trigger="cli")
            full_runs.append((time.perf_counter() - started, completed))
        full_seconds, full = full_runs[-1]
        assert state.monitor is not None and state.monitor.result is not None
        with connection(settings) as conn:
            (total_rows,) = _scalar(conn, "SELECT COUNT(*) FROM model_predictions")
        times = [cycle["seconds"] for cycle in cycles]
        figures.update(
            {
                "database": db_name,
                "predictions": int(total_rows),
                "reference_rows": len(reference),
                "rows_per_day": per_day,
                "chunks": len(full.run.result.chunks),
                "idle_cycle_seconds": {
                    "p50": round(statistics.median(idle), 4),
                    "max": round(max(idle), 4),
                },
                "incremental_cycles": cycles,
                "incremental_cycle_seconds": {
                    "p50": round(statistics.median(times), 3),
                    "max": round(max(times), 3),
                    "target": POLL_TARGET_SECONDS,
                    "met": max(times) <= POLL_TARGET_SECONDS,
                },
                "full_recompute_seconds": round(full_seconds, 3),
                "full_recompute_stages": _rounded(full.seconds),
                "max_abs_difference_incremental_vs_full": _max_difference(
                    state.monitor.result, full.run.result
                ),
                "load_average_before": [round(value, 2) for value in load_before],
                "load_average_after": [round(value, 2) for value in load_after],
                "cpus": os.cpu_count(),
            }
        )
    finally:
        if not keep:
            drop_database(settings)
    return figures


def _processed_reaches(conn: Any, day: pd.Timestamp, labels: pd.DataFrame | list[Any]) -> None:
    """`Processed_Data` rows with the labels of ``labels`` and one on ``day`` + the delay."""
    from db.connection import transaction

    rows: list[tuple[Any, ...]] = []
    if isinstance(labels, pd.DataFrame):
        rows = [
            (scored_at.date(), f"{prediction_id:08d}", int(churned))
            for prediction_id, scored_at, churned in zip(
                labels["prediction_id"], labels["scored_at"], labels["churned"], strict=True
            )
        ]
    marker = (day + pd.Timedelta(days=LABEL_DELAY_DAYS)).date()
    rows.append((marker, "zz-marker", 0))
    with transaction(conn) as cursor:
        for first in range(0, len(rows), 5_000):
            cursor.executemany(_INSERT_PROCESSED, rows[first : first + 5_000])


def _scalar(conn: Any, sql: str) -> tuple[Any, ...]:
    from db.connection import transaction

    with transaction(conn) as cursor:
        cursor.execute(sql)
        row: tuple[Any, ...] = cursor.fetchone()
    return row


def _rounded(seconds: Any) -> dict[str, float]:
    return {name: round(value, 3) for name, value in seconds.items()}


def _max_difference(left: Any, right: Any) -> float | None:
    """The largest |difference| between two results' figures; None if their rows differ."""
    pairs = [
        (left.metric_rows(), right.metric_rows()),
        ([*left.drift_rows(), *left.quality_rows()], [*right.drift_rows(), *right.quality_rows()]),
    ]
    largest = 0.0
    for left_rows, right_rows in pairs:
        if len(left_rows) != len(right_rows):
            return None
        for a, b in zip(left_rows, right_rows, strict=True):
            if a.keys() != b.keys():
                return None
            for name, value in a.items():
                other = b[name]
                if isinstance(value, float) and isinstance(other, float):
                    largest = max(largest, abs(value - other))
                elif value != other:
                    return None
    return largest


def poll_table(figures: dict[str, Any]) -> str:
    """The poller figures for people."""
    cycles = figures["incremental_cycles"]
    incremental = figures["incremental_cycle_seconds"]
    lines = [
        f"poller: {figures['predictions']:,} predictions of one model in {figures['database']} "
        f"({figures['reference_rows']:,} reference, {figures['rows_per_day']:,} a day), "
        f"{figures['chunks']} daily chunks",
        "",
        f"{'cycle':<44}{'wall s':>9}",
        f"{'first poll (full: fit + every chunk)':<44}{figures['first_poll_seconds']:>9.3f}",
        f"{'idle cycle (nothing new), p50':<44}{figures['idle_cycle_seconds']['p50']:>9.4f}",
        f"{'full recompute, fit kept (the old cycle)':<44}"
        f"{figures['full_recompute_seconds']:>9.3f}",
        f"{'  of which the report files':<44}{figures['full_recompute_stages']['report']:>9.3f}",
        f"{'incremental cycle after a new day, p50':<44}{incremental['p50']:>9.3f}",
        f"{'incremental cycle, max':<44}{incremental['max']:>9.3f}",
        "",
        f"{'cycle':<7}{'wall s':>8}  {'stages':<50}{'rows read':>10}  load average",
    ]
    for number, cycle in enumerate(cycles, 1):
        stages = " ".join(f"{name} {value:.2f}" for name, value in cycle["stages"].items())
        lines.append(
            f"{number:<7}{cycle['seconds']:>8.3f}  {stages:<50}{cycle['rows_read']:>10,}  "
            f"{cycle['load_average']}"
        )
    lines += [
        "",
        f"target: incremental cycle <= {incremental['target']} s: {incremental['met']}; "
        f"max |incremental - full| over every figure: "
        f"{figures['max_abs_difference_incremental_vs_full']}",
        f"load average before/after: {figures['load_average_before']} / "
        f"{figures['load_average_after']} on {figures['cpus']} CPUs",
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    from config.cli import parser as cli_parser

    parser = cli_parser("bench/monitoring.py", __doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reference-rows", type=int, default=100_000, help="reference rows")
    parser.add_argument("--analysis-rows", type=int, default=1_000_000, help="analysis rows")
    parser.add_argument("--days", type=int, default=30, help="days of predictions, one chunk each")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; medians are reported")
    parser.add_argument(
        "--pipeline",
        action="store_true",
        help="also time load_inputs, monitor, store and write_run_report on a scratch database",
    )
    parser.add_argument(
        "--pipeline-rows", type=int, default=100_000, help="analysis rows of --pipeline"
    )
    parser.add_argument(
        "--poll",
        action="store_true",
        help="time the poller's cycles instead: a first full poll, then one new day a cycle",
    )
    parser.add_argument(
        "--poll-rows", type=int, default=1_000_000, help="analysis predictions of --poll"
    )
    parser.add_argument(
        "--poll-db", default="poller_bench", help="the scratch database of --poll (replaced)"
    )
    parser.add_argument(
        "--poll-keep", action="store_true", help="keep the --poll database afterwards"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Generate the data, time the children, print the table and the JSON line."""
    args = _parser().parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args.child)))
        return 0
    if args.poll:
        with tempfile.TemporaryDirectory(prefix="bench-poller-") as name:
            figures = poll(
                args.poll_rows, args.days, args.repeats, args.poll_db, args.poll_keep, Path(name)
            )
        print(poll_table(figures))
        print(json.dumps({"poll": figures}))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-monitoring-") as name:
        folder = Path(name)
        print("generating and writing the predictions ...", file=sys.stderr, flush=True)
        write_inputs(folder, args.reference_rows, args.analysis_rows, args.days)
        load_before = os.getloadavg()
        reports, peak_mb = run_children(folder, args.repeats)
        load_after = os.getloadavg()
        summary = summarise(reports, peak_mb, args, (load_before, load_after))
        if args.pipeline:
            summary["pipeline"] = pipeline(
                args.pipeline_rows, args.days, args.repeats, folder / "output"
            )
    print(table(summary))
    if "pipeline" in summary:
        print(pipeline_table(summary["pipeline"]))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
