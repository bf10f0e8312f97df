"""The monitoring report: a `MonitoringResult` as CSV tables and plots in a folder.

Files written:

- ``metrics.csv``: one row per metric and chunk (`MonitoringResult.metric_rows`);
- ``drift.csv``: one row per feature and chunk: univariate and multivariate drift, then data
  quality (`MonitoringResult.drift_rows` and `quality_rows`);
- ``performance``, ``univariate_drift``, ``multivariate_drift``, ``data_quality``: each as a
  static ``.png`` (kaleido) and an interactive ``.html``, drawn by `monitoring.report.figures`
  like the dashboard's;
- ``plotly.min.js``: the HTML pages load plotly.js from this single copy next to them
  (``include_plotlyjs="directory"``). They then work offline and behind firewalls, unlike
  with the CDN, and four pages do not embed 3.5 MB each. Copy the folder as a whole.
"""

from __future__ import annotations

from pathlib import Path

from monitoring.compute.result import MonitoringResult
from monitoring.report.figures import (
    DRIFT_KINDS,
    QUALITY_KINDS,
    metric_frame,
    performance_figure,
    statistics_figure,
)

METRICS_CSV = "metrics.csv"
DRIFT_CSV = "drift.csv"
PLOTLY_JS = "plotly.min.js"
PERFORMANCE = "performance"
UNIVARIATE_DRIFT = "univariate_drift"
MULTIVARIATE_DRIFT = "multivariate_drift"
DATA_QUALITY = "data_quality"
WIDTH = 1200


def write_report(result: MonitoringResult, folder: Path) -> dict[str, Path]:
    """Write the CSV tables, PNG and HTML plots of ``result`` into ``folder`` (created).

    Returns:
        Every file written, by name without extension for the plots (``performance.png`` is
        under ``performance_png``), e.g. ``{"metrics_csv": .../metrics.csv, ...}``.

    Raises:
        OSError: The folder or a file cannot be written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    metrics = metric_frame(result.metric_rows())
    drift = metric_frame([*result.drift_rows(), *result.quality_rows()])
    written["metrics_csv"] = folder / METRICS_CSV
    metrics.to_csv(written["metrics_csv"], index=False)
    written["drift_csv"] = folder / DRIFT_CSV
    drift.to_csv(written["drift_csv"], index=False)
    figures = {
        PERFORMANCE: performance_figure(metrics, WIDTH),
        UNIVARIATE_DRIFT: statistics_figure(
            drift[drift["kind"].isin(DRIFT_KINDS)], "Univariate drift", WIDTH
        ),
        MULTIVARIATE_DRIFT: statistics_figure(
            drift[drift["kind"] == "multivariate"],
            "Multivariate drift (PCA reconstruction error)",
            WIDTH,
        ),
        DATA_QUALITY: statistics_figure(
            drift[drift["kind"].isin(QUALITY_KINDS)], "Data quality", WIDTH
        ),
    }
    for name, figure in figures.items():
        png = folder / f"{name}.png"
        figure.write_image(png, format="png")
        html = folder / f"{name}.html"
        figure.write_html(html, include_plotlyjs="directory", full_html=True)
        written[f"{name}_png"] = png
        written[f"{name}_html"] = html
    written["plotly_js"] = folder / PLOTLY_JS
    return written
