"""Data quality of the model's inputs: missing values per feature, values the reference never
saw per categorical feature (NannyML's data-quality calculators), and the share of zeros per
continuous feature.

A missing-value rate alerts outside mean ± 3 standard deviations of the reference chunks' rates,
so with a complete reference any missing value alerts; any unseen value alerts.

A feed that stops (a usage column arriving NULL or zero) reaches the features as zeros, since
the analysis sums no reading as no usage: neither missing nor unseen, and a drift detector
sees only a shift. Zeros name the fault: per continuous feature, the share of rows where it is
0 while the feature that is 0 with it in the reference is not (a data volume of 0 beside
data sessions), or, for a feature without such a partner, the share of its zeros, alerts
above a bound set from the reference's chunks (`zero_shares`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
CONTRADICTED_ZERO_RATE = "contradicted_zero_rate"
# A zero partner needs this many zeros of the feature in the reference, and may be nonzero on
# at most this share of them (`zero_partners`).
PARTNER_MIN_ZEROS = 30
PARTNER_MAX_CONTRADICTED = 0.1


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


def zero_partners(
    reference: pd.DataFrame,
    features: Sequence[str],
    min_zeros: int = PARTNER_MIN_ZEROS,
    max_contradicted: float = PARTNER_MAX_CONTRADICTED,
) -> dict[str, str | None]:
    """Per feature, the feature that is (almost) never nonzero in the reference when it is 0.

    A usage's count and its volume are zero together: a volume of 0 beside a count of 1 is a
    reading lost, not a quiet subscriber. The partner of ``f`` is the feature ``g`` with the
    lowest share of nonzero values among the reference rows where ``f`` is 0, if that share is
    at most ``max_contradicted`` and ``f`` has at least ``min_zeros`` zeros (None otherwise).
    """
    values = reference[list(features)].to_numpy(dtype=np.float64, na_value=np.nan)
    zero = values == 0.0
    nonzero = ~zero & ~np.isnan(values)
    partners: dict[str, str | None] = {}
    for index, name in enumerate(features):
        zeros = zero[:, index]
        count = int(zeros.sum())
        partners[name] = None
        if count < min_zeros:
            continue
        contradicted = nonzero[zeros].sum(axis=0) / count
        contradicted[index] = np.inf
        best = int(np.argmin(contradicted))
        if contradicted[best] <= max_contradicted:
            partners[name] = features[best]
    return partners


def zero_shares(
    frame: pd.DataFrame,
    features: Sequence[str],
    chunk_ids: np.ndarray,
    chunks: int,
    partners: Mapping[str, str | None] | None = None,
) -> dict[str, np.ndarray]:
    """Per feature, the share of each chunk's rows whose value is 0 against expectation.

    For a feature with a partner (`zero_partners`): the rows where it is 0 and its partner is
    not, zeros the data itself contradicts, which a broken feed produces from its first day
    while the 7-day windows still hold older readings. Without one: the rows where it is 0.

    Args:
        frame: Rows in chunk order, with the ``features`` columns (numeric).
        features: The continuous features.
        chunk_ids: Each row's chunk number, in [0, chunks).
        chunks: Number of chunks.
        partners: From `zero_partners`; None for plain zero shares.

    Returns:
        One array per feature, one value per chunk; NaN for a chunk without known values.
    """
    partners = partners or {}
    shares = {}
    for name in features:
        values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        known = ~np.isnan(values)
        counted = known & (values == 0.0)
        partner = partners.get(name)
        if partner is not None:
            other = frame[partner].to_numpy(dtype=np.float64, na_value=np.nan)
            counted &= ~np.isnan(other) & (other != 0.0)
        rows = np.bincount(chunk_ids[known], minlength=chunks).astype(np.float64)
        zeros = np.bincount(chunk_ids[counted], minlength=chunks)
        with np.errstate(divide="ignore", invalid="ignore"):
            shares[name] = np.where(rows > 0, zeros / rows, np.nan)
    return shares


def zero_method(partner: str | None) -> str:
    """The method name of a feature's zero share: contradicted zeros with a partner."""
    return ZERO_VALUES_RATE if partner is None else CONTRADICTED_ZERO_RATE
