"""The report: CSV tables and PNG/HTML plots of a monitoring result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.compute.core import run_monitoring
from monitoring.compute.result import METRICS, MonitoringResult
from monitoring.compute.spec import Chunking, ColumnMapping
from monitoring.report import write_report
from monitoring.report.figures import metric_frame, performance_figure, statistics_figure
from tests.monitoring.frames import day_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def result(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> MonitoringResult:
    """Eight daily chunks, the last two unlabelled, with a shifted feature and a missing value."""
    late = day_of(analysis) >= 6
    changed = analysis.assign(
        usage=analysis["usage"] + np.where(late, 2.0, 0.0),
        churned=analysis["churned"].where(~late),
    )
    changed.loc[changed.index[::50], "spend"] = np.nan
    return run_monitoring(reference, changed, mapping, Chunking(period="D"))


def test_figures_draw_every_metric_and_statistic(result: MonitoringResult) -> None:
    performance = performance_figure(metric_frame(result.metric_rows()))
    drift = metric_frame(result.drift_rows())
    univariate = statistics_figure(drift[drift["kind"] != "multivariate"], "Univariate drift")

    titles = [annotation.text for annotation in performance.layout.annotations]
    assert titles == ["ROC AUC", "F1", "Accuracy"]
    legend = {trace.name for trace in performance.data if trace.showlegend}
    assert {"estimated (CBPE)", "realized", "threshold"} <= legend
    assert len(univariate.layout.annotations) == 3
    alerts = [trace for trace in univariate.data if trace.name == "alert"]
    assert sum(len(trace.x) for trace in alerts) == result.alert_counts()["univariate_drift"]


@pytest.mark.slow  # kaleido starts a headless Chromium
@pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")
def test_write_report(result: MonitoringResult, tmp_path: Path) -> None:
    written = write_report(result, tmp_path / "report")

    assert all(path.is_file() for path in written.values())
    assert set(written) == {
        "metrics_csv",
        "drift_csv",
        "plotly_js",
        *(
            f"{name}_{kind}"
            for name in ("performance", "univariate_drift", "multivariate_drift", "data_quality")
            for kind in ("png", "html")
        ),
    }
    assert written["performance_png"].read_bytes().startswith(PNG_SIGNATURE)
    html = written["performance_html"].read_text(encoding="utf-8")
    assert 'src="plotly.min.js"' in html
    assert len(html) < 100_000  # plotly.js is not embedded
    metrics = pd.read_csv(written["metrics_csv"])
    assert len(metrics) == len(METRICS) * len(result.chunks)
    assert metrics["realized"].isna().sum() == len(METRICS) * 2
    drift = pd.read_csv(written["drift_csv"])
    assert set(drift["kind"]) == {
        "continuous",
        "categorical",
        "multivariate",
        "missing_values",
        "unseen_values",
    }
