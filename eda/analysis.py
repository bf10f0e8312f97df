"""The exploratory analysis of one date range as a value: what the report and figures show."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from db.eda_queries import LABEL, RangeOverview
from eda.summary import (
    correlation_matrix,
    group_rows,
    label_groups,
    missing_days,
    summarize_features,
)


@dataclass(frozen=True)
class Analysis:
    """Everything the report says about the CDRs from ``start`` to ``end`` (inclusive).

    Attributes:
        start: First day of the range.
        end: Last day of the range.
        overview: Rows, subscribers, first and last record of the range.
        daily: Per-day totals (`db.eda_queries.daily_totals`).
        summary: Per-group, per-feature statistics (`eda.summary.summarize_features`).
        correlation: Correlations of the features and the label, weighted across labels.
        label_rows: Rows per label group in the range.
        sampled_rows: Rows per label group in the sample.
        sample_limit: The most rows read per label.
        missing_days: Days of the range without any CDR.
        sample: The sampled rows the distributions and quartiles come from.
    """

    start: date
    end: date
    overview: RangeOverview
    daily: pd.DataFrame
    summary: pd.DataFrame
    correlation: pd.DataFrame
    label_rows: dict[str, int]
    sampled_rows: dict[str, int]
    sample_limit: int
    missing_days: list[date]
    sample: pd.DataFrame

    @property
    def days(self) -> int:
        """Calendar days in the range."""
        return (self.end - self.start).days + 1

    @property
    def is_sampled(self) -> bool:
        """Whether the sample leaves out rows of some label."""
        return any(
            self.sampled_rows.get(group, 0) < rows for group, rows in self.label_rows.items()
        )


def analyse(
    start: date,
    end: date,
    overview: RangeOverview,
    daily: pd.DataFrame,
    moments: pd.DataFrame,
    sample: pd.DataFrame,
    sample_limit: int,
) -> Analysis:
    """Combine what the database returned for a range into the statistics of the report.

    Args:
        start: First day of the range.
        end: Last day of the range, inclusive.
        overview: `db.eda_queries.range_overview` of the range.
        daily: `db.eda_queries.daily_totals` of the range.
        moments: `db.eda_queries.label_moments` of the range.
        sample: The rows of `db.eda_queries.label_sample` for every label, concatenated.
        sample_limit: The per-label limit the sample was read with.
    """
    label_rows = group_rows(moments)
    counts = label_groups(sample[LABEL]).value_counts()
    return Analysis(
        start=start,
        end=end,
        overview=overview,
        daily=daily,
        summary=summarize_features(sample, moments),
        correlation=correlation_matrix(sample, label_rows),
        label_rows=label_rows,
        sampled_rows={group: int(counts.get(group, 0)) for group in label_rows},
        sample_limit=sample_limit,
        missing_days=missing_days(daily, start, end),
        sample=sample,
    )
