"""What a monitoring run found, per chunk, and its three renderings: JSON, metric rows, drift rows.

Figures are stored column-wise (one tuple per statistic, one entry per analysis chunk, in
`MonitoringResult.chunks` order) with NaN for "not computable", and become ``null`` only when
rendered, so `to_json` is strict JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from monitoring.compute.spec import Chunking

METRICS: tuple[str, ...] = ("roc_auc", "f1", "accuracy")

RunTrigger = Literal["api", "poller", "cli"]

# Warning codes, stable for machines; the message says the same for people.
CHUNK_TOO_SMALL = "chunk_too_small"
SINGLE_CLASS_CHUNK = "single_class_chunk"
UNDEFINED_VALUE = "undefined_value"
FEW_REFERENCE_CHUNKS = "few_reference_chunks"
SMALL_REFERENCE_CHUNKS = "small_reference_chunks"
UNLABELLED_REFERENCE_ROWS = "unlabelled_reference_rows"

MULTIVARIATE_SUBJECT = "all features"
MULTIVARIATE_METHOD = "pca_reconstruction_error"


@dataclass(frozen=True)
class MonitoringWarning:
    """Something that makes a figure missing or less trustworthy, said instead of a silent NaN.

    Attributes:
        code: One of the module's warning codes, e.g. ``chunk_too_small``.
        message: A sentence for people, naming the chunk, metric or feature.
        chunk: Key of the analysis chunk concerned, if any.
    """

    code: str
    message: str
    chunk: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The warning as a JSON object."""
        return {"code": self.code, "message": self.message, "chunk": self.chunk}


@dataclass(frozen=True)
class ChunkSummary:
    """One analysis chunk: its span, its size and how well calibrated its labelled rows are.

    Attributes:
        key: Readable name, see `monitoring.compute.chunking.ChunkBounds`.
        start: Start of the chunk, see `monitoring.compute.chunking.ChunkBounds` for the convention.
        end: End of the chunk.
        chunk_rows: Predictions in the chunk.
        labelled_rows: Of which the label is known.
        ece: Expected calibration error of the labelled rows (10 equal-width score bins);
            NaN without labelled rows.
    """

    key: str
    start: pd.Timestamp
    end: pd.Timestamp
    chunk_rows: int
    labelled_rows: int
    ece: float


@dataclass(frozen=True)
class MetricSeries:
    """One performance metric over the analysis chunks: CBPE's estimate and, where labels are
    known, the realized value.

    Attributes:
        name: ``roc_auc``, ``f1`` or ``accuracy``.
        lower_threshold: Alert below this (from the reference chunks); None for no bound.
        upper_threshold: Alert above this; None for no bound.
        estimate: CBPE's estimate per chunk.
        sampling_error: CBPE's sampling error of a chunk of that size.
        lower_bound: Lower confidence bound, estimate - 3 sampling errors.
        upper_bound: Upper confidence bound.
        realized: The metric on the chunk's labelled rows; NaN when undefined.
        alert: The estimate is outside the thresholds.
        realized_alert: The realized value is outside the thresholds; None without it.
        estimate_realized_alert: Estimate and realized value differ beyond sampling error
            (the rule is in `monitoring.compute.realized.estimate_realized_alerts`); None without a
            realized value.
    """

    name: str
    lower_threshold: float | None
    upper_threshold: float | None
    estimate: tuple[float, ...]
    sampling_error: tuple[float, ...]
    lower_bound: tuple[float, ...]
    upper_bound: tuple[float, ...]
    realized: tuple[float, ...]
    alert: tuple[bool, ...]
    realized_alert: tuple[bool | None, ...]
    estimate_realized_alert: tuple[bool | None, ...]


@dataclass(frozen=True)
class StatisticSeries:
    """A drift or data-quality statistic of one column (or of all features) over the chunks.

    Attributes:
        kind: ``continuous`` or ``categorical`` (univariate drift), ``multivariate``,
            ``missing_values`` or ``unseen_values``.
        subject: The feature, or ``all features`` for multivariate drift.
        method: E.g. ``jensen_shannon``, ``chi2``, ``pca_reconstruction_error``,
            ``missing_values_rate``, ``unseen_values_rate``.
        values: The statistic per chunk.
        lower_threshold: Alert below this (from the reference chunks); None for no bound.
        upper_threshold: Alert above this; None for no bound (chi2 alerts on p < 0.05 instead).
        alert: Per chunk.
        sampling_error: Per chunk, for the statistics NannyML gives one for.
    """

    kind: str
    subject: str
    method: str
    values: tuple[float, ...]
    lower_threshold: float | None
    upper_threshold: float | None
    alert: tuple[bool, ...]
    sampling_error: tuple[float, ...] | None = None

    @property
    def alerts(self) -> int:
        """Number of chunks in alert."""
        return sum(self.alert)

    @property
    def last_value(self) -> float:
        """The statistic of the latest chunk (NaN without chunks)."""
        return self.values[-1] if self.values else math.nan


@dataclass(frozen=True)
class MonitoringResult:
    """Everything one monitoring run of a model version found.

    Attributes:
        chunking: How the chunks were cut.
        reference_rows: Labelled reference predictions used.
        reference_chunks: Chunks the reference thresholds were computed from.
        chunks: The analysis chunks, oldest first.
        metrics: One series per metric of `METRICS`, in that order.
        univariate: Drift per feature, in mapping order.
        multivariate: PCA reconstruction error of all features together.
        missing_values: Missing-value rate per feature.
        unseen_values: Rate of values absent from the reference, per categorical feature.
        warnings: Why some figures are missing or shaky.
    """

    chunking: Chunking
    reference_rows: int
    reference_chunks: int
    chunks: tuple[ChunkSummary, ...]
    metrics: tuple[MetricSeries, ...]
    univariate: tuple[StatisticSeries, ...]
    multivariate: StatisticSeries
    missing_values: tuple[StatisticSeries, ...]
    unseen_values: tuple[StatisticSeries, ...]
    warnings: tuple[MonitoringWarning, ...]

    def metric(self, name: str) -> MetricSeries:
        """The series of metric ``name``.

        Raises:
            KeyError: No such metric.
        """
        for series in self.metrics:
            if series.name == name:
                return series
        raise KeyError(name)

    @property
    def analysis_rows(self) -> int:
        """Analysis predictions monitored, all chunks together."""
        return sum(chunk.chunk_rows for chunk in self.chunks)

    @property
    def labelled_rows(self) -> int:
        """Of which the label was known."""
        return sum(chunk.labelled_rows for chunk in self.chunks)

    def alert_counts(self) -> dict[str, int]:
        """Chunks in alert, per kind of alert, and their total."""
        counts = {
            "estimated_performance": sum(sum(m.alert) for m in self.metrics),
            "realized_performance": sum(_true(m.realized_alert) for m in self.metrics),
            "estimate_vs_realized": sum(_true(m.estimate_realized_alert) for m in self.metrics),
            "univariate_drift": sum(series.alerts for series in self.univariate),
            "multivariate_drift": self.multivariate.alerts,
            "missing_values": sum(series.alerts for series in self.missing_values),
            "unseen_values": sum(series.alerts for series in self.unseen_values),
        }
        counts["total"] = sum(counts.values())
        return counts

    def to_json(self) -> dict[str, Any]:
        """The result as strict JSON data: NaN is None, times are ISO 8601 strings."""
        return {
            "summary": {
                "chunking": self.chunking.describe(),
                "reference_rows": self.reference_rows,
                "reference_chunks": self.reference_chunks,
                "analysis_rows": self.analysis_rows,
                "labelled_rows": self.labelled_rows,
                "chunks": len(self.chunks),
            },
            "metrics": {series.name: self._metric_json(series) for series in self.metrics},
            "drift": {
                "univariate": {
                    series.subject: self._statistic_json(series) for series in self.univariate
                },
                "multivariate": self._statistic_json(self.multivariate),
            },
            "data_quality": {
                "missing_values": {
                    series.subject: self._statistic_json(series) for series in self.missing_values
                },
                "unseen_values": {
                    series.subject: self._statistic_json(series) for series in self.unseen_values
                },
            },
            "alerts": self.alert_counts(),
            "warnings": [warning.to_json() for warning in self.warnings],
        }

    def metric_rows(self) -> list[dict[str, Any]]:
        """One flat record per metric and chunk, for storage keyed by (model, chunk, metric).

        Keys, the columns of `monitoring_results`: metric, chunk_key, chunk_start, chunk_end
        (datetimes), estimate, lower_bound, upper_bound, sampling_error, realized,
        lower_threshold, upper_threshold, alert, realized_alert, estimate_realized_alert, ece,
        chunk_rows, labelled_rows. Missing figures are None.
        """
        rows = []
        for series in self.metrics:
            for index, chunk in enumerate(self.chunks):
                rows.append(
                    {
                        "metric": series.name,
                        **_chunk_fields(chunk),
                        "estimate": _number(series.estimate[index]),
                        "lower_bound": _number(series.lower_bound[index]),
                        "upper_bound": _number(series.upper_bound[index]),
                        "sampling_error": _number(series.sampling_error[index]),
                        "realized": _number(series.realized[index]),
                        "lower_threshold": series.lower_threshold,
                        "upper_threshold": series.upper_threshold,
                        "alert": series.alert[index],
                        "realized_alert": series.realized_alert[index],
                        "estimate_realized_alert": series.estimate_realized_alert[index],
                        "ece": _number(chunk.ece),
                        "chunk_rows": chunk.chunk_rows,
                        "labelled_rows": chunk.labelled_rows,
                    }
                )
        return rows

    def drift_rows(self) -> list[dict[str, Any]]:
        """One flat record per feature (or ``all features``) and chunk, univariate then
        multivariate drift.

        Keys: kind, feature, method, chunk_key, chunk_start, chunk_end, value, sampling_error,
        lower_threshold, upper_threshold, alert.
        """
        return self._statistic_rows([*self.univariate, self.multivariate])

    def quality_rows(self) -> list[dict[str, Any]]:
        """The data-quality statistics as records shaped like `drift_rows`."""
        return self._statistic_rows([*self.missing_values, *self.unseen_values])

    def _statistic_rows(self, series_list: Sequence[StatisticSeries]) -> list[dict[str, Any]]:
        rows = []
        for series in series_list:
            for index, chunk in enumerate(self.chunks):
                rows.append(
                    {
                        "kind": series.kind,
                        "feature": series.subject,
                        "method": series.method,
                        **_chunk_fields(chunk),
                        "value": _number(series.values[index]),
                        "sampling_error": (
                            None
                            if series.sampling_error is None
                            else _number(series.sampling_error[index])
                        ),
                        "lower_threshold": series.lower_threshold,
                        "upper_threshold": series.upper_threshold,
                        "alert": series.alert[index],
                    }
                )
        return rows

    def _metric_json(self, series: MetricSeries) -> dict[str, Any]:
        chunks = [
            {
                **_chunk_json(chunk),
                "estimate": _number(series.estimate[index]),
                "lower_bound": _number(series.lower_bound[index]),
                "upper_bound": _number(series.upper_bound[index]),
                "sampling_error": _number(series.sampling_error[index]),
                "realized": _number(series.realized[index]),
                "alert": series.alert[index],
                "realized_alert": series.realized_alert[index],
                "estimate_realized_alert": series.estimate_realized_alert[index],
                "ece": _number(chunk.ece),
            }
            for index, chunk in enumerate(self.chunks)
        ]
        return {
            "lower_threshold": series.lower_threshold,
            "upper_threshold": series.upper_threshold,
            "alerts": sum(series.alert),
            "estimate_realized_alerts": _true(series.estimate_realized_alert),
            "latest": chunks[-1] if chunks else None,
            "chunks": chunks,
        }

    def _statistic_json(self, series: StatisticSeries) -> dict[str, Any]:
        chunks = []
        for index, chunk in enumerate(self.chunks):
            entry = {**_chunk_json(chunk), "value": _number(series.values[index])}
            if series.sampling_error is not None:
                entry["sampling_error"] = _number(series.sampling_error[index])
            entry["alert"] = series.alert[index]
            chunks.append(entry)
        return {
            "kind": series.kind,
            "method": series.method,
            "lower_threshold": series.lower_threshold,
            "upper_threshold": series.upper_threshold,
            "alerts": series.alerts,
            "last_value": _number(series.last_value),
            "chunks": chunks,
        }


@dataclass(frozen=True)
class MonitoringRun:
    """One monitoring run of a model version's stored predictions: what it saw and found.

    Attributes:
        model_version: The model version monitored.
        trigger: Who asked: ``api``, ``poller`` or ``cli``.
        started_at: When the run began (UTC, naive).
        finished_at: When the monitoring finished (UTC, naive).
        watermark_id: The highest `model_predictions.id` when the run read its inputs.
        result: What the monitoring found.
    """

    model_version: str
    trigger: RunTrigger
    started_at: datetime
    finished_at: datetime
    watermark_id: int
    result: MonitoringResult

    @property
    def chunking(self) -> str:
        """How the chunks were cut, as stored: e.g. ``period=D`` or ``size=5000``."""
        described = self.result.chunking.describe().items()
        return ",".join(f"{key}={value}" for key, value in described)


def _chunk_json(chunk: ChunkSummary) -> dict[str, Any]:
    return {
        "key": chunk.key,
        "start": chunk.start.isoformat(),
        "end": chunk.end.isoformat(),
        "chunk_rows": chunk.chunk_rows,
        "labelled_rows": chunk.labelled_rows,
    }


def _chunk_fields(chunk: ChunkSummary) -> dict[str, Any]:
    start: datetime = chunk.start.to_pydatetime()
    end: datetime = chunk.end.to_pydatetime()
    return {"chunk_key": chunk.key, "chunk_start": start, "chunk_end": end}


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _true(flags: tuple[bool | None, ...]) -> int:
    return sum(1 for flag in flags if flag)
