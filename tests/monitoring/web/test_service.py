"""The monitoring service through Flask's test client, against the real database.

Each database holds what the Spark jobs would have written: a registered model with 20
declared features (one categorical), its labelled reference predictions, later analysis
predictions without labels, and `Processed_Data` rows whose labels count as known only for
the analysis days at least `monitoring_label_delay_days` before its last date. Scores are
drawn from a calibrated model and labels from the scores, so CBPE's estimates are sensible.

The helpers that build such a database are imported by the poller and browser tests too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from config.settings import Settings
from db.connection import connection, transaction
from db.models import insert_predictions as insert_prediction_rows
from db.monitoring import stored_drift, stored_results
from monitoring.report.figures import PERFORMANCE_TITLE
from monitoring.web.app import create_app

VERSION = "churn-20240214-0a1b2c3d4e"
CONTINUOUS = (
    *(
        f"{usage}_{kind}"
        for usage in (
            "M_Out_Call_Count",
            "M_Out_Call_Time",
            "M_In_Call_Count",
            "M_In_Call_Time",
            "M_Data_Count",
            "M_Data_Sum",
        )
        for kind in ("mean_7", "mean_28", "trend")
    ),
    "active_share_28",
)
CATEGORICAL = ("usage_profile",)
FEATURES = [{"name": name, "type": "continuous"} for name in CONTINUOUS] + [
    {"name": name, "type": "categorical"} for name in CATEGORICAL
]
DRIFTING_FEATURE = "M_Data_Sum_mean_7"
SUBSCRIBERS = 200
REFERENCE_START = date(2024, 2, 1)
REFERENCE_DAYS = 6
ANALYSIS_START = date(2024, 2, 15)
ANALYSIS_DAYS = 6
# Labels are known for the first analysis days: Processed_Data reaches 14 days past them.
KNOWN_LABEL_DAYS = 3
# Chunks of one day hold 200 predictions: below the default minimum of 300.
TEST_SETTINGS = {"monitoring_min_chunk_rows": 100, "monitoring_chunk_period": "D"}
PROFILES = np.array(["data", "mixed", "voice"])

_INSERT_MODEL = (
    "INSERT INTO model_registry (version, split_kind, train_start, train_end, test_start, "
    "test_end, params, metrics, features, path, is_current) "
    "VALUES (%s, 'time', %s, %s, %s, %s, '{}', '{}', %s, %s, %s)"
)
_INSERT_PROCESSED = (
    "INSERT INTO Processed_Data (`Date`, `User`, M_Out_Call_Count, M_Out_Call_Time, "
    "M_In_Call_Count, M_In_Call_Time, M_Out_SMS_Count, M_In_SMS_Count, M_Data_Count, "
    "M_Data_Sum, Record_Count, Churn_Within_Horizon) "
    "VALUES (%s, %s, 0, 0, 0, 0, 0, 0, 0, 0, 1, %s)"
)
_CHUNK_ROWS = 1000


@dataclass(frozen=True)
class Predictions:
    """Rows of one model version and period, as written to `model_predictions`."""

    subscribers: list[str]
    dates: list[date]
    scores: np.ndarray
    labels: np.ndarray
    features: list[dict[str, Any]]


def days(start: date, count: int) -> list[date]:
    """``count`` consecutive days from ``start``."""
    return [start + timedelta(days=offset) for offset in range(count)]


def make_predictions(
    rng: np.random.Generator,
    dates: Sequence[date],
    *,
    subscribers: int = SUBSCRIBERS,
    drift_from: date | None = None,
    single_class: bool = False,
) -> Predictions:
    """One prediction per subscriber and day from a calibrated model of 20 features.

    A latent churn propensity drives every feature (with noise) and the score; the label is
    drawn from the score. From ``drift_from`` on, `DRIFTING_FEATURE` shifts by 1.5 standard
    deviations, which the model ignores: covariate drift without a performance change.
    """
    rows = len(dates) * subscribers
    row_dates = [day for day in dates for _ in range(subscribers)]
    names = [f"{s:05d}" for _ in dates for s in range(subscribers)]
    latent = rng.normal(0.0, 1.0, rows)
    scores = 1.0 / (1.0 + np.exp(-(1.4 * latent - 1.3)))
    labels = np.zeros(rows) if single_class else rng.binomial(1, scores).astype(float)
    loadings = np.linspace(-0.9, 0.9, len(CONTINUOUS))
    values = loadings * latent[:, None] + rng.normal(0.0, 0.6, (rows, len(CONTINUOUS)))
    if drift_from is not None:
        drifted = np.array([day >= drift_from for day in row_dates])
        values[drifted, CONTINUOUS.index(DRIFTING_FEATURE)] += 1.5
    profile = PROFILES[np.digitize(values[:, 0] + rng.normal(0, 0.5, rows), [-0.5, 0.5])]
    features = [
        {
            **{name: round(float(v), 6) for name, v in zip(CONTINUOUS, row, strict=True)},
            "usage_profile": str(p),
        }
        for row, p in zip(values, profile, strict=True)
    ]
    return Predictions(names, row_dates, scores, labels, features)


def register_model(
    settings: Settings,
    version: str = VERSION,
    *,
    features: list[dict[str, str]] | None = None,
    current: bool = True,
) -> None:
    """A `model_registry` row for ``version`` (the current model unless told otherwise)."""
    with connection(settings) as conn, transaction(conn) as cursor:
        if current:
            cursor.execute("UPDATE model_registry SET is_current = 0")
        cursor.execute(
            _INSERT_MODEL,
            (
                version,
                REFERENCE_START - timedelta(days=40),
                REFERENCE_START - timedelta(days=15),
                REFERENCE_START,
                REFERENCE_START + timedelta(days=REFERENCE_DAYS - 1),
                json.dumps(FEATURES if features is None else features),
                f"/models/{version}",
                int(current),
            ),
        )


def insert_predictions(
    settings: Settings, version: str, period: str, predictions: Predictions
) -> None:
    """Write ``predictions`` as ``period`` rows; reference rows carry their labels."""
    rows = [
        (
            version,
            subscriber,
            day,
            period,
            1.0 - float(score),
            float(score),
            int(score >= 0.3),
            int(label) if period == "reference" else None,
            *(features.get(name) for name in (*CONTINUOUS, *CATEGORICAL)),
        )
        for subscriber, day, score, label, features in zip(
            predictions.subscribers,
            predictions.dates,
            predictions.scores,
            predictions.labels,
            predictions.features,
            strict=True,
        )
    ]
    with connection(settings) as conn:
        insert_prediction_rows(conn, CONTINUOUS, CATEGORICAL, rows, _CHUNK_ROWS)


def insert_labels(settings: Settings, predictions: Predictions, last_date: date) -> None:
    """`Processed_Data` rows carrying the labels of ``predictions``, and a row on
    ``last_date`` so that `Processed_Data` reaches it."""
    rows = [
        (day, subscriber, int(label))
        for subscriber, day, label in zip(
            predictions.subscribers, predictions.dates, predictions.labels, strict=True
        )
    ]
    rows.append((last_date, "99999", 0))
    with connection(settings) as conn, transaction(conn) as cursor:
        for first in range(0, len(rows), _CHUNK_ROWS):
            cursor.executemany(_INSERT_PROCESSED, rows[first : first + _CHUNK_ROWS])


def populate(settings: Settings, version: str = VERSION, seed: int = 7) -> Predictions:
    """A monitored model's data: reference, analysis (drifting in its second half) and the
    labels of its first `KNOWN_LABEL_DAYS` days known. Returns the analysis predictions."""
    rng = np.random.default_rng(seed)
    register_model(settings, version)
    reference = make_predictions(rng, days(REFERENCE_START, REFERENCE_DAYS))
    insert_predictions(settings, version, "reference", reference)
    analysis_days = days(ANALYSIS_START, ANALYSIS_DAYS)
    analysis = make_predictions(rng, analysis_days, drift_from=analysis_days[ANALYSIS_DAYS // 2])
    insert_predictions(settings, version, "analysis", analysis)
    last_known = analysis_days[KNOWN_LABEL_DAYS - 1]
    insert_labels(settings, analysis, last_known + timedelta(days=14))
    return analysis


def table_counts(settings: Settings) -> dict[str, int]:
    """Rows of each monitoring table."""
    counts = {}
    with connection(settings) as conn, transaction(conn) as cursor:
        for table in ("monitoring_results", "monitoring_drift", "monitoring_runs"):
            cursor.execute(f"SELECT COUNT(*) FROM {table}")
            counts[table] = int(cursor.fetchone()[0])
    return counts


def stored_figures(settings: Settings, version: str = VERSION) -> pd.DataFrame:
    """The stored metric, drift and quality figures of ``version``, without the run id that
    stored them: what a re-run of the same data must leave as it was."""
    with connection(settings) as conn:
        results = stored_results(conn, version).drop(columns="run_id")
        drift = stored_drift(conn, version).drop(columns="run_id")
    return pd.concat([results, drift], keys=["results", "drift"])


def assert_json_error(response: Any, status: int) -> str:
    """The message of a JSON error response with ``status`` (the shared body of `config.web`:
    a stable code and a plain message), checked for leaks."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) - {"errors"} == {"error", "message"}
    assert isinstance(body["error"], str) and body["error"].isidentifier()
    assert isinstance(body["message"], str) and body["message"]
    text = response.get_data(as_text=True)
    for leak in ("Traceback", 'File "', "Error(", "mysql", "SELECT ", "root@", "@127.0.0.1"):
        assert leak not in text
    message: str = body["message"]
    return message


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def monitored_settings(module_db_settings: Settings) -> Settings:
    """A database shared by this module's read-mostly tests: one populated model, and
    models whose data cannot be monitored, each a way to fail."""
    settings = module_db_settings.model_copy(update=TEST_SETTINGS)
    rng = np.random.default_rng(3)
    reference_days = days(REFERENCE_START, REFERENCE_DAYS)
    analysis_days = days(ANALYSIS_START, 2)

    register_model(settings, "no-reference", current=False)
    insert_predictions(settings, "no-reference", "analysis", make_predictions(rng, analysis_days))

    register_model(settings, "no-analysis", current=False)
    insert_predictions(settings, "no-analysis", "reference", make_predictions(rng, reference_days))

    register_model(settings, "single-class", current=False)
    insert_predictions(
        settings,
        "single-class",
        "reference",
        make_predictions(rng, reference_days, single_class=True),
    )
    insert_predictions(settings, "single-class", "analysis", make_predictions(rng, analysis_days))

    register_model(settings, "too-few-rows", current=False)
    few = make_predictions(rng, reference_days[:2], subscribers=20)
    insert_predictions(settings, "too-few-rows", "reference", few)
    insert_predictions(
        settings, "too-few-rows", "analysis", make_predictions(rng, analysis_days, subscribers=20)
    )

    register_model(settings, "bad-features", features=[{"name": "x", "type": "ordinal"}])
    populate(settings)  # registered last: the current model
    return settings


@pytest.fixture
def client(monitored_settings: Settings) -> FlaskClient:
    """A fresh app on the shared database."""
    return create_app(monitored_settings).test_client()


@pytest.fixture(scope="module")
def first_run(monitored_settings: Settings) -> dict[str, Any]:
    """The JSON of one `/run-monitoring` of the current model on the shared database."""
    response = create_app(monitored_settings).test_client().get("/run-monitoring?detail=full")
    assert response.status_code == 200, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


# --- GET /run-monitoring ---------------------------------------------------------------------


@pytest.mark.slow
def test_run_monitoring_returns_estimates_bounds_realized_values_and_alerts(
    first_run: dict[str, Any],
) -> None:
    body = first_run

    assert body["model_version"] == VERSION
    assert isinstance(body["run_id"], int)
    assert body["summary"]["analysis_rows"] == ANALYSIS_DAYS * SUBSCRIBERS
    assert body["summary"]["labelled_rows"] == KNOWN_LABEL_DAYS * SUBSCRIBERS
    assert body["summary"]["chunks"] == ANALYSIS_DAYS
    for metric in ("roc_auc", "f1", "accuracy"):
        chunks = body["metrics"][metric]["chunks"]
        assert len(chunks) == ANALYSIS_DAYS
        assert body["metrics"][metric]["latest"] == chunks[-1]
    chunks = body["metrics"]["roc_auc"]["chunks"]
    assert {"start", "end", "estimate", "lower_bound", "upper_bound", "realized", "alert"} <= set(
        chunks[0]
    )
    assert chunks[0]["start"].startswith(ANALYSIS_START.isoformat())
    for chunk in chunks:
        assert chunk["lower_bound"] <= chunk["estimate"] <= chunk["upper_bound"]
        assert 0.6 < chunk["estimate"] < 0.95
        assert isinstance(chunk["alert"], bool)
    # Labels are known for the first days only: Processed_Data is 14 days past them.
    known = [chunk["realized"] is not None for chunk in chunks]
    assert known == [True] * KNOWN_LABEL_DAYS + [False] * (ANALYSIS_DAYS - KNOWN_LABEL_DAYS)
    for chunk in chunks[:KNOWN_LABEL_DAYS]:
        assert abs(chunk["realized"] - chunk["estimate"]) < 0.12
    drifting = body["drift"]["univariate"][DRIFTING_FEATURE]["chunks"]
    shift = ANALYSIS_DAYS // 2
    assert [chunk["alert"] for chunk in drifting[shift:]] == [True] * (ANALYSIS_DAYS - shift)
    assert min(c["value"] for c in drifting[shift:]) > 3 * max(c["value"] for c in drifting[:shift])
    assert body["alerts"]["univariate_drift"] >= 3
    assert body["drift"]["multivariate"]["chunks"]


@pytest.mark.slow
def test_run_monitoring_is_compact_by_default(
    client: FlaskClient, first_run: dict[str, Any]
) -> None:
    response = client.get("/run-monitoring")

    assert response.status_code == 200
    body = response.get_json()
    assert len(response.get_data()) < len(json.dumps(first_run)) / 3
    assert body["summary"]["chunks"] == ANALYSIS_DAYS
    assert [chunk["key"] for chunk in body["chunks"]] == [
        chunk["key"] for chunk in first_run["chunks"]
    ]
    assert body["verdict"] == first_run["verdict"]
    assert body["verdict"]["verdict"] == body["chunks"][-1]["verdict"]
    assert sum(body["verdicts"].values()) == ANALYSIS_DAYS
    assert body["alerts"] == first_run["alerts"]
    assert "total" not in body["alerts"]
    for metric in ("roc_auc", "f1", "accuracy"):
        assert "chunks" not in body["metrics"][metric]
        assert body["metrics"][metric]["latest"]["estimate"] is not None
    # Only what alerted is listed: the drifting feature, no zero-valued data-quality entry.
    assert DRIFTING_FEATURE in body["drift"]["univariate"]
    assert all(entry["alerts"] > 0 for entry in body["drift"]["univariate"].values())
    for entries in body["data_quality"].values():
        assert all(entry["alerts"] > 0 for entry in entries.values())
    drifting = body["drift"]["univariate"][DRIFTING_FEATURE]["alert_chunks"]
    assert drifting == [chunk["key"] for chunk in first_run["chunks"][ANALYSIS_DAYS // 2 :]]


@pytest.mark.slow
def test_run_monitoring_writes_the_report_under_the_output_folder(
    monitored_settings: Settings, first_run: dict[str, Any]
) -> None:
    report = first_run["report"]

    assert report["folder"] == f"monitoring/{monitored_settings.db_name}/{VERSION}"
    for name in ("metrics_csv", "drift_csv", "performance_png", "performance_html"):
        path = monitored_settings.output_dir / report["files"][name]
        assert path.is_file() and path.stat().st_size > 0, name
    assert first_run["run"]["trigger"] == "api"
    assert set(first_run["run"]["seconds"]) == {"load", "monitor", "store", "report"}


@pytest.mark.slow
def test_running_again_on_the_same_data_changes_no_row_count(
    monitored_settings: Settings, client: FlaskClient, first_run: dict[str, Any]
) -> None:
    before = table_counts(monitored_settings)
    figures = stored_figures(monitored_settings)

    response = client.get(f"/run-monitoring?model_version={VERSION}&detail=full")

    assert response.status_code == 200
    again = response.get_json()
    after = table_counts(monitored_settings)
    assert again["run_id"] > first_run["run_id"]
    assert after["monitoring_results"] == before["monitoring_results"] == 3 * ANALYSIS_DAYS
    # Drift of 20 features and all together, missing values of 20, unseen values of one.
    per_chunk = len(FEATURES) + 1 + len(FEATURES) + len(CATEGORICAL)
    assert after["monitoring_drift"] == before["monitoring_drift"] == per_chunk * ANALYSIS_DAYS
    assert after["monitoring_runs"] == before["monitoring_runs"] + 1
    assert again["metrics"]["roc_auc"]["chunks"] == first_run["metrics"]["roc_auc"]["chunks"]
    assert again["drift"] == first_run["drift"]
    assert again["data_quality"] == first_run["data_quality"]
    pd.testing.assert_frame_equal(stored_figures(monitored_settings), figures)
    with connection(monitored_settings) as conn, transaction(conn) as cursor:
        cursor.execute("SELECT DISTINCT run_id FROM monitoring_results")
        assert cursor.fetchall() == [(again["run_id"],)]


@pytest.mark.parametrize(
    ("version", "status", "phrase"),
    [
        pytest.param("not-registered", 404, "is not registered", id="unknown-version"),
        pytest.param("no-reference", 422, "no reference predictions", id="no-reference"),
        pytest.param("no-analysis", 422, "no analysis predictions", id="no-analysis"),
        pytest.param("single-class", 422, "needs both classes", id="single-class-reference"),
        pytest.param("too-few-rows", 422, "at least 100 are needed", id="too-few-rows"),
        pytest.param("bad-features", 422, "declares a feature", id="unknown-feature-type"),
    ],
)
def test_run_monitoring_refuses_data_it_cannot_monitor_with_a_clear_json_error(
    monitored_settings: Settings, client: FlaskClient, version: str, status: int, phrase: str
) -> None:
    before = table_counts(monitored_settings)

    response = client.get("/run-monitoring", query_string={"model_version": version})

    message = assert_json_error(response, status)
    assert phrase in message
    after = table_counts(monitored_settings)
    assert after["monitoring_results"] == before["monitoring_results"]
    assert after["monitoring_drift"] == before["monitoring_drift"]
    # A run that reached the data is recorded as failed, with the same message.
    if status == 422:
        assert after["monitoring_runs"] == before["monitoring_runs"] + 1
        with connection(monitored_settings) as conn, transaction(conn) as cursor:
            cursor.execute(
                "SELECT status, error_message FROM monitoring_runs ORDER BY run_id DESC LIMIT 1"
            )
            assert cursor.fetchone() == ("failed", message)


@pytest.mark.parametrize(
    ("query", "phrase"),
    [
        pytest.param("model_version=../etc", "must be a model version", id="path"),
        pytest.param("model_version=" + "v" * 41, "must be a model version", id="too-long"),
        pytest.param("model_version=", "must be a model version", id="empty"),
        pytest.param("model_version=a&model_version=b", "more than once", id="repeated"),
        pytest.param("version=x", "version is not a recognised parameter", id="unknown"),
        pytest.param("detail=all", "detail must be compact or full", id="bad-detail"),
    ],
)
def test_run_monitoring_rejects_a_bad_query_with_400(
    client: FlaskClient, query: str, phrase: str
) -> None:
    message = assert_json_error(client.get(f"/run-monitoring?{query}"), 400)

    assert phrase in message


def test_run_monitoring_without_a_model_is_404(db_settings: Settings) -> None:
    response = create_app(db_settings).test_client().get("/run-monitoring")

    message = assert_json_error(response, 404)
    assert "no model has been trained yet" in message


def test_run_monitoring_is_409_while_another_run_holds_the_lock(
    monitored_settings: Settings, client: FlaskClient
) -> None:
    from db.monitoring import acquire_run_lock, release_run_lock, run_lock_name

    lock = run_lock_name(monitored_settings.db_name)
    with connection(monitored_settings) as conn:
        assert acquire_run_lock(conn, lock, 0)
        try:
            response = client.get("/run-monitoring")
        finally:
            release_run_lock(conn, lock)

    message = assert_json_error(response, 409)
    assert "in progress" in message
    assert response.headers["Retry-After"].isdigit()


def test_run_monitoring_is_503_json_when_the_database_is_down(
    base_settings: Settings, closed_port: int
) -> None:
    down = base_settings.model_copy(update={"db_port": closed_port, "db_connect_timeout": 2})

    response = create_app(down).test_client().get("/run-monitoring")

    message = assert_json_error(response, 503)
    assert "unavailable" in message
    assert str(closed_port) not in response.get_data(as_text=True)


def test_unknown_routes_and_methods_are_json_errors(client: FlaskClient) -> None:
    assert_json_error(client.get("/no-such-page"), 404)
    response = client.post("/run-monitoring")
    assert_json_error(response, 405)
    assert "GET" in response.headers["Allow"]


def test_an_unexpected_error_is_a_500_without_internals(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail /srv/app/monitoring/runner.py")

    monkeypatch.setattr("monitoring.web.views.run_for_model", explode)

    response = client.get("/run-monitoring")

    message = assert_json_error(response, 500)
    assert "secret" not in response.get_data(as_text=True)
    assert message == "internal error; see the server log"


# --- GET /health, GET /metrics ---------------------------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing listens on."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    yield port


def test_health_is_ok_while_the_database_answers(client: FlaskClient) -> None:
    response = client.get("/health")

    assert response.status_code == 200
    body = response.get_json()
    assert body == {"status": "ok", "database": "reachable", "instance_id": body["instance_id"]}
    assert len(body["instance_id"]) >= 8


def test_health_is_503_when_the_database_is_down(base_settings: Settings, closed_port: int) -> None:
    down = base_settings.model_copy(update={"db_port": closed_port, "db_connect_timeout": 2})

    response = create_app(down).test_client().get("/health")

    assert response.status_code == 503
    body = response.get_json()
    assert set(body) == {"status", "database", "instance_id"}
    assert (body["status"], body["database"]) == ("unavailable", "unreachable")
    text = response.get_data(as_text=True)
    for leak in ("root@", "@127.0.0.1", str(closed_port), "Can't connect", "2003"):
        assert leak not in text


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.slow
def test_metrics_expose_the_latest_estimates_alerts_and_run_time(
    client: FlaskClient, first_run: dict[str, Any]
) -> None:
    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    samples = _samples(response.get_data(as_text=True))
    latest = first_run["metrics"]["roc_auc"]["latest"]
    labels = (("metric", "roc_auc"), ("model_version", VERSION))
    assert math.isclose(samples[("monitoring_estimate", labels)], latest["estimate"])
    assert math.isclose(samples[("monitoring_estimate_lower", labels)], latest["lower_bound"])
    assert math.isclose(samples[("monitoring_estimate_upper", labels)], latest["upper_bound"])
    realized = first_run["metrics"]["roc_auc"]["chunks"][KNOWN_LABEL_DAYS - 1]["realized"]
    assert math.isclose(samples[("monitoring_realized", labels)], realized)
    drift = (("kind", "univariate_drift"), ("model_version", VERSION))
    assert samples[("monitoring_alerts", drift)] >= 3
    version = (("model_version", VERSION),)
    assert samples[("monitoring_last_run_timestamp_seconds", version)] > 1.7e9
    assert samples[("monitoring_database_up", ())] == 1
    # No total among the kinds: sum() over monitoring_alerts counts every alert once.
    kinds = {
        dict(labels)["kind"]: value
        for (name, labels), value in samples.items()
        if name == "monitoring_alerts"
    }
    assert "total" not in kinds
    assert kinds == {kind: float(count) for kind, count in first_run["alerts"].items()}


@pytest.mark.slow
def test_metrics_expose_the_verdict_and_the_drift_per_feature(
    client: FlaskClient, first_run: dict[str, Any]
) -> None:
    samples = _samples(client.get("/metrics").get_data(as_text=True))

    verdict = {
        dict(labels)["verdict"]: value
        for (name, labels), value in samples.items()
        if name == "monitoring_verdict"
    }
    assert verdict == {
        name: float(name == first_run["verdict"]["verdict"]) for name in first_run["verdicts"]
    }
    chunks = {
        dict(labels)["verdict"]: value
        for (name, labels), value in samples.items()
        if name == "monitoring_verdict_chunks"
    }
    assert chunks == {name: float(count) for name, count in first_run["verdicts"].items()}
    assert sum(chunks.values()) == ANALYSIS_DAYS
    feature = first_run["drift"]["univariate"][DRIFTING_FEATURE]
    labels = (
        ("feature", DRIFTING_FEATURE),
        ("method", feature["method"]),
        ("model_version", VERSION),
    )
    assert math.isclose(samples[("monitoring_drift", labels)], feature["chunks"][-1]["value"])
    assert math.isclose(samples[("monitoring_drift_threshold", labels)], feature["upper_threshold"])
    assert samples[("monitoring_drift_alert", labels)] == 1
    drift_features = {
        dict(labels)["feature"]
        for (name, labels), _ in samples.items()
        if name == "monitoring_drift"
    }
    assert drift_features == {*first_run["drift"]["univariate"], "all features"}


def test_metrics_of_an_app_count_its_own_runs_only(monitored_settings: Settings) -> None:
    first, second = create_app(monitored_settings), create_app(monitored_settings)
    first.test_client().get("/run-monitoring?model_version=not-registered")

    counted = _samples(first.test_client().get("/metrics").get_data(as_text=True))
    fresh = _samples(second.test_client().get("/metrics").get_data(as_text=True))

    assert counted[("monitoring_runs_total", (("outcome", "failed"),))] == 1
    assert ("monitoring_runs_total", (("outcome", "failed"),)) not in fresh


def test_metrics_report_the_database_down_without_failing(
    base_settings: Settings, closed_port: int
) -> None:
    down = base_settings.model_copy(update={"db_port": closed_port, "db_connect_timeout": 2})

    response = create_app(down).test_client().get("/metrics")

    assert response.status_code == 200
    assert _samples(response.get_data(as_text=True))[("monitoring_database_up", ())] == 0


# --- GET / (the dashboard; tests/monitoring/web/test_dashboard_browser.py draws it) -------------


@pytest.mark.slow
def test_dashboard_shows_the_latest_stored_results(
    client: FlaskClient, first_run: dict[str, Any]
) -> None:
    response = client.get("/")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert VERSION in html
    assert '<script src="/static/plotly.min.js"></script>' in html
    assert 'id="performance"' in html
    assert "Plotly.react" in html
    # The report's figure builders draw the dashboard's figures too.
    assert PERFORMANCE_TITLE in html
    assert DRIFTING_FEATURE in html
    assert "cdn" not in html.lower()


def test_dashboard_without_results_says_how_to_get_them(db_settings: Settings) -> None:
    register_model(db_settings)
    client = create_app(db_settings).test_client()

    response = client.get("/")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "No monitoring results for this model yet" in html
    assert "/run-monitoring" in html
    assert "python -m monitoring poll" in html
    assert "plotly.min.js" not in html


def test_dashboard_without_a_model_says_to_train_one(db_settings: Settings) -> None:
    html = create_app(db_settings).test_client().get("/").get_data(as_text=True)

    assert "No model has been trained yet" in html


def test_plotly_js_is_served_locally(client: FlaskClient) -> None:
    response = client.get("/static/plotly.min.js")

    assert response.status_code == 200
    assert response.mimetype in ("text/javascript", "application/javascript")
    assert b"plotly.js" in response.get_data()[:2000]
    response.close()
