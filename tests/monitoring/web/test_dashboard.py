"""The dashboard through Flask's test client: the verdict first, the version selector, the
state the page polls, the drill-down endpoint and its 400s, on a real monitored database.

Two versions are monitored: the current one (drifting in its second half) and an older one.
`tests/monitoring/web/test_dashboard_browser.py` draws the same page in Chromium.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient

from config.settings import Settings
from db.connection import connection, transaction
from db.monitoring import RunRecord, record_failed_run
from monitoring.pipeline.runner import report_folder, run_for_model
from monitoring.web.app import create_app
from tests.monitoring.web.test_service import (
    ANALYSIS_DAYS,
    ANALYSIS_START,
    DRIFTING_FEATURE,
    REFERENCE_DAYS,
    REFERENCE_START,
    TEST_SETTINGS,
    VERSION,
    assert_json_error,
    days,
    insert_predictions,
    make_predictions,
    populate,
    register_model,
)

pytestmark = pytest.mark.slow  # each module monitors two versions first

OTHER_VERSION = "churn-20240101-older"
STREAM_START = ANALYSIS_START + timedelta(days=2)
DRIFTED_CHUNK = f"{ANALYSIS_START + timedelta(days=ANALYSIS_DAYS - 1):%Y-%m-%d}"
_INSERT_STREAM = (
    "INSERT INTO ingest_sources (source_id, kind, description, total_batches, anchor_date) "
    "VALUES ('stream-test', 'stream', 'test', 1, %s)"
)


def monitor_two_versions(settings: Settings) -> None:
    """The current version and an older one, both monitored; the stream began mid-analysis."""
    populate(settings)
    register_model(settings, OTHER_VERSION, current=False)
    rng = np.random.default_rng(11)
    reference = make_predictions(rng, days(REFERENCE_START, REFERENCE_DAYS))
    insert_predictions(settings, OTHER_VERSION, "reference", reference)
    analysis = make_predictions(rng, days(ANALYSIS_START, ANALYSIS_DAYS))
    insert_predictions(settings, OTHER_VERSION, "analysis", analysis)
    with connection(settings) as conn, transaction(conn) as cursor:
        cursor.execute(_INSERT_STREAM, (datetime.combine(STREAM_START, datetime.min.time()),))
    run_for_model(settings, OTHER_VERSION)
    run_for_model(settings, VERSION)


@pytest.fixture(scope="module")
def monitored(module_db_settings: Settings) -> Settings:
    settings = module_db_settings.model_copy(update=TEST_SETTINGS)
    monitor_two_versions(settings)
    return settings


@pytest.fixture
def client(monitored: Settings) -> FlaskClient:
    return create_app(monitored).test_client()


def page_state(html: str) -> dict[str, Any]:
    """The JSON the page hands its script."""
    match = re.search(r"const page = (\{.*?\});\n", html)
    assert match is not None
    state: dict[str, Any] = json.loads(match.group(1))
    return state


def figures(html: str) -> dict[str, Any]:
    match = re.search(r"const figures = (\{.*?\});\n", html)
    assert match is not None
    parsed: dict[str, Any] = json.loads(match.group(1))
    return parsed


def test_the_verdict_comes_before_everything_else(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)

    verdict = html.index('id="verdict"')
    assert verdict < html.index('id="latest"') < html.index('id="performance"')
    assert html.index("</header>") < verdict
    assert "in the latest chunk (" + DRIFTED_CHUNK + ")" in html
    assert "univariate_drift:" + DRIFTING_FEATURE in html


def test_drift_is_listed_by_severity_with_runs_of_chunks(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)

    table = html[html.index('id="drifting"') : html.index("</table>", html.index('id="drifting"'))]
    assert DRIFTING_FEATURE in table
    assert re.search(r"\d{4}-\d\d-\d\d–" + DRIFTED_CHUNK + r" \(\d chunks\)", table)
    drawn = figures(html)
    assert set(drawn) >= {"verdicts", "performance", "univariate", "multivariate"}
    (bars,) = drawn["univariate"]["data"]
    assert bars["y"][0].startswith(DRIFTING_FEATURE)
    assert "template" not in drawn["performance"]["layout"]  # sent once, not per figure


def test_the_plots_mark_the_reference_period_and_the_stream(client: FlaskClient) -> None:
    layout = figures(client.get("/").get_data(as_text=True))["performance"]["layout"]

    shapes = layout["shapes"]
    assert any(s["type"] == "rect" and s["x0"].startswith(f"{REFERENCE_START}") for s in shapes)
    assert any(s["type"] == "line" and s["x0"].startswith(f"{STREAM_START}") for s in shapes)
    assert {"reference", "stream begins ▶"} <= {a["text"] for a in layout["annotations"]}


def test_the_selector_lists_the_monitored_versions_and_selects_one(
    client: FlaskClient,
) -> None:
    default = client.get("/").get_data(as_text=True)
    other = client.get(f"/?version={OTHER_VERSION}").get_data(as_text=True)

    assert f'<option value="{VERSION}" selected>' in default
    assert f'<option value="{OTHER_VERSION}">' in default
    assert f'<option value="{OTHER_VERSION}" selected>' in other
    assert page_state(other)["version"] == OTHER_VERSION


def test_an_unknown_version_is_a_404_page_that_says_so(client: FlaskClient) -> None:
    response = client.get("/?version=no-such-version")

    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert "model version &#39;no-such-version&#39; is not known" in html
    assert f'<option value="{VERSION}"' in html


@pytest.mark.parametrize(
    "query",
    ["version=../x", "version=a&version=b", "colour=red", "chunk=" + "x" * 65],
)
def test_a_bad_page_query_is_a_400(client: FlaskClient, query: str) -> None:
    assert_json_error(client.get(f"/?{query}"), 400)


def test_the_page_keeps_the_selected_feature_and_chunk_for_its_script(
    client: FlaskClient, monitored: Settings
) -> None:
    html = client.get(f"/?version={VERSION}&feature={DRIFTING_FEATURE}&chunk=2024-02-16")

    state = page_state(html.get_data(as_text=True))
    assert state["feature"] == DRIFTING_FEATURE and state["chunk"] == "2024-02-16"
    assert state["refresh_seconds"] == monitored.monitoring_dashboard_refresh
    assert state["default_chunks"][DRIFTING_FEATURE] == DRIFTED_CHUNK
    assert state["drilldown_url"] == "/dashboard/drilldown"


def test_the_state_the_page_polls_changes_with_a_new_run(
    client: FlaskClient, monitored: Settings
) -> None:
    before = client.get(f"/dashboard/state?version={OTHER_VERSION}").get_json()
    now = datetime(2024, 3, 1)
    with connection(monitored) as conn:
        run_id = record_failed_run(conn, RunRecord(OTHER_VERSION, "cli", now, now, 0), "x")
    after = client.get(f"/dashboard/state?version={OTHER_VERSION}").get_json()

    assert after["run_id"] == run_id != before["run_id"]
    assert after["status"] == "failed"
    assert set(after) == {"version", "run_id", "status", "finished_at"}
    assert_json_error(client.get("/dashboard/state?version=no-such-version"), 404)
    assert_json_error(client.get("/dashboard/state"), 400)


def test_the_drilldown_compares_the_reference_with_a_chunk(client: FlaskClient) -> None:
    response = client.get(
        f"/dashboard/drilldown?version={VERSION}&feature={DRIFTING_FEATURE}&chunk={DRIFTED_CHUNK}"
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["reference_rows"] == REFERENCE_DAYS * 200
    assert body["chunk_rows"] == 200
    assert body["alerts"] >= 1 and body["runs"]
    reference, chunk = body["figures"]["histogram"]["data"]
    assert reference["name"].startswith("reference") and chunk["name"].startswith("chunk")
    assert sum(chunk["y"]) == pytest.approx(1.0)
    # The drifted chunk sits higher: more of its rows in the upper half of the bins.
    half = len(chunk["y"]) // 2
    assert sum(chunk["y"][half:]) > sum(reference["y"][half:])
    statistic = body["figures"]["statistic"]
    assert statistic["layout"]["title"]["text"].endswith(DRIFTING_FEATURE)
    assert len(response.get_data()) < 40_000


def test_the_drilldown_of_a_categorical_feature(client: FlaskClient) -> None:
    body = client.get(
        f"/dashboard/drilldown?version={VERSION}&feature=usage_profile&chunk={DRIFTED_CHUNK}"
    ).get_json()

    reference, _ = body["figures"]["histogram"]["data"]
    assert set(reference["x"]) == {"data", "mixed", "voice"}


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        (f"feature=nope&chunk={DRIFTED_CHUNK}", 400, "feature 'nope'"),
        (f"feature={DRIFTING_FEATURE}&chunk=2099-01-01", 400, "chunk '2099-01-01'"),
        (f"feature=all features&chunk={DRIFTED_CHUNK}", 400, "feature 'all features'"),
        (f"feature={DRIFTING_FEATURE}", 400, "chunk is required"),
        (f"feature={DRIFTING_FEATURE}&chunk={DRIFTED_CHUNK}&x=1", 400, "x is not a recognised"),
        (f"feature={'f' * 129}&chunk={DRIFTED_CHUNK}", 400, "feature"),
    ],
)
def test_a_bad_drilldown_is_a_400_that_names_the_problem(
    client: FlaskClient, query: str, status: int, message: str
) -> None:
    response = client.get(f"/dashboard/drilldown?version={VERSION}&{query}")

    assert message in assert_json_error(response, status)


def test_the_drilldown_of_an_unknown_version_is_a_404(client: FlaskClient) -> None:
    response = client.get("/dashboard/drilldown?version=nope&feature=a&chunk=b")

    assert "is not known" in assert_json_error(response, 404)


def test_the_report_of_a_run_marks_the_same_timeline(monitored: Settings) -> None:
    index = report_folder(monitored, VERSION) / "index.html"

    html = index.read_text(encoding="utf-8")

    assert f"The stream begins on {STREAM_START}" in html
    assert (
        f"from {REFERENCE_START} to {REFERENCE_START + timedelta(days=REFERENCE_DAYS - 1)}" in html
    )
    assert html.index('id="verdict"') < html.index('id="figure-performance"')
