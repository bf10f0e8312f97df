"""Label-free performance estimation: NannyML's CBPE fitted on the reference predictions.

CBPE calibrates the scores on the labelled reference (isotonic regression) and estimates, per
chunk, the expected ROC AUC, F1 and accuracy of the analysis predictions from their calibrated
scores alone, with a sampling error for a chunk of that size. The alert thresholds are the
mean ± 3 standard deviations of the realized metric over the reference chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring.compute.chunking import PresortedChunker
from monitoring.compute.nannyml_loader import nml
from monitoring.compute.result import METRICS
from monitoring.compute.spec import ColumnMapping


@dataclass(frozen=True)
class PerformanceEstimate:
    """CBPE's figures of one metric, one entry per analysis chunk.

    Attributes:
        name: The metric.
        estimate: Estimated value.
        sampling_error: Standard error of the metric on a chunk of that size.
        lower_bound: Lower confidence bound (estimate - 3 sampling errors, clipped to [0, 1]).
        upper_bound: Upper confidence bound.
        alert: The estimate is outside the thresholds.
        lower_threshold: From the reference chunks; NaN for none.
        upper_threshold: From the reference chunks; NaN for none.
    """

    name: str
    estimate: np.ndarray
    sampling_error: np.ndarray
    lower_bound: np.ndarray
    upper_bound: np.ndarray
    alert: np.ndarray
    lower_threshold: float
    upper_threshold: float


def fit_estimator(
    reference: pd.DataFrame, mapping: ColumnMapping, chunker: PresortedChunker
) -> Any:
    """CBPE for `METRICS`, fitted on a prepared reference frame."""
    estimator = nml.CBPE(
        problem_type="classification_binary",
        metrics=list(METRICS),
        y_pred_proba=mapping.y_pred_proba,
        y_pred=mapping.y_pred,
        y_true=mapping.y_true,
        timestamp_column_name=mapping.timestamp,
        chunker=chunker,
    )
    # Only the columns CBPE reads: it copies what it is given.
    columns = [mapping.timestamp, mapping.y_pred_proba, mapping.y_pred, mapping.y_true]
    return estimator.fit(reference[columns])


def estimate_performance(
    estimator: Any, analysis: pd.DataFrame, mapping: ColumnMapping
) -> dict[str, PerformanceEstimate]:
    """CBPE's estimates for every chunk of a prepared analysis frame, by metric name.

    The labels are left out on purpose: realized metrics are computed once, vectorised, in
    `monitoring.compute.realized`, instead of per chunk by CBPE.
    """
    columns = [mapping.timestamp, mapping.y_pred_proba, mapping.y_pred]
    table = estimator.estimate(analysis[columns]).filter(period="analysis").to_df()
    estimates = {}
    for metric in estimator.metrics:
        name = metric.column_name
        estimate = _floats(table[(name, "value")])
        estimates[name] = PerformanceEstimate(
            name=name,
            estimate=estimate,
            sampling_error=_floats(table[(name, "sampling_error")]),
            lower_bound=_floats(table[(name, "lower_confidence_boundary")]),
            upper_bound=_floats(table[(name, "upper_confidence_boundary")]),
            # NannyML leaves NaN in the alert column when a chunk's estimate failed.
            alert=table[(name, "alert")].eq(True).to_numpy() & ~np.isnan(estimate),
            lower_threshold=_threshold(metric.lower_threshold_value),
            upper_threshold=_threshold(metric.upper_threshold_value),
        )
    return estimates


def _floats(column: pd.Series) -> np.ndarray:
    return column.to_numpy(dtype=np.float64, na_value=np.nan)


def _threshold(value: float | None) -> float:
    return np.nan if value is None else float(value)
