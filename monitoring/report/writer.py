"""The monitoring report: a `MonitoringResult` as CSV tables and plots in a folder.

Files written:

- ``index.html``: the report's page: the latest chunk's verdict first, then every figure
  and the drifting features ranked by severity, their alerts as runs of chunks;
- ``metrics.csv``: one row per metric and chunk (`MonitoringResult.metric_rows`);
- ``drift.csv``: one row per feature and chunk: univariate and multivariate drift, then data
  quality (`MonitoringResult.drift_rows` and `quality_rows`);
- each figure of `monitoring.report.pictures.build_pictures` (``verdict``, ``performance``,
  ``univariate_drift``, ``drifting_features`` when a feature drifted, ``multivariate_drift``,
  ``data_quality`` when a feature has an issue) as a static ``.png`` (kaleido) and an
  interactive ``.html``: the dashboard draws the same figures with the same code;
- ``plotly.min.js``: the HTML pages load plotly.js from this single copy next to them
  (``include_plotlyjs="directory"``). They then work offline and behind firewalls, unlike
  with the CDN, and the pages do not embed 3.5 MB each. Copy the folder as a whole.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from monitoring.compute.result import MonitoringResult
from monitoring.report.figures import metric_frame
from monitoring.report.pictures import REPORT_FEATURE_PANELS, Pictures, build_pictures
from monitoring.report.timeline import NO_TIMELINE, Timeline

METRICS_CSV = "metrics.csv"
DRIFT_CSV = "drift.csv"
INDEX_HTML = "index.html"
PLOTLY_JS = "plotly.min.js"
WIDTH = 1200
_TEMPLATES = Path(__file__).resolve().parent / "templates"


def write_report(
    result: MonitoringResult, folder: Path, timeline: Timeline = NO_TIMELINE
) -> dict[str, Path]:
    """Write the page, the CSV tables, PNG and HTML plots of ``result`` into ``folder``.

    Args:
        result: What the run found.
        folder: Where to write (created).
        timeline: The reference period and the first streamed day, marked on the plots
            (`db.dashboard.reference_span` and `first_streamed_day` read them).

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
    pictures = build_pictures(
        metrics, drift, timeline, width=WIDTH, feature_panels=REPORT_FEATURE_PANELS
    )
    for name, figure in pictures.figures.items():
        png = folder / f"{name}.png"
        figure.write_image(png, format="png")
        html = folder / f"{name}.html"
        figure.write_html(html, include_plotlyjs="directory", full_html=True)
        written[f"{name}_png"] = png
        written[f"{name}_html"] = html
    written["plotly_js"] = folder / PLOTLY_JS
    written["index_html"] = folder / INDEX_HTML
    written["index_html"].write_text(_render_index(result, pictures, timeline), encoding="utf-8")
    return written


def _render_index(result: MonitoringResult, pictures: Pictures, timeline: Timeline) -> str:
    environment = Environment(
        loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html"])
    )
    figures = {
        name: figure.to_html(full_html=False, include_plotlyjs=False)
        for name, figure in pictures.figures.items()
    }
    return environment.get_template(INDEX_HTML).render(
        summary=result.to_compact_json()["summary"],
        pictures=pictures,
        figures=figures,
        timeline=timeline,
        plotly_js=PLOTLY_JS,
    )
