"""A feature's distribution in the reference against one chunk, as two comparable histograms.

Pure: values in, shares per bin out. The dashboard's drill-down computes one from the rows
`db.dashboard.feature_values` reads; `monitoring.report.figures.histogram_figure` draws it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np

DEFAULT_BINS = 30
# Categories drawn one by one; the rarer ones (by reference frequency) are summed as "other".
MAX_CATEGORIES = 20
OTHER = "(other)"
# Continuous bins span these quantiles of both samples together, so one extreme value does
# not squeeze the rest into a single bar; values beyond fall into the outer bins.
_QUANTILES = (0.005, 0.995)


@dataclass(frozen=True)
class FeatureHistogram:
    """Shares of rows per bin (continuous) or per category, in the reference and a chunk.

    Attributes:
        feature: The feature.
        chunk: The chunk's key.
        categorical: Categories rather than bins.
        labels: Each bar's label: a bin's range or a category.
        centers: Bin centres (continuous; empty for categories).
        widths: Bin widths (continuous; empty for categories).
        reference_share: Share of the reference rows with a value in each bar.
        chunk_share: Likewise for the chunk.
        reference_rows: Reference rows with a value.
        chunk_rows: Chunk rows with a value.
        reference_missing: Reference rows without a value.
        chunk_missing: Chunk rows without a value.
        truncated: The rows were a bounded sample, not all of them.
    """

    feature: str
    chunk: str
    categorical: bool
    labels: tuple[str, ...]
    centers: tuple[float, ...]
    widths: tuple[float, ...]
    reference_share: tuple[float, ...]
    chunk_share: tuple[float, ...]
    reference_rows: int
    chunk_rows: int
    reference_missing: int
    chunk_missing: int
    truncated: bool = False


def compare_histograms(
    feature: str,
    chunk: str,
    reference: Sequence[Any],
    analysis: Sequence[Any],
    *,
    categorical: bool,
    bins: int = DEFAULT_BINS,
    truncated: bool = False,
) -> FeatureHistogram:
    """Histograms of ``reference`` and ``analysis`` (one chunk's values) on the same bins.

    Args:
        feature: The feature, for the title.
        chunk: The chunk's key, likewise.
        reference: The reference rows' values; None or NaN is a missing value.
        analysis: The chunk rows' values.
        categorical: Count categories instead of binning numbers.
        bins: Bins of a continuous feature.
        truncated: Say that the values are a bounded sample.
    """
    ref = [value for value in reference if not _missing(value)]
    ana = [value for value in analysis if not _missing(value)]
    counts = {
        "reference_rows": len(ref),
        "chunk_rows": len(ana),
        "reference_missing": len(reference) - len(ref),
        "chunk_missing": len(analysis) - len(ana),
    }
    if categorical:
        labels, ref_share, ana_share = _categories([str(v) for v in ref], [str(v) for v in ana])
        return FeatureHistogram(
            feature, chunk, True, labels, (), (), ref_share, ana_share, **counts,
            truncated=truncated,
        )  # fmt: skip
    ref_values = np.asarray(ref, dtype=np.float64)
    ana_values = np.asarray(ana, dtype=np.float64)
    both = np.concatenate([ref_values, ana_values])
    if both.size == 0:
        return FeatureHistogram(feature, chunk, False, (), (), (), (), (), **counts,
                                truncated=truncated)  # fmt: skip
    low, high = (float(q) for q in np.quantile(both, _QUANTILES))
    if high <= low:
        low, high = float(both.min()), float(both.max())
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    labels = tuple(f"{a:.4g} to {b:.4g}" for a, b in pairwise(edges))
    return FeatureHistogram(
        feature,
        chunk,
        False,
        labels,
        tuple(float(c) for c in (edges[:-1] + edges[1:]) / 2),
        tuple(float(w) for w in np.diff(edges)),
        _shares(ref_values, edges),
        _shares(ana_values, edges),
        **counts,
        truncated=truncated,
    )


def _shares(values: np.ndarray, edges: np.ndarray) -> tuple[float, ...]:
    if values.size == 0:
        return tuple(0.0 for _ in edges[:-1])
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return tuple(float(c) for c in counts / values.size)


def _categories(
    reference: list[str], analysis: list[str]
) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    ref_counts, ana_counts = Counter(reference), Counter(analysis)
    order = [name for name, _ in sorted(ref_counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    order += sorted(set(ana_counts) - set(ref_counts), key=lambda name: (-ana_counts[name], name))
    shown = order[:MAX_CATEGORIES]
    rest = order[MAX_CATEGORIES:]

    def shares(counts: Counter[str], total: int) -> tuple[float, ...]:
        values = [counts[name] for name in shown]
        if rest:
            values.append(sum(counts[name] for name in rest))
        return tuple(value / total if total else 0.0 for value in values)

    labels = (*shown, OTHER) if rest else tuple(shown)
    return labels, shares(ref_counts, len(reference)), shares(ana_counts, len(analysis))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))
