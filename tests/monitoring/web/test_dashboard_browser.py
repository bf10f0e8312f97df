"""The dashboard in headless Chromium: plotly.js, served by the app itself, draws the figures.

The app runs in a werkzeug server on a free loopback port; Chromium loads the page with
networking features off (the page must not need the internet) and dumps the DOM once its
scripts have run, the drill-down's request included. Two versions are monitored, so the
selector has a choice. Skipped where Debian's `chromium` is not installed (CI installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from config.settings import Settings
from monitoring.web.app import create_app
from tests.monitoring.web.test_dashboard import (
    DRIFTED_CHUNK,
    OTHER_VERSION,
    monitor_two_versions,
)
from tests.monitoring.web.test_service import DRIFTING_FEATURE, TEST_SETTINGS, VERSION

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_SECONDS = 90

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (Debian: apt-get install chromium; CI installs it)",
    ),
]


@pytest.fixture(scope="module")
def dashboard_url(module_db_settings: Settings) -> Iterator[str]:
    """The URL of a served dashboard with one run's results stored (read-only for tests)."""
    settings = module_db_settings.model_copy(update=TEST_SETTINGS)
    monitor_two_versions(settings)
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            "--window-size=1280,2400",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=BROWSER_SECONDS,
        check=False,
    )


def test_plotly_draws_the_dashboard_figures(dashboard_url: str, tmp_path: Path) -> None:
    result = _chromium(dashboard_url, tmp_path / "profile", "--dump-dom")

    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert VERSION in dom
    # Elements plotly.js creates when it draws: nothing in the served HTML has them.
    for element_id in ("verdicts", "performance", "multivariate", "univariate"):
        start = dom.index(f'id="{element_id}"')
        assert 'class="plot-container' in dom[start : start + 2000], element_id
    assert dom.count('class="main-svg"') >= 6
    assert "Estimated vs realized performance per chunk" in dom
    assert DRIFTING_FEATURE in dom


def test_the_dashboard_screenshot_is_not_blank(dashboard_url: str, tmp_path: Path) -> None:
    png = tmp_path / "dashboard.png"

    result = _chromium(dashboard_url, tmp_path / "profile", f"--screenshot={png}")

    assert result.returncode == 0, result.stderr[-2000:]
    assert png.is_file()
    assert png.stat().st_size > 50_000  # a drawn page; a blank one is a few kB


def test_the_verdict_is_on_top_and_the_drilldown_renders(
    dashboard_url: str, tmp_path: Path
) -> None:
    url = f"{dashboard_url}?version={VERSION}&feature={DRIFTING_FEATURE}&chunk={DRIFTED_CHUNK}"

    result = _chromium(url, tmp_path / "profile", "--dump-dom")

    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    body = dom[dom.index("<body>") :]
    verdict = body.index('id="verdict"')
    assert body.index("</header>") < verdict < body.index('id="verdicts"')
    assert verdict < body.index('id="performance"') < body.index('id="drill-histogram"')
    # The script fetched the drill-down and plotly.js drew both of its figures.
    for element_id in ("drill-statistic", "drill-histogram"):
        start = dom.index(f'id="{element_id}"')
        assert 'class="plot-container' in dom[start : start + 2000], element_id
    assert f"reference vs chunk {DRIFTED_CHUNK}" in dom
    assert "histogram of 1200 reference and 200 chunk rows" in dom


def test_the_selector_shows_the_chosen_version(dashboard_url: str, tmp_path: Path) -> None:
    result = _chromium(f"{dashboard_url}?version={OTHER_VERSION}", tmp_path / "p", "--dump-dom")

    dom = result.stdout
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Churn model monitoring: {OTHER_VERSION}</h1>" in dom
    assert f'<option value="{OTHER_VERSION}" selected="">' in dom
    assert f'<option value="{VERSION}">' in dom
    start = dom.index('id="performance"')
    assert 'class="plot-container' in dom[start : start + 2000]


def test_a_bad_drilldown_shows_its_message(dashboard_url: str, tmp_path: Path) -> None:
    url = f"{dashboard_url}?version={VERSION}&feature=no_such_feature&chunk={DRIFTED_CHUNK}"

    result = _chromium(url, tmp_path / "profile", "--dump-dom")

    assert result.returncode == 0, result.stderr[-2000:]
    assert "feature 'no_such_feature' has no stored drift" in result.stdout
