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
# The realized calibration in the large (`MonitoringResult.calibration`): its kind, subject and
# method, and the name its alerts carry among the realized-performance reasons.
CALIBRATION = "calibration"
CALIBRATION_METHOD = "observed_minus_predicted"

Verdict = Literal["healthy", "performance_degraded", "data_drift", "data_quality"]
HEALTHY: Verdict = "healthy"
PERFORMANCE_DEGRADED: Verdict = "performance_degraded"
DATA_DRIFT: Verdict = "data_drift"
DATA_QUALITY: Verdict = "data_quality"
# Every verdict, the most urgent first: a chunk gets the first whose alerts it has. Broken data
# comes before what it breaks (drift, and often the estimates); a performance drop before the
# drift that may or may not explain it.
VERDICTS: tuple[Verdict, ...] = (DATA_QUALITY, PERFORMANCE_DEGRADED, DATA_DRIFT, HEALTHY)
# The alert kinds of `MonitoringResult.alert_counts` and `ChunkVerdict`, in that order.
ALERT_KINDS: tuple[str, ...] = (
    "estimated_performance",
    "realized_performance",
    "estimate_vs_realized",
    "univariate_drift",
    "multivariate_drift",
    "missing_values",
    "unseen_values",
    "zero_values",
)
PERFORMANCE_KINDS = ALERT_KINDS[:3]
DRIFT_KINDS = ALERT_KINDS[3:5]
QUALITY_KINDS = ALERT_KINDS[5:]


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
class ChunkVerdict:
    """One chunk's alerts, by kind, and the health verdict they add up to.

    Attributes:
        chunk: The chunk's key.
        verdict: ``data_quality`` when a feature has missing or unseen values beyond its
            threshold; else ``performance_degraded`` on any performance alert; else
            ``data_drift`` on any drift alert; else ``healthy`` (`VERDICTS` order).
        estimated_performance: Metrics whose CBPE estimate is beyond its threshold.
        realized_performance: Metrics whose realized value is beyond it.
        estimate_vs_realized: Metrics whose realized value departs from the estimate beyond
            sampling error (below it only, when alerts are one-sided).
        univariate_drift: Features whose distribution drifted, in mapping order.
        multivariate_drift: The features' joint distribution drifted.
        missing_values: Features with an alerting missing-value rate.
        unseen_values: Categorical features with values the reference never saw.
        zero_values: Continuous features with far more zeros than the reference.
    """

    chunk: str
    verdict: Verdict
    estimated_performance: tuple[str, ...] = ()
    realized_performance: tuple[str, ...] = ()
    estimate_vs_realized: tuple[str, ...] = ()
    univariate_drift: tuple[str, ...] = ()
    multivariate_drift: bool = False
    missing_values: tuple[str, ...] = ()
    unseen_values: tuple[str, ...] = ()
    zero_values: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        chunk: str,
        *,
        estimated_performance: tuple[str, ...] = (),
        realized_performance: tuple[str, ...] = (),
        estimate_vs_realized: tuple[str, ...] = (),
        univariate_drift: tuple[str, ...] = (),
        multivariate_drift: bool = False,
        missing_values: tuple[str, ...] = (),
        unseen_values: tuple[str, ...] = (),
        zero_values: tuple[str, ...] = (),
    ) -> ChunkVerdict:
        """The verdict of a chunk with these alerts (the one place the precedence lives)."""
        if missing_values or unseen_values or zero_values:
            verdict = DATA_QUALITY
        elif estimated_performance or realized_performance or estimate_vs_realized:
            verdict = PERFORMANCE_DEGRADED
        elif univariate_drift or multivariate_drift:
            verdict = DATA_DRIFT
        else:
            verdict = HEALTHY
        return cls(
            chunk,
            verdict,
            estimated_performance,
            realized_performance,
            estimate_vs_realized,
            univariate_drift,
            multivariate_drift,
            missing_values,
            unseen_values,
            zero_values,
        )

    @property
    def data_quality(self) -> tuple[str, ...]:
        """Features with any data-quality alert."""
        return tuple(dict.fromkeys((*self.missing_values, *self.unseen_values, *self.zero_values)))

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every alert of the chunk as ``kind:subject`` (``multivariate_drift`` alone), most
        urgent kind first: e.g. ``("missing_values:M_Data_Sum_mean_7",
        "realized_performance:roc_auc")``."""
        listed = [
            *(f"missing_values:{name}" for name in self.missing_values),
            *(f"unseen_values:{name}" for name in self.unseen_values),
            *(f"zero_values:{name}" for name in self.zero_values),
            *(f"estimated_performance:{name}" for name in self.estimated_performance),
            *(f"realized_performance:{name}" for name in self.realized_performance),
            *(f"estimate_vs_realized:{name}" for name in self.estimate_vs_realized),
            *(f"univariate_drift:{name}" for name in self.univariate_drift),
        ]
        if self.multivariate_drift:
            listed.append("multivariate_drift")
        return tuple(listed)

    def alert_count(self, kind: str) -> int:
        """Alerts of ``kind`` (one of `ALERT_KINDS`) in the chunk."""
        if kind == "multivariate_drift":
            return int(self.multivariate_drift)
        flagged: tuple[str, ...] = getattr(self, kind)
        return len(flagged)

    def to_json(self) -> dict[str, Any]:
        """``{"chunk", "verdict", "reasons"}``."""
        return {"chunk": self.chunk, "verdict": self.verdict, "reasons": list(self.reasons)}


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
        alert_direction: ``lower`` when only performance drops alert, ``both`` otherwise.
        calibration: Realized calibration in the large per chunk (observed churn rate minus
            mean score, NaN without labels), with its band from the reference (a rise only,
            unless alerts are two-sided); a chunk also alerts when the gap rose more since
            three chunks back than the reference's chunks ever make likely
            (`monitoring.compute.calibration.calibration_change`). Its alerts are
            realized-performance alerts named ``calibration``. None when not computed.
        zero_values: Share of zeros per continuous feature, in mapping order.
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
    alert_direction: str = "lower"
    calibration: StatisticSeries | None = None
    zero_values: tuple[StatisticSeries, ...] = ()

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
        """Alerts per kind of `ALERT_KINDS`: metric-chunks for the performance kinds,
        feature-chunks for univariate drift and data quality, chunks for multivariate drift.
        The kinds do not overlap, so their sum counts every alert once."""
        calibration = 0 if self.calibration is None else self.calibration.alerts
        return {
            "estimated_performance": sum(sum(m.alert) for m in self.metrics),
            "realized_performance": sum(_true(m.realized_alert) for m in self.metrics)
            + calibration,
            "estimate_vs_realized": sum(_true(m.estimate_realized_alert) for m in self.metrics),
            "univariate_drift": sum(series.alerts for series in self.univariate),
            "multivariate_drift": self.multivariate.alerts,
            "missing_values": sum(series.alerts for series in self.missing_values),
            "unseen_values": sum(series.alerts for series in self.unseen_values),
            "zero_values": sum(series.alerts for series in self.zero_values),
        }

    @property
    def total_alerts(self) -> int:
        """All alerts, every kind together."""
        return sum(self.alert_counts().values())

    def verdicts(self) -> tuple[ChunkVerdict, ...]:
        """Each chunk's alerts by kind and its health verdict, in chunk order."""

        def flagged(series_list: Sequence[Any], index: int, field: str) -> tuple[str, ...]:
            names = []
            for series in series_list:
                if getattr(series, field)[index]:
                    names.append(getattr(series, "subject", None) or series.name)
            return tuple(names)

        def realized(index: int) -> tuple[str, ...]:
            names = flagged(self.metrics, index, "realized_alert")
            if self.calibration is not None and self.calibration.alert[index]:
                names += (CALIBRATION,)
            return names

        return tuple(
            ChunkVerdict.of(
                chunk.key,
                estimated_performance=flagged(self.metrics, index, "alert"),
                realized_performance=realized(index),
                estimate_vs_realized=flagged(self.metrics, index, "estimate_realized_alert"),
                univariate_drift=flagged(self.univariate, index, "alert"),
                multivariate_drift=self.multivariate.alert[index],
                missing_values=flagged(self.missing_values, index, "alert"),
                unseen_values=flagged(self.unseen_values, index, "alert"),
                zero_values=flagged(self.zero_values, index, "alert"),
            )
            for index, chunk in enumerate(self.chunks)
        )

    def verdict_counts(self) -> dict[str, int]:
        """Chunks per verdict, every verdict of `VERDICTS` present (0 when none)."""
        counts: dict[str, int] = dict.fromkeys(VERDICTS, 0)
        for verdict in self.verdicts():
            counts[verdict.verdict] += 1
        return counts

    def to_compact_json(self) -> dict[str, Any]:
        """The result at a glance, as strict JSON data: the summary, each chunk's verdict and
        reasons, the alert and verdict counts, each metric's thresholds and latest figures,
        the features that drifted (with their chunks in alert), the data-quality alerts that
        fired (none listed when none did) and the warnings."""
        verdicts = self.verdicts()
        chunk_keys = [chunk.key for chunk in self.chunks]
        return {
            "summary": self._summary_json(),
            "verdict": verdicts[-1].to_json() if verdicts else None,
            "verdicts": dict(self.verdict_counts()),
            "chunks": _verdict_chunks(self.chunks, verdicts),
            "alerts": self.alert_counts(),
            "metrics": {
                series.name: {
                    "lower_threshold": series.lower_threshold,
                    "upper_threshold": series.upper_threshold,
                    "alerts": sum(series.alert),
                    "realized_alerts": _true(series.realized_alert),
                    "estimate_realized_alerts": _true(series.estimate_realized_alert),
                    "latest": self._latest_metric_json(series),
                }
                for series in self.metrics
            },
            "drift": {
                "univariate": {
                    series.subject: _alerting_json(series, chunk_keys)
                    for series in self.univariate
                    if series.alerts
                },
                "multivariate": _alerting_json(self.multivariate, chunk_keys),
            },
            "data_quality": {
                kind: {
                    series.subject: _alerting_json(series, chunk_keys)
                    for series in series_list
                    if series.alerts
                }
                for kind, series_list in (
                    ("missing_values", self.missing_values),
                    ("unseen_values", self.unseen_values),
                    ("zero_values", self.zero_values),
                )
            },
            "calibration": (
                None if self.calibration is None else _alerting_json(self.calibration, chunk_keys)
            ),
            "warnings": [warning.to_json() for warning in self.warnings],
        }

    def _summary_json(self) -> dict[str, Any]:
        return {
            "chunking": self.chunking.describe(),
            "reference_rows": self.reference_rows,
            "reference_chunks": self.reference_chunks,
            "analysis_rows": self.analysis_rows,
            "labelled_rows": self.labelled_rows,
            "chunks": len(self.chunks),
            "alert_direction": self.alert_direction,
        }

    def _latest_metric_json(self, series: MetricSeries) -> dict[str, Any] | None:
        if not self.chunks:
            return None
        latest = {
            "chunk": self.chunks[-1].key,
            "estimate": _number(series.estimate[-1]),
            "lower_bound": _number(series.lower_bound[-1]),
            "upper_bound": _number(series.upper_bound[-1]),
            "alert": series.alert[-1],
        }
        for index in range(len(self.chunks) - 1, -1, -1):
            if not math.isnan(series.realized[index]):
                latest["realized_chunk"] = self.chunks[index].key
                latest["realized"] = series.realized[index]
                latest["realized_alert"] = series.realized_alert[index]
                break
        known = [
            abs(estimate - realized)
            for estimate, realized in zip(series.estimate, series.realized, strict=True)
            if not (math.isnan(estimate) or math.isnan(realized))
        ]
        latest["realized_chunks"] = len(known)
        latest["mean_abs_error"] = sum(known) / len(known) if known else None
        return latest

    def to_json(self) -> dict[str, Any]:
        """The result as strict JSON data: NaN is None, times are ISO 8601 strings."""
        verdicts = self.verdicts()
        return {
            "summary": self._summary_json(),
            "verdict": verdicts[-1].to_json() if verdicts else None,
            "verdicts": dict(self.verdict_counts()),
            "chunks": _verdict_chunks(self.chunks, verdicts),
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
                "zero_values": {
                    series.subject: self._statistic_json(series) for series in self.zero_values
                },
            },
            "calibration": (
                None if self.calibration is None else self._statistic_json(self.calibration)
            ),
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


def _verdict_chunks(
    chunks: tuple[ChunkSummary, ...], verdicts: tuple[ChunkVerdict, ...]
) -> list[dict[str, Any]]:
    return [
        {**_chunk_json(chunk), "verdict": verdict.verdict, "reasons": list(verdict.reasons)}
        for chunk, verdict in zip(chunks, verdicts, strict=True)
    ]


def _alerting_json(series: StatisticSeries, chunk_keys: list[str]) -> dict[str, Any]:
    return {
        "method": series.method,
        "lower_threshold": series.lower_threshold,
        "upper_threshold": series.upper_threshold,
        "alerts": series.alerts,
        "alert_chunks": [key for key, flag in zip(chunk_keys, series.alert, strict=True) if flag],
        "last_value": _number(series.last_value),
    }


def _chunk_fields(chunk: ChunkSummary) -> dict[str, Any]:
    start: datetime = chunk.start.to_pydatetime()
    end: datetime = chunk.end.to_pydatetime()
    return {"chunk_key": chunk.key, "chunk_start": start, "chunk_end": end}


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _true(flags: tuple[bool | None, ...]) -> int:
    return sum(1 for flag in flags if flag)
