"""Recomputing only the chunks that changed: which chunks a set of days falls in, and a result
with some chunks replaced. Pure: no I/O.

Given a fitted monitor, every figure of a period chunk depends on that chunk's rows alone
(CBPE's estimate and sampling error, the realized metrics and ECE, each drift and data-quality
statistic, their alerts against thresholds fixed by the fit). So `FittedMonitor.calculate` on
the rows of the changed chunks gives exactly the figures a full recompute would give them, and
`merge_results` puts them in place of the old ones. One exception: the realized calibration
alert also looks at the gap's change since a few chunks back, which `merge_results` settles on
the merged series when given its band. Chunks of a number of rows are cut by
position over the whole analysis, so a late row moves every later chunk: they are not
incremental (`chunk_days` refuses them).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import Any, TypeVar

import numpy as np

from monitoring.compute.calibration import calibration_alerts
from monitoring.compute.chunking import chunk_bounds
from monitoring.compute.result import UNDEFINED_VALUE, MonitoringResult, MonitoringWarning
from monitoring.compute.spec import Chunking
from monitoring.compute.thresholds import Bounds

_METRIC_FIELDS = (
    "estimate",
    "sampling_error",
    "lower_bound",
    "upper_bound",
    "realized",
    "alert",
    "realized_alert",
    "estimate_realized_alert",
)
_STATISTIC_FIELDS = ("values", "alert", "sampling_error")
_S = TypeVar("_S")


def is_incremental(chunking: Chunking) -> bool:
    """Whether chunks are cut by calendar period, so a day's rows change its chunk alone."""
    return chunking.period is not None


def chunk_days(days: Collection[date], chunking: Chunking) -> list[tuple[date, date]]:
    """The chunks holding ``days``, as inclusive (first day, last day) ranges, oldest first.

    Raises:
        ValueError: ``chunking`` cuts by number of rows.
    """
    if not is_incremental(chunking):
        raise ValueError("chunks of a number of rows cannot be recomputed one by one")
    if not days:
        return []
    timestamps = np.array(sorted(set(days)), dtype="datetime64[ns]")
    return [
        (bound.start.date(), (bound.end - timedelta(days=1)).date())
        for bound in chunk_bounds(timestamps, chunking)
    ]


def merge_results(
    previous: MonitoringResult,
    update: MonitoringResult | None,
    recomputed: Collection[str],
    calibration_change: Bounds | None = None,
) -> MonitoringResult:
    """``previous`` with the chunks ``recomputed`` replaced by those of ``update``.

    Args:
        previous: The last result of every chunk.
        update: The same fitted monitor's result on the rows of the recomputed chunks; None
            when none of them has rows any more.
        recomputed: Keys of the chunks whose rows were read again. Those absent from
            ``update`` have no predictions any more and are left out.
        calibration_change: The fitted monitor's band of the calibration gap's change
            (`AlertThresholds.calibration_change`): the calibration alerts, which look back a
            few chunks, are then settled on the merged series. None leaves them as merged.

    Returns:
        The result a full recompute would give, chunk by chunk. Warnings about the reference
        come from ``update``; chunk warnings are grouped as a full run groups them, in chunk
        order within each group.

    Raises:
        ValueError: ``update`` has a chunk not listed in ``recomputed``, or another chunking.
    """
    replaced = set(recomputed)
    if update is not None:
        unlisted = [chunk.key for chunk in update.chunks if chunk.key not in replaced]
        if unlisted:
            raise ValueError(f"chunks {unlisted} were computed but not listed as recomputed")
        if update.chunking != previous.chunking:
            raise ValueError("the update was cut into chunks another way")
    base = update if update is not None else previous
    sources: tuple[MonitoringResult, ...] = (previous,) if update is None else (previous, update)
    placed = [
        (chunk.start, 0, index)
        for index, chunk in enumerate(previous.chunks)
        if chunk.key not in replaced
    ]
    if update is not None:
        placed += [(chunk.start, 1, index) for index, chunk in enumerate(update.chunks)]
    placed.sort(key=lambda entry: (entry[0], entry[1]))
    order = [(source, index) for _, source, index in placed]

    def pick(values: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
        return tuple(values[source][index] for source, index in order)

    def merged(series: _S, find: Callable[[MonitoringResult], _S], fields: Sequence[str]) -> _S:
        updates: dict[str, Any] = {}
        for name in fields:
            if getattr(series, name) is None:  # e.g. no sampling error for this statistic
                continue
            updates[name] = pick([getattr(find(result), name) for result in sources])
        return replace(series, **updates)  # type: ignore[type-var]

    def statistics(attribute: str) -> tuple[Any, ...]:
        return tuple(
            merged(series, _finder(attribute, series), _STATISTIC_FIELDS)
            for series in getattr(base, attribute)
        )

    chunks = pick([result.chunks for result in sources])
    calibration = (
        None
        if base.calibration is None
        else merged(base.calibration, _calibration, _STATISTIC_FIELDS)
    )
    if calibration is not None and calibration_change is not None:
        level = Bounds(calibration.lower_threshold, calibration.upper_threshold)
        calibration = replace(
            calibration,
            alert=calibration_alerts(np.array(calibration.values), level, calibration_change),
        )
    return replace(
        base,
        chunks=chunks,
        metrics=tuple(
            merged(series, _metric_finder(series.name), _METRIC_FIELDS) for series in base.metrics
        ),
        univariate=statistics("univariate"),
        multivariate=merged(
            base.multivariate, lambda result: result.multivariate, _STATISTIC_FIELDS
        ),
        missing_values=statistics("missing_values"),
        unseen_values=statistics("unseen_values"),
        zero_values=statistics("zero_values"),
        calibration=calibration,
        warnings=_merged_warnings(previous, update, replaced, [chunk.key for chunk in chunks]),
    )


def _calibration(result: MonitoringResult) -> Any:
    if result.calibration is None:
        raise ValueError("the results disagree on the statistics: no calibration in one")
    return result.calibration


def _metric_finder(name: str) -> Callable[[MonitoringResult], Any]:
    def find(result: MonitoringResult) -> Any:
        return result.metric(name)

    return find


def _finder(attribute: str, series: Any) -> Callable[[MonitoringResult], Any]:
    key = (series.kind, series.subject, series.method)

    def find(result: MonitoringResult) -> Any:
        for candidate in getattr(result, attribute):
            if (candidate.kind, candidate.subject, candidate.method) == key:
                return candidate
        raise ValueError(f"the results disagree on the statistics: no {key} in one")

    return find


def _merged_warnings(
    previous: MonitoringResult,
    update: MonitoringResult | None,
    replaced: set[str],
    chunk_order: list[str],
) -> tuple[MonitoringWarning, ...]:
    base = update if update is not None else previous
    general = [warning for warning in base.warnings if warning.chunk is None]
    by_chunk = [
        warning
        for warning in previous.warnings
        if warning.chunk is not None and warning.chunk not in replaced
    ]
    if update is not None:
        by_chunk += [warning for warning in update.warnings if warning.chunk is not None]
    position = {key: index for index, key in enumerate(chunk_order)}
    by_chunk = [warning for warning in by_chunk if warning.chunk in position]
    # A full run lists the chunk checks, then the undefined values: keep those two groups.
    by_chunk.sort(
        key=lambda warning: (warning.code == UNDEFINED_VALUE, position[str(warning.chunk)])
    )
    return (*general, *by_chunk)
