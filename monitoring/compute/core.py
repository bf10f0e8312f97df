"""The monitoring run of one model version: fit on its reference predictions, then calculate on
its analysis predictions. Pure: DataFrames in, a `MonitoringResult` out, no I/O.

`fit_monitor` does everything that depends only on the reference (and is most of the cost:
CBPE's calibration and its reference chunks), so a caller that monitors the same model version
repeatedly can keep the `FittedMonitor` and only `calculate` on new predictions.
`run_monitoring` is both steps at once.

Each step logs its wall and CPU time at DEBUG level, with ``stage``, ``seconds`` and
``cpu_seconds`` attributes on the log record, which is how `bench/monitoring.py` times the
stages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from monitoring.compute.calibration import (
    calibration_alerts,
    calibration_change,
    calibration_gap,
    expected_calibration_error,
)
from monitoring.compute.chunking import ChunkBounds, PresortedChunker, chunk_bounds, chunk_ids
from monitoring.compute.drift import (
    MultivariateModel,
    fit_multivariate,
    fit_univariate,
    multivariate_drift,
    univariate_drift,
)
from monitoring.compute.estimator import PerformanceEstimate, estimate_performance, fit_estimator
from monitoring.compute.prepare import (
    CategoryCodes,
    check_analysis,
    prepare_analysis,
    prepare_reference,
)
from monitoring.compute.quality import (
    ZERO_VALUES,
    QualityModel,
    fit_quality,
    missing_values,
    unseen_values,
    zero_method,
    zero_partners,
    zero_shares,
)
from monitoring.compute.realized import (
    RealizedPerformance,
    estimate_realized_alerts,
    realized_performance,
)
from monitoring.compute.result import (
    CALIBRATION,
    CALIBRATION_METHOD,
    CHUNK_TOO_SMALL,
    FEW_REFERENCE_CHUNKS,
    METRICS,
    SINGLE_CLASS_CHUNK,
    SMALL_REFERENCE_CHUNKS,
    UNDEFINED_VALUE,
    ChunkSummary,
    MetricSeries,
    MonitoringResult,
    MonitoringWarning,
    StatisticSeries,
)
from monitoring.compute.spec import (
    DEFAULT_CATEGORICAL_METHOD,
    DEFAULT_CONTINUOUS_METHOD,
    MIN_CHUNK_ROWS,
    AlertPolicy,
    CategoricalMethod,
    Chunking,
    ColumnMapping,
    ContinuousMethod,
)
from monitoring.compute.thresholds import (
    Bounds,
    bootstrap_reference,
    change_bounds,
    distance_bound,
    performance_bounds,
    share_bound,
    upper_bound,
)
from monitoring.errors import InputError, InsufficientDataError

# Thresholds come from resamples of the reference chunks (`monitoring.compute.thresholds`):
# two is the least with any chunk-to-chunk variation, six the least that shows the weekly one.
MIN_REFERENCE_CHUNKS = 2
RECOMMENDED_REFERENCE_CHUNKS = 6
# Methods whose value is a distance to the reference, thresholded from the bootstrap; chi2
# alerts on its own p-value.
_DISTANCE_METHODS = ("jensen_shannon", "kolmogorov_smirnov")


@dataclass(frozen=True)
class AlertThresholds:
    """The alert bands of one model version, from the bootstrap of its reference.

    Attributes:
        metrics: Per performance metric; estimate and realized value share it.
        univariate: Per feature with a distance method (chi2 keeps its p-value rule).
        multivariate: The PCA reconstruction error's.
        calibration: The realized calibration gap's: an upper bound (more churners than the
            scores expect), and a lower one too when alerts are two-sided.
        calibration_change: The band of the gap's change over
            `monitoring.compute.calibration.CHANGE_CHUNKS` chunks, likewise.
        zero_values: Per continuous feature, its share of zeros' (upper only).
        zero_partners: Per continuous feature, the feature whose nonzero value contradicts
            its zero (`monitoring.compute.quality.zero_partners`), or None.
    """

    metrics: dict[str, Bounds]
    univariate: dict[str, Bounds]
    multivariate: Bounds
    calibration: Bounds = field(default_factory=lambda: Bounds(None, None))
    calibration_change: Bounds = field(default_factory=lambda: Bounds(None, None))
    zero_values: dict[str, Bounds] = field(default_factory=dict)
    zero_partners: dict[str, str | None] = field(default_factory=dict)


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FittedMonitor:
    """The calculators of one model version, fitted on its reference predictions.

    The NannyML objects inside keep state between calls, so one instance must not be used by
    two threads at once.

    Attributes:
        mapping: The column roles.
        chunking: How chunks are cut, for the reference and every analysis.
        min_chunk_rows: Chunks with fewer predictions are reported with a warning.
        reference_rows: Labelled reference predictions.
        reference_chunks: Reference chunks the thresholds come from.
        reference_warnings: What was said about the reference, repeated in every result.
        policy: How the alert thresholds were set.
        thresholds: The alert bands.
    """

    mapping: ColumnMapping
    chunking: Chunking
    min_chunk_rows: int
    reference_rows: int
    reference_chunks: int
    reference_warnings: tuple[MonitoringWarning, ...]
    policy: AlertPolicy
    thresholds: AlertThresholds
    _codes: CategoryCodes
    _estimator: Any
    _univariate: Any
    _multivariate: MultivariateModel
    _quality: QualityModel

    def calculate(self, analysis: pd.DataFrame) -> MonitoringResult:
        """Estimate performance, drift and data quality for every chunk of ``analysis``.

        Args:
            analysis: The model version's predictions to monitor, with the mapping's columns;
                the label column is optional and may be partly missing (not known yet).

        Raises:
            InputError: A mapped column is missing or holds unusable values.
            InsufficientDataError: There are no predictions to analyse.
        """
        mapping = self.mapping
        with _blas_single_threaded():
            with _stage("prepare_analysis"):
                frame = prepare_analysis(analysis, mapping, self._codes)
                bounds = chunk_bounds(frame[mapping.timestamp].to_numpy(), self.chunking)
                rows_chunk = chunk_ids(bounds, len(frame))
            with _stage("estimate_performance"):
                estimates = estimate_performance(self._estimator, frame, mapping)
            with _stage("realized_performance"):
                labels = frame[mapping.y_true].to_numpy()
                scores = frame[mapping.y_pred_proba].to_numpy()
                realized = realized_performance(
                    rows_chunk, len(bounds), labels, scores, frame[mapping.y_pred].to_numpy()
                )
                ece = expected_calibration_error(rows_chunk, len(bounds), labels, scores)
                gaps = calibration_gap(rows_chunk, len(bounds), labels, scores)
                thresholds = self.thresholds
                calibration = replace(
                    _statistic(
                        CALIBRATION, CALIBRATION, CALIBRATION_METHOD, gaps, thresholds.calibration
                    ),
                    alert=calibration_alerts(
                        gaps, thresholds.calibration, thresholds.calibration_change
                    ),
                )
            with _stage("univariate_drift"):
                univariate = [
                    _rethreshold(series, self.thresholds.univariate.get(series.subject))
                    for series in univariate_drift(self._univariate, frame, mapping)
                ]
            with _stage("multivariate_drift"):
                multivariate = _rethreshold(
                    multivariate_drift(self._multivariate, frame, mapping),
                    self.thresholds.multivariate,
                )
            with _stage("data_quality"):
                missing = missing_values(self._quality, frame, mapping)
                unseen = unseen_values(self._quality, frame, mapping)
                partners = self.thresholds.zero_partners
                shares = zero_shares(frame, mapping.continuous, rows_chunk, len(bounds), partners)
                zeros = [
                    _statistic(
                        ZERO_VALUES,
                        name,
                        zero_method(partners.get(name)),
                        shares[name],
                        self.thresholds.zero_values.get(name, Bounds(None, None)),
                    )
                    for name in mapping.continuous
                ]
        return replace(
            self._assemble(
                bounds, estimates, realized, ece, univariate, multivariate, missing, unseen
            ),
            calibration=calibration,
            zero_values=tuple(zeros),
        )

    def _assemble(
        self,
        bounds: list[ChunkBounds],
        estimates: dict[str, PerformanceEstimate],
        realized: RealizedPerformance,
        ece: np.ndarray,
        univariate: list[StatisticSeries],
        multivariate: StatisticSeries,
        missing: list[StatisticSeries],
        unseen: list[StatisticSeries],
    ) -> MonitoringResult:
        statistics = [*univariate, multivariate, *missing, *unseen]
        lengths = {len(estimate.estimate) for estimate in estimates.values()}
        lengths |= {len(series.values) for series in statistics}
        if lengths != {len(bounds)}:
            raise RuntimeError(f"NannyML returned {lengths} chunks where there are {len(bounds)}")
        chunks = tuple(
            ChunkSummary(
                key=chunk.key,
                start=chunk.start,
                end=chunk.end,
                chunk_rows=chunk.rows,
                labelled_rows=int(realized.labelled_rows[index]),
                ece=float(ece[index]),
            )
            for index, chunk in enumerate(bounds)
        )
        metrics = tuple(
            _metric_series(
                estimates[name],
                realized.metrics[name],
                chunks,
                self.thresholds.metrics[name],
                self.policy.direction,
            )
            for name in METRICS
        )
        warnings = [
            *self.reference_warnings,
            *_chunk_warnings(chunks, realized, self.min_chunk_rows),
            *_undefined_value_warnings(chunks, metrics, statistics),
        ]
        _log_warnings(warnings[len(self.reference_warnings) :])
        return MonitoringResult(
            chunking=self.chunking,
            reference_rows=self.reference_rows,
            reference_chunks=self.reference_chunks,
            chunks=chunks,
            metrics=metrics,
            univariate=tuple(univariate),
            multivariate=multivariate,
            missing_values=tuple(missing),
            unseen_values=tuple(unseen),
            warnings=tuple(warnings),
            alert_direction=self.policy.direction,
        )


def fit_monitor(
    reference: pd.DataFrame,
    mapping: ColumnMapping,
    chunking: Chunking,
    *,
    min_chunk_rows: int = MIN_CHUNK_ROWS,
    continuous_method: ContinuousMethod = DEFAULT_CONTINUOUS_METHOD,
    categorical_method: CategoricalMethod = DEFAULT_CATEGORICAL_METHOD,
    policy: AlertPolicy | None = None,
) -> FittedMonitor:
    """Fit every calculator on a model version's reference predictions.

    Args:
        reference: Predictions of the model version on data it was not trained on, with their
            labels (rows without a label are left out, with a warning).
        mapping: The column roles.
        chunking: How chunks are cut; the reference is cut the same way as the analyses.
        min_chunk_rows: Chunks with fewer predictions get a warning; the reference needs at
            least this many labelled rows.
        continuous_method: Univariate drift method of the continuous features.
        categorical_method: Univariate drift method of the categorical features.
        policy: How alert thresholds are set; default `AlertPolicy()`.

    Raises:
        InputError: A mapped column is missing or holds unusable values.
        InsufficientDataError: An empty or single-class reference, fewer labelled rows than
            ``min_chunk_rows``, or a reference spanning a single chunk.
    """
    if min_chunk_rows < 1:
        raise InputError(f"min_chunk_rows must be at least 1, not {min_chunk_rows}")
    with _blas_single_threaded():
        with _stage("prepare_reference"):
            frame, codes, warnings = prepare_reference(reference, mapping)
            bounds = chunk_bounds(frame[mapping.timestamp].to_numpy(), chunking)
            warnings += _reference_checks(len(frame), bounds, min_chunk_rows)
            chunker = PresortedChunker(chunking, mapping.timestamp)
        with _stage("fit_estimator"):
            estimator = fit_estimator(frame, mapping, chunker)
        with _stage("fit_univariate_drift"):
            univariate = fit_univariate(
                frame, mapping, chunker, continuous_method, categorical_method
            )
        with _stage("fit_multivariate_drift"):
            multivariate = fit_multivariate(frame, mapping, chunker)
        with _stage("fit_data_quality"):
            quality = fit_quality(frame, mapping, chunker)
        policy = policy or AlertPolicy()
        with _stage("bootstrap_thresholds"):
            thresholds = fit_thresholds(
                frame, bounds, mapping, chunking, univariate, multivariate, policy
            )
    _log_warnings(warnings)
    return FittedMonitor(
        mapping=mapping,
        chunking=chunking,
        min_chunk_rows=min_chunk_rows,
        reference_rows=len(frame),
        reference_chunks=len(bounds),
        reference_warnings=tuple(warnings),
        policy=policy,
        thresholds=thresholds,
        _codes=codes,
        _estimator=estimator,
        _univariate=univariate,
        _multivariate=multivariate,
        _quality=quality,
    )


def run_monitoring(
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    mapping: ColumnMapping,
    chunking: Chunking,
    *,
    min_chunk_rows: int = MIN_CHUNK_ROWS,
    continuous_method: ContinuousMethod = DEFAULT_CONTINUOUS_METHOD,
    categorical_method: CategoricalMethod = DEFAULT_CATEGORICAL_METHOD,
    policy: AlertPolicy | None = None,
) -> MonitoringResult:
    """Monitor a model version: CBPE estimates, realized performance, drift and data quality.

    Args:
        reference: The model version's reference predictions with labels (never its training
            rows: CBPE calibrates on them and the thresholds come from them).
        analysis: The predictions to monitor; labels optional, possibly partly known.
        mapping: The column roles.
        chunking: By period (default: day) or by number of rows.
        min_chunk_rows: Chunks with fewer predictions get a warning.
        continuous_method: Univariate drift method of the continuous features.
        categorical_method: Univariate drift method of the categorical features.
        policy: How alert thresholds are set; default `AlertPolicy()`.

    Raises:
        InputError: A missing column, unusable values, a bad parameter.
        InsufficientDataError: No predictions, an empty or single-class reference, too few
            reference rows or chunks.
    """
    # The analysis's cheap checks first: a wrong file should not cost a reference fit.
    check_analysis(analysis, mapping)
    monitor = fit_monitor(
        reference,
        mapping,
        chunking,
        min_chunk_rows=min_chunk_rows,
        continuous_method=continuous_method,
        categorical_method=categorical_method,
        policy=policy,
    )
    return monitor.calculate(analysis)


def deployed_reference(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping, days: int
) -> pd.DataFrame:
    """The reference to fit on: the model's own, or its first ``days`` days in deployment.

    A model's test window can be unrepresentative of the data it then scores: on the scenario
    benchmark the 12-day test window's realized ROC AUC is 0.853, every 7- to 40-day window of
    the stream it scores 0.884-0.893, and CBPE fitted on the test window is off by 0.037. The
    first ``days`` days of analysis predictions are out of sample too (the model never trained
    on them) and come from the deployed data: once all their labels are known, they are the
    reference. Until then, and with ``days`` 0, the model's reference is.

    Args:
        reference: The model version's reference predictions.
        analysis: Its analysis predictions, labels known so far (NaN otherwise).
        mapping: The column roles.
        days: Calendar days from the first analysis prediction; 0 keeps ``reference``.

    Returns:
        ``reference``, or the labelled analysis rows of those days.
    """
    if days <= 0 or analysis.empty:
        return reference
    timestamps = pd.to_datetime(analysis[mapping.timestamp])
    first_day = timestamps.min().normalize()
    window = (timestamps >= first_day) & (timestamps < first_day + pd.Timedelta(days=days))
    labelled = analysis[mapping.y_true].notna()
    last_day = first_day + pd.Timedelta(days=days - 1)
    # Labels become known day by day: the window's last day labelled means all of it is.
    if not (labelled & (timestamps.dt.normalize() == last_day)).any():
        return reference
    return analysis.loc[window & labelled].reset_index(drop=True)


def fit_thresholds(
    frame: pd.DataFrame,
    bounds: list[ChunkBounds],
    mapping: ColumnMapping,
    chunking: Chunking,
    univariate: Any,
    multivariate: MultivariateModel,
    policy: AlertPolicy,
) -> AlertThresholds:
    """The alert bands of a prepared reference frame, from resamples of its chunks.

    Args:
        frame: The prepared reference, sorted by timestamp.
        bounds: Its chunks.
        mapping: The column roles.
        chunking: How chunks are cut.
        univariate: The fitted univariate drift calculator.
        multivariate: The fitted multivariate drift model.
        policy: The false-alarm rates and the number of resamples.
    """
    samples = policy.bootstrap_samples
    performance_columns = [mapping.timestamp, mapping.y_true, mapping.y_pred_proba, mapping.y_pred]
    pooled = bootstrap_reference(
        frame[performance_columns],
        bounds,
        chunking,
        mapping.timestamp,
        samples,
        policy.seed,
        pooled=True,
    )
    pooled_bounds = _resample_bounds(pooled, mapping, chunking, samples)
    realized = _realized(pooled, pooled_bounds, mapping)
    chunk_realized = _realized(frame, bounds, mapping)
    # The realized calibration shares the performance rate with the metrics, its share split
    # between the gap's level and its change over a few chunks.
    per_metric = policy.performance_rate / (len(METRICS) + 1)
    metrics = {
        name: performance_bounds(
            realized.metrics[name], chunk_realized.metrics[name], per_metric, policy.direction
        )
        for name in METRICS
    }
    # More churners than the scores expect is the harmful side (churners missed): with
    # one-sided alerts only a rise of the gap alerts, like a drop of a metric.
    pooled_gaps = _calibration_gaps(pooled, pooled_bounds, mapping)
    chunk_gaps = _calibration_gaps(frame, bounds, mapping)
    negated = performance_bounds(
        -pooled_gaps,
        -chunk_gaps,
        per_metric / 2,
        policy.direction,
    )
    calibration = Bounds(
        None if negated.upper is None else -negated.upper,
        None if negated.lower is None else -negated.lower,
    )
    calibration_step = change_bounds(
        calibration_change(chunk_gaps), per_metric / 2, two_sided=policy.direction == "both"
    )
    by_chunk = bootstrap_reference(
        frame, bounds, chunking, mapping.timestamp, samples, policy.seed, pooled=False
    )
    _resample_bounds(by_chunk, mapping, chunking, samples)
    null_drift = univariate_drift(univariate, by_chunk, mapping)
    per_feature = policy.univariate_rate / max(1, len(null_drift))
    univariate_bounds = {
        series.subject: distance_bound(np.array(series.values), per_feature)
        for series in null_drift
        if series.method in _DISTANCE_METHODS
    }
    null_error = multivariate_drift(multivariate, by_chunk, mapping).values
    partners = zero_partners(frame, mapping.continuous)
    return AlertThresholds(
        metrics=metrics,
        univariate=univariate_bounds,
        multivariate=upper_bound(np.array(null_error), policy.multivariate_rate),
        calibration=calibration,
        calibration_change=calibration_step,
        zero_values=_zero_share_bounds(
            frame, bounds, by_chunk, mapping, chunking, policy, partners
        ),
        zero_partners=partners,
    )


def _zero_share_bounds(
    frame: pd.DataFrame,
    bounds: list[ChunkBounds],
    by_chunk: pd.DataFrame,
    mapping: ColumnMapping,
    chunking: Chunking,
    policy: AlertPolicy,
    partners: dict[str, str | None],
) -> dict[str, Bounds]:
    # By-chunk resamples, as for drift: a feed's share of zeros varies with the day.
    samples = policy.bootstrap_samples
    resampled = _resample_bounds(by_chunk, mapping, chunking, samples)
    null_shares = zero_shares(
        by_chunk, mapping.continuous, chunk_ids(resampled, len(by_chunk)), samples, partners
    )
    chunk_shares = zero_shares(
        frame, mapping.continuous, chunk_ids(bounds, len(frame)), len(bounds), partners
    )
    rows = int(np.median([chunk.rows for chunk in bounds]))
    per_feature = policy.quality_rate / max(1, len(mapping.continuous))
    return {
        name: share_bound(null_shares[name], chunk_shares[name], rows, per_feature)
        for name in mapping.continuous
    }


def _calibration_gaps(
    frame: pd.DataFrame, bounds: list[ChunkBounds], mapping: ColumnMapping
) -> np.ndarray:
    return calibration_gap(
        chunk_ids(bounds, len(frame)),
        len(bounds),
        frame[mapping.y_true].to_numpy(),
        frame[mapping.y_pred_proba].to_numpy(),
    )


def _statistic(
    kind: str, subject: str, method: str, values: np.ndarray, bounds: Bounds
) -> StatisticSeries:
    return StatisticSeries(
        kind=kind,
        subject=subject,
        method=method,
        values=tuple(float(value) for value in values),
        lower_threshold=bounds.lower,
        upper_threshold=bounds.upper,
        alert=tuple(bool(flag) for flag in bounds.alerts(values)),
    )


def _resample_bounds(
    resampled: pd.DataFrame, mapping: ColumnMapping, chunking: Chunking, samples: int
) -> list[ChunkBounds]:
    bounds = chunk_bounds(resampled[mapping.timestamp].to_numpy(), chunking)
    if len(bounds) != samples:
        raise RuntimeError(f"{samples} resamples were cut into {len(bounds)} chunks")
    return bounds


def _realized(
    frame: pd.DataFrame, bounds: list[ChunkBounds], mapping: ColumnMapping
) -> RealizedPerformance:
    return realized_performance(
        chunk_ids(bounds, len(frame)),
        len(bounds),
        frame[mapping.y_true].to_numpy(),
        frame[mapping.y_pred_proba].to_numpy(),
        frame[mapping.y_pred].to_numpy(),
    )


def _rethreshold(series: StatisticSeries, bounds: Bounds | None) -> StatisticSeries:
    if bounds is None:
        return series
    return replace(
        series,
        lower_threshold=bounds.lower,
        upper_threshold=bounds.upper,
        alert=tuple(bool(flag) for flag in bounds.alerts(np.array(series.values))),
    )


@contextmanager
def _stage(name: str) -> Iterator[None]:
    started, cpu_started = time.perf_counter(), time.process_time()
    yield
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    log.debug(
        "stage %s took %.3f s (%.3f s of CPU)",
        name,
        seconds,
        cpu_seconds,
        extra={"stage": name, "seconds": seconds, "cpu_seconds": cpu_seconds},
    )


@contextmanager
def _blas_single_threaded() -> Iterator[None]:
    # NannyML runs PCA once per chunk on matrices of ~10^4 x 10: a threaded BLAS spends more
    # on synchronising than it gains there, up to 30x slower on a busy 2-core host.
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _log_warnings(warnings: list[MonitoringWarning]) -> None:
    # One line per kind: a month of tiny daily chunks should not bury the log.
    by_code: dict[str, list[MonitoringWarning]] = {}
    for warning in warnings:
        by_code.setdefault(warning.code, []).append(warning)
    for code, same in by_code.items():
        if len(same) == 1:
            log.warning("%s", same[0].message)
        else:
            log.warning("%d %s warnings, the first: %s", len(same), code, same[0].message)


def _reference_checks(
    rows: int, bounds: list[ChunkBounds], min_chunk_rows: int
) -> list[MonitoringWarning]:
    if rows < min_chunk_rows:
        raise InsufficientDataError(
            f"the reference has {rows:,} labelled predictions; at least {min_chunk_rows:,} "
            "are needed"
        )
    if len(bounds) < MIN_REFERENCE_CHUNKS:
        raise InsufficientDataError(
            "the reference fits in a single chunk: alert thresholds need at least "
            f"{MIN_REFERENCE_CHUNKS}; give a longer reference or smaller chunks"
        )
    warnings = []
    if len(bounds) < RECOMMENDED_REFERENCE_CHUNKS:
        warnings.append(
            MonitoringWarning(
                FEW_REFERENCE_CHUNKS,
                f"the reference spans {len(bounds)} chunks: thresholds computed from fewer "
                f"than {RECOMMENDED_REFERENCE_CHUNKS} are unreliable",
            )
        )
    small = [chunk for chunk in bounds if chunk.rows < min_chunk_rows]
    if small:
        warnings.append(
            MonitoringWarning(
                SMALL_REFERENCE_CHUNKS,
                f"{len(small)} of {len(bounds)} reference chunks have fewer than "
                f"{min_chunk_rows:,} predictions, which widens the alert thresholds",
            )
        )
    return warnings


def _metric_series(
    estimate: PerformanceEstimate,
    realized: np.ndarray,
    chunks: tuple[ChunkSummary, ...],
    bounds: Bounds,
    direction: str,
) -> MetricSeries:
    rows = np.array([chunk.chunk_rows for chunk in chunks], dtype=np.float64)
    labelled = np.array([chunk.labelled_rows for chunk in chunks], dtype=np.float64)
    realized_flags = bounds.alerts(realized)
    realized_alert = [
        None if np.isnan(value) else bool(flag)
        for value, flag in zip(realized, realized_flags, strict=True)
    ]
    return MetricSeries(
        name=estimate.name,
        lower_threshold=bounds.lower,
        upper_threshold=bounds.upper,
        estimate=tuple(estimate.estimate.tolist()),
        sampling_error=tuple(estimate.sampling_error.tolist()),
        lower_bound=tuple(estimate.lower_bound.tolist()),
        upper_bound=tuple(estimate.upper_bound.tolist()),
        realized=tuple(realized.tolist()),
        alert=tuple(bool(flag) for flag in bounds.alerts(estimate.estimate)),
        realized_alert=tuple(realized_alert),
        estimate_realized_alert=tuple(
            estimate_realized_alerts(
                estimate.estimate, realized, estimate.sampling_error, rows, labelled, direction
            )
        ),
    )


def _chunk_warnings(
    chunks: tuple[ChunkSummary, ...], realized: RealizedPerformance, min_chunk_rows: int
) -> list[MonitoringWarning]:
    warnings = []
    for index, chunk in enumerate(chunks):
        if chunk.chunk_rows < min_chunk_rows:
            warnings.append(
                MonitoringWarning(
                    CHUNK_TOO_SMALL,
                    f"chunk {chunk.key} has {chunk.chunk_rows:,} predictions, fewer than the "
                    f"{min_chunk_rows:,} its estimates and drift statistics need to be reliable",
                    chunk.key,
                )
            )
        positives = int(realized.positives[index])
        if chunk.labelled_rows and positives in (0, chunk.labelled_rows):
            label = 1 if positives else 0
            warnings.append(
                MonitoringWarning(
                    SINGLE_CLASS_CHUNK,
                    f"chunk {chunk.key}: all {chunk.labelled_rows:,} labelled predictions are "
                    f"{label}, so its realized ROC AUC is undefined",
                    chunk.key,
                )
            )
    return warnings


def _undefined_value_warnings(
    chunks: tuple[ChunkSummary, ...],
    metrics: tuple[MetricSeries, ...],
    statistics: list[StatisticSeries],
) -> list[MonitoringWarning]:
    warnings = []
    for series in metrics:
        for chunk, value in zip(chunks, series.estimate, strict=True):
            if np.isnan(value):
                warnings.append(
                    MonitoringWarning(
                        UNDEFINED_VALUE,
                        f"chunk {chunk.key}: CBPE could not estimate {series.name}",
                        chunk.key,
                    )
                )
    for statistic in statistics:
        for chunk, value in zip(chunks, statistic.values, strict=True):
            if np.isnan(value):
                warnings.append(
                    MonitoringWarning(
                        UNDEFINED_VALUE,
                        f"chunk {chunk.key}: no {statistic.kind.replace('_', ' ')} value "
                        f"({statistic.method}) for {statistic.subject!r}, e.g. because it is "
                        "missing on every row",
                        chunk.key,
                    )
                )
    return warnings
