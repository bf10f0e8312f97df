"""The EDA's figures: pure functions from DataFrames to matplotlib figures.

Figures are built with the object-oriented API on an Agg canvas instead of through pyplot:
nothing here selects a backend for the whole process (a notebook importing this keeps its own),
no window can open on a server, and pyplot's registry never holds a figure, so none is left
open. Callers save a figure with `save_figure`, which releases it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import matplotlib.dates as mdates
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from db.eda_queries import DAILY_COUNT_COLUMNS, FEATURE_MEANINGS, FEATURE_NAMES, LABEL
from eda.summary import LABEL_GROUPS, is_heavy_tailed, label_groups

# One colour per label group in every figure: not churning, churning, unknown.
GROUP_COLOURS: dict[str, str] = {"0": "#4C72B0", "1": "#DD8452", "unknown": "#8C8C8C"}
GROUP_NAMES: dict[str, str] = {"0": "0 (not churning)", "1": "1 (churning)", "unknown": "unknown"}
DPI = 110
_DAILY_TITLES: dict[str, str] = {
    "cdr_rows": "CDR rows",
    "subscribers": "subscribers",
    "churn_label_rows": "rows labelled 1 (churning)",
    "unlabelled_rows": "rows without a label",
}


def new_figure(width: float, height: float) -> Figure:
    """An empty figure drawn by the Agg renderer, independent of pyplot."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Figure, path: Path) -> None:
    """Write ``figure`` as a PNG to ``path`` and free what it drew."""
    figure.savefig(path, format="png", dpi=DPI)
    figure.clear()


def plot_feature_by_label(sample: pd.DataFrame, feature: str) -> Figure:
    """Distribution of one feature per churn label: letter-value (boxen) plot and ECDF.

    Heavy-tailed features (see `eda.summary.is_heavy_tailed`) get a symmetric-log axis, linear
    below 1, so the many zeros stay visible next to the long tail.

    Args:
        sample: Rows with ``feature`` and ``LABEL``; missing values are left out.
        feature: The column to plot.
    """
    groups = label_groups(sample[LABEL])
    values = sample[feature]
    counts = groups[values.notna()].value_counts()
    present = [group for group in LABEL_GROUPS if counts.get(group, 0) > 0]
    # Names, not "0" and "1": matplotlib would take those for numbers on a categorical axis.
    names = [GROUP_NAMES[group] for group in present]
    data = pd.DataFrame({"label": groups.map(GROUP_NAMES).astype(object), "value": values})
    data = data[data["value"].notna()]
    meaning = FEATURE_MEANINGS.get(feature, feature)

    figure = new_figure(11, 4.5)
    boxen, ecdf = figure.subplots(1, 2, width_ratios=(1, 1.3))
    if not present:
        figure.suptitle(f"{feature} ({meaning}): no values in the range")
        for axes in (boxen, ecdf):
            axes.set_axis_off()
        return figure

    palette = {GROUP_NAMES[group]: GROUP_COLOURS[group] for group in present}
    sns.boxenplot(
        data=data, x="label", y="value", hue="label", order=names, hue_order=names,
        palette=palette, legend=False, ax=boxen,
    )  # fmt: skip
    boxen.set_xticks(range(len(present)))
    boxen.set_xticklabels([f"{GROUP_NAMES[g]}\nn={counts[g]:,}" for g in present])
    boxen.set_xlabel("churn label (PSEUDO_CHURNED)")
    boxen.set_ylabel(meaning)

    sns.ecdfplot(data=data, x="value", hue="label", hue_order=names, palette=palette, ax=ecdf)
    ecdf.set_xlabel(meaning)
    ecdf.set_ylabel("share of rows ≤ value")
    legend = ecdf.get_legend()
    if legend is not None:
        legend.set_title("churn label")

    scale = ""
    heavy = is_heavy_tailed(data["value"])
    if heavy:
        boxen.set_yscale("symlog", linthresh=1)
        ecdf.set_xscale("symlog", linthresh=1)
        boxen.yaxis.set_major_formatter(FuncFormatter(_plain_number))
        ecdf.xaxis.set_major_formatter(FuncFormatter(_plain_number))
        scale = ", symmetric-log scale"
    low, high = data["value"].min(), data["value"].max()
    if low >= 0:
        # Usage is never negative: no axis room below zero, which symlog would otherwise add;
        # headroom above, or the outliers' markers are cut in half by the frame.
        boxen.set_ylim(0, high * (1.6 if heavy else 1.05) or 1)
        ecdf.set_xlim(left=0)
    for axes in (boxen, ecdf):
        axes.grid(True, alpha=0.3)
    figure.suptitle(f"{feature} ({meaning}) by churn label{scale}")
    return figure


def _plain_number(value: float, _position: int | None) -> str:
    # "1,000" rather than 10^3 or 1e3: these are counts, minutes and megabytes.
    return f"{value:,.0f}" if abs(value) >= 1 else f"{value:g}"


def plot_correlation(correlation: pd.DataFrame) -> Figure:
    """Heatmap of a correlation matrix, annotated, on a diverging scale fixed to [-1, 1].

    The symmetric limits centre the colour map on 0 (seaborn's ``center`` would rebuild it).
    """
    size = 1.0 + 0.75 * len(correlation)
    figure = new_figure(size + 1.5, size)
    axes = figure.subplots()
    sns.heatmap(
        correlation, vmin=-1, vmax=1, cmap="vlag", annot=True, fmt=".2f",
        annot_kws={"size": 9}, square=True, linewidths=0.5,
        cbar_kws={"label": "Pearson r", "shrink": 0.8}, ax=axes,
    )  # fmt: skip
    axes.tick_params(axis="x", labelrotation=45)
    for label in axes.get_xticklabels():
        label.set_horizontalalignment("right")
    axes.set_title("Correlation of the usage features and the churn label")
    return figure


def plot_daily_totals(
    daily: pd.DataFrame, start: date | None = None, end: date | None = None
) -> Figure:
    """One small panel per daily total: rows, subscribers, label counts and each feature's sum.

    Args:
        daily: Per-day totals (`db.eda_queries.daily_totals` layout).
        start: First day of the x axis; with ``end``, the days without a row in ``daily`` are
            drawn as zero (no CDRs, no usage) instead of a line bridging the gap.
        end: Last day of the x axis.
    """
    if start is not None and end is not None:
        days = pd.date_range(start, end, freq="D", name="day")
        daily = daily.set_index("day").reindex(days, fill_value=0).reset_index()
    panels = [*DAILY_COUNT_COLUMNS, *FEATURE_NAMES]
    columns = 3
    rows = -(-len(panels) // columns)
    figure = new_figure(13, 2.3 * rows + 0.6)
    grid = figure.subplots(rows, columns, sharex=True, squeeze=False)
    axes_list: list[Axes] = list(grid.flat)
    marker = "o" if len(daily) <= 45 else None
    for axes, column in zip(axes_list, panels, strict=False):
        axes.plot(daily["day"], daily[column], marker=marker, markersize=3, linewidth=1.2)
        title = _DAILY_TITLES.get(column) or f"{column}: {FEATURE_MEANINGS[column]}"
        axes.set_title(title, fontsize=10)
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        axes.yaxis.set_major_formatter(FuncFormatter(_plain_number))
        locator = mdates.AutoDateLocator(maxticks=6)
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for axes in axes_list[len(panels) :]:
        axes.set_axis_off()
    figure.suptitle("Daily totals of the CDRs")
    return figure
