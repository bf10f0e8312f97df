"""The EDA's Markdown report and console summary: pure functions of an `Analysis`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from db.eda_queries import (
    DAILY_COUNT_COLUMNS,
    FEATURE_MEANINGS,
    FEATURE_NAMES,
    FEATURES,
    LABEL,
)
from eda.analysis import Analysis
from eda.summary import ALL, LABEL_GROUPS, STATISTICS

REPORT_FILE = "report.md"
DAILY_TOTALS_FILE = "daily_totals.png"
CORRELATION_FILE = "correlation.png"
GROUP_TITLES: dict[str, str] = {
    ALL: "All rows",
    "0": "Label 0 (not churning)",
    "1": "Label 1 (churning within the label horizon)",
    "unknown": "Rows without a label",
}
_DAYS_LISTED = 10
_MISSING = "–"


def distribution_file(feature: str) -> str:
    """File name of the distribution figure of ``feature``."""
    return f"distribution_{feature.lower()}.png"


def image_files(features: Sequence[str] = FEATURE_NAMES) -> list[str]:
    """Every figure file the report links to, in report order."""
    return [DAILY_TOTALS_FILE, *(distribution_file(name) for name in features), CORRELATION_FILE]


def build_report(analysis: Analysis, database: str) -> str:
    """The Markdown report of ``analysis``; it links the figures by `image_files` names.

    Args:
        analysis: The analysis of one date range.
        database: Name of the database the CDRs were read from, for the record.
    """
    sections = [
        _title(analysis, database),
        _overview(analysis),
        _sample(analysis),
        _features(),
        _summary_statistics(analysis),
        _daily_totals(analysis),
        _distributions(),
        _correlations(analysis),
    ]
    return "\n\n".join(sections) + "\n"


def console_summary(analysis: Analysis, report_path: Path) -> str:
    """A screenful for the terminal: the range, its size, the sample, mean usage per label."""
    overview = analysis.overview
    by_label = ", ".join(f"{group}: {rows:,}" for group, rows in analysis.label_rows.items())
    groups = [group for group in ("0", "1") if (group, FEATURE_NAMES[0]) in analysis.summary.index]
    header = f"{'feature':<18}{'mean (all)':>12}" + "".join(
        f"{f'mean ({group})':>12}" for group in groups
    )
    lines = [
        f"EDA of DP_CDR_Data from {analysis.start} to {analysis.end} "
        f"({analysis.days} days, {analysis.days - len(analysis.missing_days)} with CDRs)",
        f"{overview.rows:,} rows, {overview.subscribers:,} subscribers; rows by label: {by_label}",
        f"sample: {_sample_sizes(analysis)}",
        "",
        header + f"{'r (label)':>11}",
    ]
    for name in FEATURE_NAMES:
        means = [analysis.summary.loc[(group, name), "mean"] for group in (ALL, *groups)]
        cells = "".join(f"{_number(mean):>12}" for mean in means)
        lines.append(f"{name:<18}{cells}{_number(analysis.correlation.loc[name, LABEL]):>11}")
    lines += ["", f"report: {report_path} ({len(image_files())} figures)"]
    return "\n".join(lines)


def _title(analysis: Analysis, database: str) -> str:
    return (
        f"# Exploratory analysis of the CDRs, {analysis.start} to {analysis.end}\n\n"
        f"The raw call-detail records of `DP_CDR_Data` in database `{database}` with `DP_DATE` "
        f"from {analysis.start} 00:00 to the end of {analysis.end}: {analysis.days} days, both "
        "ends included."
    )


def _overview(analysis: Analysis) -> str:
    overview = analysis.overview
    facts = [
        ("rows", f"{overview.rows:,}"),
        ("subscribers", f"{overview.subscribers:,}"),
        ("days with CDRs", f"{analysis.days - len(analysis.missing_days)} of {analysis.days}"),
        ("first record", str(overview.first)),
        ("last record", str(overview.last)),
    ]
    labels = [
        [group, f"{analysis.label_rows.get(group, 0):,}", _share(analysis, group)]
        for group in LABEL_GROUPS
    ]
    missing = analysis.missing_days
    days = ", ".join(str(day) for day in missing[:_DAYS_LISTED])
    if len(missing) > _DAYS_LISTED:
        days += f" and {len(missing) - _DAYS_LISTED} more"
    return "\n\n".join(
        [
            "## Overview",
            _table(["", "value"], facts),
            "Rows by churn label (`PSEUDO_CHURNED`: 1 when the subscriber churns within the "
            "label horizon, 0 otherwise, unknown when the row has no label):",
            _table(["label", "rows", "share"], labels),
            f"Days without CDRs: {days or 'none'}.",
        ]
    )


def _sample(analysis: Analysis) -> str:
    how = (
        "The quartiles, the distributions and the correlations are computed from the rows read "
        f"into memory: at most {analysis.sample_limit:,} rows per label, those with the smallest "
        "`CRC32(id)`. That is a fixed pseudo-random order of the rows, so a re-run over the same "
        "data reads the same sample. Count, missing, mean, std, min and max are exact: the "
        "database computes them over every row, as it does the daily totals."
    )
    if not analysis.is_sampled:
        return f"## Sample\n\n{how}\n\nNo label has more rows than that: **every row** was read."
    return (
        f"## Sample\n\n{how}\n\n**This is a sample**: {_sample_sizes(analysis)}. Within a label "
        "the sample is uniform. For all rows together each sampled row is weighted by the rows "
        "of its label over the sampled rows of its label, so the capped labels keep their share."
    )


def _features() -> str:
    rows = [[name, f"`{raw}`", FEATURE_MEANINGS[name]] for raw, name in FEATURES.items()]
    return "## Features\n\n" + _table(["feature", "raw column", "meaning"], rows, text_columns=3)


def _summary_statistics(analysis: Analysis) -> str:
    parts = [
        "## Summary statistics",
        "Per feature: non-missing values (count), missing values, mean, sample standard "
        "deviation, minimum, quartiles and maximum.",
    ]
    groups = analysis.summary.index.get_level_values("group").unique()
    for group in groups:
        frame = analysis.summary.loc[group]
        rows = [
            [name, *(_number(frame.loc[name, stat]) for stat in STATISTICS)] for name in frame.index
        ]
        parts += [f"### {GROUP_TITLES[group]}", _table(["feature", *STATISTICS], rows)]
    return "\n\n".join(parts)


def _daily_totals(analysis: Analysis) -> str:
    columns = ["day", *DAILY_COUNT_COLUMNS, *FEATURE_NAMES]
    rows = [
        [record["day"].date(), *(_number(record[column]) for column in columns[1:])]
        for _, record in analysis.daily.iterrows()
    ]
    return "\n\n".join(
        [
            "## Daily totals",
            "Computed by the database (`GROUP BY DATE(DP_DATE)`) over every row: rows, distinct "
            "subscribers, rows labelled 1, rows without a label, and the sum of each feature.",
            f"![Daily totals]({DAILY_TOTALS_FILE})",
            _table(columns, rows),
        ]
    )


def _distributions() -> str:
    parts = [
        "## Distributions by churn label",
        "Left: letter-value (boxen) plot per label, with the number of values under each box. "
        "Right: the share of rows at or below each value (ECDF) per label. Heavy-tailed features "
        "(skewness above 2) use a symmetric-log axis, linear below 1, so zeros stay visible.",
    ]
    for name in FEATURE_NAMES:
        parts += [
            f"### {name} ({FEATURE_MEANINGS[name]})",
            f"![{name} by churn label]({distribution_file(name)})",
        ]
    return "\n\n".join(parts)


def _correlations(analysis: Analysis) -> str:
    with_label = analysis.correlation[LABEL].drop(LABEL)
    order = with_label.abs().sort_values(ascending=False, na_position="last").index
    rows = [[name, _number(with_label[name])] for name in order]
    return "\n\n".join(
        [
            "## Correlations",
            "Pearson correlation of each pair of columns over the rows where both are present; "
            f"`{LABEL}` is `PSEUDO_CHURNED` (rows without a label are left out of its pairs).",
            f"![Correlation heatmap]({CORRELATION_FILE})",
            "Correlation with the churn label, strongest first:",
            _table(["feature", "r"], rows),
        ]
    )


def _sample_sizes(analysis: Analysis) -> str:
    if not analysis.is_sampled:
        return f"every row (at most {analysis.sample_limit:,} per label)"
    return "; ".join(
        f"label {group}: {analysis.sampled_rows.get(group, 0):,} of {rows:,} rows"
        for group, rows in analysis.label_rows.items()
    )


def _share(analysis: Analysis, group: str) -> str:
    total = analysis.overview.rows
    return f"{100 * analysis.label_rows.get(group, 0) / total:.1f}%" if total else _MISSING


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return _MISSING
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{float(value):,.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], text_columns: int = 1) -> str:
    """A Markdown table: the first ``text_columns`` left-aligned, the numbers right-aligned."""
    alignments = ["---" if i < text_columns else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(alignments) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
