"""`python -m eda`: exploratory analysis of the raw CDRs over a date range.

The range is that of the parameters file (`config/query_params.json`, the QUERY_PARAMS_PATH
setting), overridden by `--start`/`--end`. Writes `report.md` and its PNG figures to
`OUTPUT/eda/START_END/`, then prints the report's path and a one-screen summary.

Exit status: 0 written; 1 no CDRs in the range, the database cannot be reached or read, or the
output folder cannot be written; 2 invalid settings, parameters file or arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from config import cli
from config.settings import Settings, load_query_params, load_settings
from db.connection import connection, transaction
from db.eda_queries import (
    FEATURE_NAMES,
    RangeOverview,
    daily_totals,
    label_moments,
    label_sample,
    range_overview,
)
from eda.analysis import Analysis, analyse
from eda.plots import plot_correlation, plot_daily_totals, plot_feature_by_label, save_figure
from eda.report import (
    CORRELATION_FILE,
    DAILY_TOTALS_FILE,
    REPORT_FILE,
    build_report,
    console_summary,
    distribution_file,
)
from eda.summary import LABEL_GROUPS, UNKNOWN, group_rows

DEFAULT_SAMPLE_ROWS = 50_000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RangeData:
    """What the database returns for one range: the inputs of `eda.analysis.analyse`."""

    overview: RangeOverview
    daily: pd.DataFrame
    moments: pd.DataFrame
    sample: pd.DataFrame


def _parser() -> argparse.ArgumentParser:
    parser = cli.parser("python -m eda", __doc__)
    cli.add_date_range(
        parser,
        config_help="JSON file with start_date and end_date, YYYY-MM-DD, both inclusive "
        "(default: the QUERY_PARAMS_PATH setting, config/query_params.json)",
        start_help="first date, YYYY-MM-DD, inclusive (default: start_date of the config file)",
        end_help="last date, YYYY-MM-DD, inclusive (default: end_date of the config file)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="output folder (default: the OUTPUT_DIR setting); the report goes to "
        "OUTPUT/eda/START_END/",
    )
    parser.add_argument(
        "--sample-rows",
        type=cli.positive_int,
        default=DEFAULT_SAMPLE_ROWS,
        help="the most rows read per churn label for quartiles, distributions and correlations",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    return parser


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    """Run the analysis; ``settings`` replaces the environment's (tests pass their own)."""
    args = _parser().parse_args(argv)
    cli.configure_logging(args.verbose)
    return cli.run(lambda: _analyse(args, settings or load_settings()))


def _analyse(args: argparse.Namespace, settings: Settings) -> int:
    def file_range(path: Path | None) -> tuple[date, date]:
        params = load_query_params(path or settings.query_params_path)
        return params.start_date, params.end_date

    start, end = cli.date_range(args, file_range)
    data = read_range(settings, start, end, args.sample_rows)
    if data is None:
        return cli.fail(f"no CDRs between {start} and {end} in DP_CDR_Data: nothing written")
    analysis = analyse(
        start, end, data.overview, data.daily, data.moments, data.sample, args.sample_rows
    )
    folder = (args.output or settings.output_dir) / "eda" / f"{start}_{end}"
    try:
        report = write_outputs(analysis, folder, settings.db_name)
    except OSError as exc:
        return cli.fail(f"cannot write to {folder}: {exc.strerror}")
    print(console_summary(analysis, report))
    return cli.EXIT_OK


def read_range(settings: Settings, start: date, end: date, sample_rows: int) -> RangeData | None:
    """Read the overview, daily totals, moments and sample of a range; None when it is empty."""
    # One transaction, one snapshot: rows a stream inserts meanwhile cannot make the totals,
    # the moments and the sample disagree.
    with connection(settings) as conn, transaction(conn) as cursor:
        log.info("reading DP_CDR_Data from %s to %s (database %s)", start, end, settings.db_name)
        overview = range_overview(cursor, start, end)
        if overview.rows == 0:
            return None
        daily = daily_totals(cursor, start, end)
        moments = label_moments(cursor, start, end)
        rows_per_group = group_rows(moments)
        samples = []
        for group in LABEL_GROUPS:
            rows = rows_per_group.get(group, 0)
            if rows:
                label = None if group == UNKNOWN else int(group)
                samples.append(label_sample(cursor, start, end, label, sample_rows, rows))
    sample = pd.concat(samples, ignore_index=True)
    log.info("%d rows in the range, %d in the sample", overview.rows, len(sample))
    return RangeData(overview, daily, moments, sample)


def write_outputs(analysis: Analysis, folder: Path, database: str) -> Path:
    """Write every figure, then `report.md`, into ``folder``; return the report's path.

    An earlier run's report is removed first and the new one written last, so a report.md in
    the folder always describes the figures next to it, even after a failed run.
    """
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / REPORT_FILE
    report.unlink(missing_ok=True)
    daily = plot_daily_totals(analysis.daily, analysis.start, analysis.end)
    save_figure(daily, folder / DAILY_TOTALS_FILE)
    for name in FEATURE_NAMES:
        save_figure(plot_feature_by_label(analysis.sample, name), folder / distribution_file(name))
    save_figure(plot_correlation(analysis.correlation), folder / CORRELATION_FILE)
    report.write_text(build_report(analysis, database), encoding="utf-8")
    log.info("wrote %s", report)
    return report


if __name__ == "__main__":
    sys.exit(main())
