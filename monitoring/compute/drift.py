"""Covariate drift of the model's inputs: each feature alone, and all features together.

Univariate drift compares each chunk's distribution of a feature with the reference's, with the
method declared for its type; multivariate drift is NannyML's PCA reconstruction error, which
also sees changes in how features relate to each other. Alert thresholds come from the
reference chunks (mean + 3 standard deviations; chi2 alerts on p < 0.05 instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring.compute.chunking import PresortedChunker
from monitoring.compute.nannyml_loader import nml
from monitoring.compute.result import MULTIVARIATE_METHOD, MULTIVARIATE_SUBJECT, StatisticSeries
from monitoring.compute.spec import CategoricalMethod, ColumnMapping, ContinuousMethod

CONTINUOUS = "continuous"
CATEGORICAL = "categorical"
MULTIVARIATE = "multivariate"


def fit_univariate(
    reference: pd.DataFrame,
    mapping: ColumnMapping,
    chunker: PresortedChunker,
    continuous_method: ContinuousMethod,
    categorical_method: CategoricalMethod,
) -> Any:
    """NannyML's univariate drift calculator, fitted on a prepared reference frame.

    The feature types come from the mapping, never from dtypes: categorical features arrive as
    numeric codes (see `monitoring.compute.prepare.CategoryCodes`).
    """
    calculator = nml.UnivariateDriftCalculator(
        column_names=list(mapping.features),
        treat_as_numerical=mapping.continuous,
        treat_as_categorical=list(mapping.categorical),
        continuous_methods=[continuous_method],
        categorical_methods=[categorical_method],
        timestamp_column_name=mapping.timestamp,
        chunker=chunker,
    )
    return calculator.fit(reference[[mapping.timestamp, *mapping.features]])


def univariate_drift(
    calculator: Any, analysis: pd.DataFrame, mapping: ColumnMapping
) -> list[StatisticSeries]:
    """Drift of every feature over the chunks of a prepared analysis frame, in mapping order."""
    frame = analysis[[mapping.timestamp, *mapping.features]]
    table = calculator.calculate(frame).filter(period="analysis").to_df()
    categorical = set(mapping.categorical)
    series = []
    for name in mapping.features:
        if name in categorical:
            kind, method = CATEGORICAL, calculator.categorical_method_names[0]
        else:
            kind, method = CONTINUOUS, calculator.continuous_method_names[0]
        series.append(statistic_series(table, (name, method), kind, name, method))
    return series


@dataclass(frozen=True)
class CountEncoding:
    """Replaces each categorical code by its share of the reference rows, for PCA.

    This is what NannyML's multivariate calculator does to categorical features (most-frequent
    imputation, then category_encoders' normalised CountEncoder, unseen values as 0), done with
    one vectorised lookup: the CountEncoder loops in Python over every row, about 1.5 s per
    million rows. The features reach the calculator as numbers, so the reconstruction error is
    the same.

    Attributes:
        shares: Per categorical feature, the share of reference rows of each code, missing
            values counted with the most frequent value.
        most_frequent: Per categorical feature, the code standing in for a missing value.
    """

    shares: dict[str, np.ndarray]
    most_frequent: dict[str, int]

    @classmethod
    def fit(cls, reference: pd.DataFrame, columns: list[str]) -> CountEncoding:
        """Count the codes of the categorical ``columns`` of a prepared reference frame."""
        shares, most_frequent = {}, {}
        for name in columns:
            codes = reference[name].to_numpy()
            present = codes[~np.isnan(codes)].astype(np.int64)
            counts = np.bincount(present).astype(np.float64)
            # argmax takes the first maximum: the smallest value, as SimpleImputer does.
            mode = int(np.argmax(counts)) if len(counts) else 0
            if len(counts):
                counts[mode] += len(codes) - len(present)
            shares[name] = counts / len(codes)
            most_frequent[name] = mode
        return cls(shares, most_frequent)

    def encode(self, frame: pd.DataFrame, name: str) -> np.ndarray:
        """The float32 shares of the codes of ``frame[name]``; 0 for unseen values."""
        codes = frame[name].to_numpy()
        filled = np.where(np.isnan(codes), self.most_frequent[name], codes).astype(np.int64)
        shares = self.shares[name]
        known = filled < len(shares)
        return np.where(known, shares[np.where(known, filled, 0)], 0.0).astype(np.float32)


@dataclass(frozen=True)
class MultivariateModel:
    """NannyML's fitted reconstruction-error calculator and the encoding its inputs need."""

    calculator: Any
    encoding: CountEncoding


def fit_multivariate(
    reference: pd.DataFrame, mapping: ColumnMapping, chunker: PresortedChunker
) -> MultivariateModel:
    """NannyML's PCA reconstruction-error calculator, fitted on a prepared reference frame."""
    encoding = CountEncoding.fit(reference, mapping.categorical)
    calculator = nml.DataReconstructionDriftCalculator(
        column_names=list(mapping.features),
        timestamp_column_name=mapping.timestamp,
        chunker=chunker,
    )
    calculator.fit(_numeric_features(reference, mapping, encoding))
    return MultivariateModel(calculator, encoding)


def multivariate_drift(
    model: MultivariateModel, analysis: pd.DataFrame, mapping: ColumnMapping
) -> StatisticSeries:
    """The reconstruction error of all features over the chunks of a prepared analysis frame."""
    frame = _numeric_features(analysis, mapping, model.encoding)
    table = model.calculator.calculate(frame).filter(period="analysis").to_df()
    return statistic_series(
        table,
        ("reconstruction_error",),
        MULTIVARIATE,
        MULTIVARIATE_SUBJECT,
        MULTIVARIATE_METHOD,
        with_sampling_error=True,
    )


def _numeric_features(
    frame: pd.DataFrame, mapping: ColumnMapping, encoding: CountEncoding
) -> pd.DataFrame:
    categorical = set(mapping.categorical)
    columns = {mapping.timestamp: frame[mapping.timestamp]}
    for name in mapping.features:
        columns[name] = encoding.encode(frame, name) if name in categorical else frame[name]
    return pd.DataFrame(columns)


def statistic_series(
    table: pd.DataFrame,
    prefix: tuple[str, ...],
    kind: str,
    subject: str,
    method: str,
    *,
    with_sampling_error: bool = False,
) -> StatisticSeries:
    """One statistic of a NannyML result table (analysis chunks only) as a `StatisticSeries`.

    Args:
        table: ``Result.filter(period="analysis").to_df()`` of a NannyML calculator.
        prefix: The column levels above ``value``, ``alert``..., e.g. ``("age", "chi2")``.
        kind: See `StatisticSeries`.
        subject: See `StatisticSeries`.
        method: See `StatisticSeries`.
        with_sampling_error: Read the ``sampling_error`` column too.
    """
    values = table[(*prefix, "value")].to_numpy(dtype=np.float64, na_value=np.nan)
    sampling_error = None
    if with_sampling_error:
        errors = table[(*prefix, "sampling_error")].to_numpy(dtype=np.float64, na_value=np.nan)
        sampling_error = tuple(errors.tolist())
    # NannyML leaves NaN in the alert column where a value could not be computed.
    alerts = table[(*prefix, "alert")].eq(True).to_numpy() & ~np.isnan(values)
    return StatisticSeries(
        kind=kind,
        subject=subject,
        method=method,
        values=tuple(values.tolist()),
        lower_threshold=_threshold(table, (*prefix, "lower_threshold")),
        upper_threshold=_threshold(table, (*prefix, "upper_threshold")),
        alert=tuple(bool(flag) for flag in alerts),
        sampling_error=sampling_error,
    )


def _threshold(table: pd.DataFrame, column: tuple[str, ...]) -> float | None:
    if column not in table.columns or table.empty:
        return None
    value = table[column].iloc[0]
    if value is None or pd.isna(value):
        return None
    return float(value)
