"""Data quality of the model's inputs: missing values per feature, values the reference never
saw per categorical feature (NannyML's data-quality calculators), and the share of zeros per
continuous feature.

A missing-value rate alerts outside mean ± 3 standard deviations of the reference chunks' rates,
so with a complete reference any missing value alerts; any unseen value alerts.

A feed that stops (a usage column arriving NULL or zero) reaches the features as zeros, since
the analysis sums no reading as no usage: neither missing nor unseen, and a drift detector
sees only a shift. The zero share names the fault: the share of a continuous feature's values
that are exactly 0 alerts above a bound set from the reference (`zero_share_bounds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring.compute.chunking import PresortedChunker
from monitoring.compute.drift import statistic_series
from monitoring.compute.nannyml_loader import nml
from monitoring.compute.result import StatisticSeries
from monitoring.compute.spec import ColumnMapping

MISSING_VALUES = "missing_values"
UNSEEN_VALUES = "unseen_values"
ZERO_VALUES = "zero_values"
MISSING_VALUES_RATE = "missing_values_rate"
UNSEEN_VALUES_RATE = "unseen_values_rate"
ZERO_VALUES_RATE = "zero_values_rate"


@dataclass(frozen=True)
class QualityModel:
    """NannyML's fitted data-quality calculators; no unseen-values one without categoricals."""

    missing: Any
    unseen: Any | None


def fit_quality(
    reference: pd.DataFrame, mapping: ColumnMapping, chunker: PresortedChunker
) -> QualityModel:
    """Fit the missing-values and unseen-values calculators on a prepared reference frame."""
    missing = nml.MissingValuesCalculator(
        column_names=list(mapping.features),
        timestamp_column_name=mapping.timestamp,
        chunker=chunker,
    ).fit(reference[[mapping.timestamp, *mapping.features]])
    unseen = None
    if mapping.categorical:
        unseen = nml.UnseenValuesCalculator(
            column_names=list(mapping.categorical),
            timestamp_column_name=mapping.timestamp,
            chunker=chunker,
        ).fit(_categorical(reference, mapping))
    return QualityModel(missing, unseen)


def missing_values(
    model: QualityModel, analysis: pd.DataFrame, mapping: ColumnMapping
) -> list[StatisticSeries]:
    """The missing-value rate of every feature over the chunks of a prepared analysis frame."""
    frame = analysis[[mapping.timestamp, *mapping.features]]
    table = model.missing.calculate(frame).filter(period="analysis").to_df()
    return [
        statistic_series(
            table, (name,), MISSING_VALUES, name, MISSING_VALUES_RATE, with_sampling_error=True
        )
        for name in mapping.features
    ]


def unseen_values(
    model: QualityModel, analysis: pd.DataFrame, mapping: ColumnMapping
) -> list[StatisticSeries]:
    """The rate of values absent from the reference, per categorical feature."""
    if model.unseen is None:
        return []
    table = model.unseen.calculate(_categorical(analysis, mapping)).filter(period="analysis")
    table = table.to_df()
    return [
        statistic_series(table, (name,), UNSEEN_VALUES, name, UNSEEN_VALUES_RATE)
        for name in mapping.categorical
    ]


def _categorical(frame: pd.DataFrame, mapping: ColumnMapping) -> pd.DataFrame:
    # The calculator insists on a categorical dtype. The float codes already number the values
    # (NaN for missing), so they become the categories' codes without a factorisation.
    columns: dict[str, object] = {mapping.timestamp: frame[mapping.timestamp]}
    for name in mapping.categorical:
        codes = frame[name].to_numpy()
        integer_codes = np.where(np.isnan(codes), -1, codes).astype(np.int64)
        categories = np.arange(int(integer_codes.max(initial=-1)) + 1)
        columns[name] = pd.Categorical.from_codes(integer_codes, categories=categories)
    return pd.DataFrame(columns)


def zero_shares(
    frame: pd.DataFrame, features: Sequence[str], chunk_ids: np.ndarray, chunks: int
) -> dict[str, np.ndarray]:
    """Per feature, the share of each chunk's known (not NaN) values that are exactly 0.

    Args:
        frame: Rows in chunk order, with the ``features`` columns (numeric).
        features: The continuous features.
        chunk_ids: Each row's chunk number, in [0, chunks).
        chunks: Number of chunks.

    Returns:
        One array per feature, one value per chunk; NaN for a chunk without known values.
    """
    shares = {}
    for name in features:
        values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        known = ~np.isnan(values)
        rows = np.bincount(chunk_ids[known], minlength=chunks).astype(np.float64)
        zeros = np.bincount(chunk_ids[known & (values == 0.0)], minlength=chunks)
        with np.errstate(divide="ignore", invalid="ignore"):
            shares[name] = np.where(rows > 0, zeros / rows, np.nan)
    return shares
