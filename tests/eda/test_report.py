"""The Markdown report and the console summary, built from an analysis of in-memory frames."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from db.eda_queries import FEATURE_NAMES, LABEL, RangeOverview
from eda.analysis import Analysis, analyse
from eda.report import build_report, console_summary, image_files
from eda.summary import feature_moments

START, END = date(2024, 1, 1), date(2024, 1, 20)
SECTIONS = [
    "## Overview",
    "## Sample",
    "## Features",
    "## Summary statistics",
    "## Daily totals",
    "## Distributions by churn label",
    "## Correlations",
]


def _analysis(rows: pd.DataFrame, daily: pd.DataFrame, sample_limit: int) -> Analysis:
    moments = feature_moments(rows)
    # What the database would return for a per-label limit: the first rows of each label.
    sample = rows.groupby(rows[LABEL], dropna=False, group_keys=False).head(sample_limit)
    overview = RangeOverview(len(rows), 60, datetime(2024, 1, 1), datetime(2024, 1, 20))
    return analyse(START, END, overview, daily, moments, sample, sample_limit)


@pytest.fixture(scope="module")
def whole(eda_rows: pd.DataFrame, pandas_daily: pd.DataFrame) -> Analysis:
    return _analysis(eda_rows, pandas_daily, 50_000)


@pytest.fixture(scope="module")
def sampled(eda_rows: pd.DataFrame, pandas_daily: pd.DataFrame) -> Analysis:
    return _analysis(eda_rows, pandas_daily, 25)


def test_the_report_has_its_sections_in_order(whole: Analysis) -> None:
    report = build_report(whole, "RawData")

    positions = [report.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert report.startswith("# Exploratory analysis of the CDRs, 2024-01-01 to 2024-01-20")
    assert "database `RawData`" in report
    for group in ("### All rows", "### Label 0 (not churning)", "### Label 1"):
        assert group in report
    assert "### Rows without a label" not in report  # the generator labels every row


def test_the_report_links_every_figure_once(whole: Analysis) -> None:
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", build_report(whole, "RawData"))

    assert links == image_files()
    assert len(links) == 2 + len(FEATURE_NAMES)


def test_the_summary_tables_carry_the_exact_numbers(
    whole: Analysis, eda_rows: pd.DataFrame
) -> None:
    report = build_report(whole, "RawData")

    calls = eda_rows["M_Out_Call_Count"]
    expected = (
        f"| M_Out_Call_Count | {len(calls):,} | 0 | {calls.mean():,.2f} | {calls.std():,.2f} |"
    )
    assert expected in report
    assert f"| rows | {len(eda_rows):,} |" in report
    assert "| 2024-01-20 |" in report  # the last day's totals
    assert "Days without CDRs: none." in report


def test_an_unsampled_range_says_every_row_was_read(whole: Analysis) -> None:
    report = build_report(whole, "RawData")

    assert not whole.is_sampled
    assert "**every row** was read" in report
    assert "This is a sample" not in report


def test_a_sampled_range_says_so_and_how_big_the_sample_is(
    sampled: Analysis, eda_rows: pd.DataFrame
) -> None:
    report = build_report(sampled, "RawData")

    zeros, ones = (int((eda_rows[LABEL] == label).sum()) for label in (0, 1))
    assert sampled.is_sampled
    assert "**This is a sample**" in report
    assert f"label 0: 25 of {zeros:,} rows; label 1: 25 of {ones:,} rows" in report
    assert "at most 25 rows per label" in report
    assert "`CRC32(id)`" in report


def test_the_console_summary_fits_one_screen(sampled: Analysis, tmp_path: Path) -> None:
    text = console_summary(sampled, tmp_path / "report.md")

    lines = text.splitlines()
    assert len(lines) <= 24 and max(map(len, lines)) <= 100
    assert lines[0] == "EDA of DP_CDR_Data from 2024-01-01 to 2024-01-20 (20 days, 20 with CDRs)"
    assert lines[-1].startswith(f"report: {tmp_path / 'report.md'}")
    assert "sample: label 0: 25 of" in text
    assert all(any(line.startswith(name) for line in lines) for name in FEATURE_NAMES)
