"""The figures: the right panels and scales, odd inputs survive, and pyplot never holds one."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from db.eda_queries import FEATURE_NAMES, LABEL
from eda.plots import (
    plot_correlation,
    plot_daily_totals,
    plot_feature_by_label,
    save_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _sample(values: np.ndarray, labels: list[float]) -> pd.DataFrame:
    frame = pd.DataFrame({name: values for name in FEATURE_NAMES})
    frame[LABEL] = labels
    return frame


def test_a_heavy_tailed_feature_gets_symlog_axes_and_counts_per_label(
    eda_rows: pd.DataFrame,
) -> None:
    figure = plot_feature_by_label(eda_rows, "M_Data_Sum")

    boxen, ecdf = figure.axes[:2]
    assert (boxen.get_yscale(), ecdf.get_xscale()) == ("symlog", "symlog")
    zeros, ones = (int((eda_rows[LABEL] == label).sum()) for label in (0, 1))
    ticks = [tick.get_text() for tick in boxen.get_xticklabels()]
    assert ticks == [f"0 (not churning)\nn={zeros:,}", f"1 (churning)\nn={ones:,}"]
    assert "M_Data_Sum" in figure.get_suptitle()
    assert boxen.get_ylim()[0] == 0  # usage is never negative


def test_an_even_spread_keeps_linear_axes_and_a_missing_label_is_its_own_group() -> None:
    values = np.tile(np.arange(10.0), 3)
    figure = plot_feature_by_label(
        _sample(values, [0.0] * 10 + [1.0] * 10 + [math.nan] * 10), "M_Data_Count"
    )

    boxen, ecdf = figure.axes[:2]
    assert (boxen.get_yscale(), ecdf.get_xscale()) == ("linear", "linear")
    assert [tick.get_text().split("\n")[0] for tick in boxen.get_xticklabels()] == [
        "0 (not churning)",
        "1 (churning)",
        "unknown",
    ]


def test_a_feature_without_values_draws_a_note_instead_of_failing(tmp_path: Path) -> None:
    sample = _sample(np.full(4, math.nan), [0.0, 0.0, 1.0, 1.0])

    figure = plot_feature_by_label(sample, "M_In_SMS_Count")

    assert "no values" in figure.get_suptitle()
    save_figure(figure, tmp_path / "empty.png")
    assert (tmp_path / "empty.png").read_bytes().startswith(PNG_SIGNATURE)


def test_the_correlation_heatmap_is_annotated_on_a_fixed_scale() -> None:
    correlation = pd.DataFrame([[1.0, -0.5], [-0.5, 1.0]], index=["a", LABEL], columns=["a", LABEL])

    figure = plot_correlation(correlation)

    heatmap = figure.axes[0]
    assert sorted(text.get_text() for text in heatmap.texts) == ["-0.50", "-0.50", "1.00", "1.00"]
    assert heatmap.collections[0].get_clim() == (-1, 1)


def test_daily_totals_have_one_panel_per_total(pandas_daily: pd.DataFrame) -> None:
    figure = plot_daily_totals(pandas_daily)

    titles = [axes.get_title() for axes in figure.axes if axes.get_visible() and axes.axison]
    assert len(titles) == 12
    assert titles[:2] == ["CDR rows", "subscribers"]
    assert "M_Data_Sum: data megabytes" in titles
    first = np.asarray(figure.axes[0].lines[0].get_ydata())
    assert first.tolist() == pandas_daily["cdr_rows"].tolist()


def test_days_without_cdrs_are_drawn_as_zero_across_the_whole_range() -> None:
    daily = pd.DataFrame({"day": pd.to_datetime(["2024-01-02", "2024-01-04"]), "cdr_rows": [5, 7]})
    for column in ("subscribers", "churn_label_rows", "unlabelled_rows", *FEATURE_NAMES):
        daily[column] = 1.0

    figure = plot_daily_totals(daily, date(2024, 1, 1), date(2024, 1, 5))

    rows = np.asarray(figure.axes[0].lines[0].get_ydata())
    assert rows.tolist() == [0, 5, 0, 7, 0]


def test_figures_bypass_pyplot_and_save_as_png(eda_rows: pd.DataFrame, tmp_path: Path) -> None:
    plt.close("all")
    figure = plot_feature_by_label(eda_rows, "M_Out_Call_Time")

    assert isinstance(figure, Figure)
    assert plt.get_fignums() == []
    save_figure(figure, tmp_path / "calls.png")
    png = (tmp_path / "calls.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 20_000
    assert figure.axes == []  # released after saving


@pytest.mark.parametrize("labels", [[0.0] * 5, [1.0] * 5])
def test_one_label_alone_is_drawn(labels: list[float]) -> None:
    figure = plot_feature_by_label(_sample(np.arange(5.0), labels), "M_Out_Call_Count")

    assert len(figure.axes[0].get_xticklabels()) == 1
