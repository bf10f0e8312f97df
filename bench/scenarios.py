"""Scenario benchmark with ground truth: false alerts, detection delays and CBPE's error.

Which alerts fire, falsely before and how soon after an injection on a known day, on the
pipeline's own data and code.

Run as ``.venv/bin/python bench/scenarios.py [--subscribers N] [--seed S] [--scenarios ...]
[--quick] [--reference-days N] [--save-inputs DIR | --from-inputs DIR]``. It needs the
database server of the ``DB_*`` settings, Java and the JDBC jar; ``--from-inputs`` needs
neither: it monitors again the inputs a ``--save-inputs`` run saved (each scenario's
reference and analysis predictions and its ground truth), so a change to the monitoring is
measured in minutes instead of half an hour of Spark jobs.

**One run.** The generator (`ingest.generator`) writes ``HISTORY_DAYS`` days of clean history
into ``scen_bench_<pid>_history``; the project's Spark jobs aggregate it (`run_analysis`) and
train the churn model once on it with the demo's settings (`run_model`: time split, test
window at the end of history, its scored test rows the monitoring reference). Each scenario
then gets a database of its own, ``scen_bench_<pid>_<scenario>``: the history's processed rows,
the model registry and the reference are copied in (`db.clone.copy_tables`), and a stream of
``STREAM_DAYS`` days that continues the same population (`ingest.simulator.build_batch` on a
`GeneratorBase`, simulated clock, stream seed = seed + 1) with the scenario's knobs is loaded
through the seeding path (`ingest.seeding.load_frame`). The stream is aggregated and scored
(`run_analysis`, `run_score`: every streamed day) and monitored through the monitoring's public
steps (`load_inputs` -> `monitor`, daily chunks, labels known once `Processed_Data` reaches
``MONITORING_LABEL_DELAY_DAYS`` past a day). The scenario databases are dropped at the end. One
SparkSession serves every step.

**Scenarios** (stream days; injection day ``INJECTION_DAY`` = 30):

- ``clean``: no knob;
- ``covariate_sudden``: voice x0.6 and data x1.8 from day 30;
- ``covariate_gradual``: the same factors reached geometrically over 14 days from day 30;
- ``concept``: every churn from day 44 on is silent and as many non-churners dip instead;
- ``churn_rate``: the churn hazard doubles from day 44;
- ``broken_feed``: ``DP_DATA_VOLUME`` is NULL from day 30.

A label says whether the subscriber churns within 14 days, so a change of churns from day 44
shows first in the labels of day 30: for ``concept`` and ``churn_rate`` the knob is set a label
horizon after the injection day so that, for every scenario, the first labels (and, for the
others, the first usage) the injection changes are those of day 30.

**Ground truth.** The clean stream and each scenario's stream share their seed, so they hold
the same subscribers and draws until the knobs act: the *onset* is the first streamed day whose
records differ from the clean stream's (a churn-timed knob reaches back up to the 21-day
usage decline before a churn, so ``concept`` and ``churn_rate`` start differing at about day 23).

**Figures**, per scenario and alert kind:

- *false alerts before the onset*, as a rate: chunks in alert / chunks dated before the onset
  (the whole stream for ``clean``); labelled chunks only for the realized kinds; feature-chunks
  for univariate drift;
- *detection delay*: the first chunk in alert dated on or after the onset, in chunks after the
  injection day (negative: caught before it, from the usage that leads the labels). For the
  realized kinds the delay counts chunks after the injection's labels arrive: the labels of
  day ``d`` are known on day ``d + 14``, so an alert on chunk ``30 + k`` shows ``k`` days after
  the labels of day 30 arrive, 14 + k days after the injection. A detection meets its target
  only when its kind was quiet before the onset (at most 5 % of chunks, 2 % of feature-chunks
  for univariate drift): a monitor that always alerts would otherwise catch everything at once.
  When the run includes ``clean``, a second delay leaves out the chunks the clean stream has in
  alert for the same kind on the same day (a false alarm both streams share is no detection),
  and the target is checked on that one; the table shows it when it differs;
- *CBPE's mean absolute error* against the realized ROC-AUC, F1 and accuracy over the labelled
  chunks, with its ROC-AUC bias (mean estimate - realized) and the mean realized ROC-AUC.

Targets (issue 9) are printed beside each figure. Progress goes to stderr; stdout holds the
tables, the wall time and, as its last line, one JSON object with every figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder heads sys.path; the project root in front of it makes
# the project's packages importable without installing.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import dataclasses
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from config.cli import configure_logging, fail, parser, positive_int, run
from config.settings import PipelineDates, Settings, load_settings
from db.schema import CDR_COLUMNS, DATE_COLUMN, SUBSCRIBER_COLUMN
from ingest.scenario import (
    BrokenFeed,
    ChurnRateChange,
    ConceptDrift,
    CovariateDrift,
    Scenario,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from monitoring.compute.result import MonitoringResult

log = logging.getLogger("bench.scenarios")

HISTORY_START = date(2024, 1, 1)
HISTORY_DAYS = 60  # as the demo's model: trained on January and February
STREAM_DAYS = 75  # labels known for the first 61 streamed days
INJECTION_DAY = 30
RAMP_DAYS = 14
LABEL_HORIZON_DAYS = 14
DEFAULT_SUBSCRIBERS = 2500
DEFAULT_SEED = 42
MAX_WALL_SECONDS = 20 * 60
QUICK = {"subscribers": 400, "stream_days": 40, "injection_day": 12, "min_chunk_rows": 50}
COPIED_TABLES = ("Processed_Data", "model_registry", "model_predictions")

# Alert kinds, as read from a result by `read_alerts`.
ESTIMATED = "estimated_performance"
REALIZED = "realized_performance"
ESTIMATE_VS_REALIZED = "estimate_vs_realized"
PERFORMANCE = "any_performance"
UNIVARIATE = "univariate_drift"
MULTIVARIATE = "multivariate_drift"
DRIFT = "any_drift"
DATA_QUALITY = "data_quality"
KINDS = (
    PERFORMANCE,
    ESTIMATED,
    REALIZED,
    ESTIMATE_VS_REALIZED,
    DRIFT,
    UNIVARIATE,
    MULTIVARIATE,
    DATA_QUALITY,
)
LABELLED_KINDS = frozenset({REALIZED, ESTIMATE_VS_REALIZED})
# Most alerts allowed on clean data (issue 9, item 4), per chunk (feature-chunk: univariate).
FALSE_RATE_TARGETS: dict[str, float] = {PERFORMANCE: 0.05, UNIVARIATE: 0.02, MULTIVARIATE: 0.05}
# A detection counts only when its kind was quiet before the onset: a monitor that always
# alerts "detects" everything at once. Per chunk (feature-chunk for univariate drift).
DETECTION_MAX_FALSE_RATE = 0.05
CBPE_MAE_TARGET = 0.02
METRICS = ("roc_auc", "f1", "accuracy")


@dataclass(frozen=True)
class ScenarioPlan:
    """One scenario: its knobs (in stream days) and what must catch it, how soon.

    Attributes:
        name: Also names its database.
        scenario: The stream's knobs.
        injection_day: The first streamed day whose labels (or usage) the knobs change by design.
        caught_by: The alert kind that must catch it; None for the clean stream.
        within: Most chunks after the injection (after its labels arrive, for the realized
            kinds) by which ``caught_by`` must alert.
        cbpe_holds: CBPE's assumptions hold (no concept shift), so its MAE target applies.
    """

    name: str
    scenario: Scenario
    injection_day: int
    caught_by: str | None = None
    within: int | None = None
    cbpe_holds: bool = False


def scenario_plans(injection_day: int = INJECTION_DAY) -> dict[str, ScenarioPlan]:
    """The benchmark's scenarios with the injection on streamed day ``injection_day``."""
    day = injection_day
    churn_day = day + LABEL_HORIZON_DAYS  # churns from here are labelled from `day` on
    plans = [
        ScenarioPlan("clean", Scenario(), day, cbpe_holds=True),
        ScenarioPlan(
            "covariate_sudden",
            Scenario(covariate_drift=CovariateDrift(from_step=day)),
            day,
            DRIFT,
            1,
            cbpe_holds=True,
        ),
        ScenarioPlan(
            "covariate_gradual",
            Scenario(covariate_drift=CovariateDrift(from_step=day, ramp_steps=RAMP_DAYS)),
            day,
            DRIFT,
            7,
            cbpe_holds=True,
        ),
        ScenarioPlan(
            "concept",
            Scenario(concept_drift=ConceptDrift(from_step=churn_day)),
            day,
            ESTIMATE_VS_REALIZED,
            2,
        ),
        ScenarioPlan(
            "churn_rate",
            Scenario(churn_rate_change=ChurnRateChange(from_step=churn_day)),
            day,
            REALIZED,
            2,
        ),
        ScenarioPlan(
            "broken_feed",
            Scenario(broken_feed=BrokenFeed(from_step=day)),
            day,
            DATA_QUALITY,
            0,
        ),
    ]
    return {plan.name: plan for plan in plans}


# ---------------------------------------------------------------------------------------------
# Reading a monitoring result: the one place that knows where the alert flags live.


@dataclass(frozen=True)
class AlertSeries:
    """Alert flags per analysis chunk, by kind, as the benchmark counts them.

    Attributes:
        days: Streamed day of each chunk (0 = the first streamed day).
        labelled: Whether the chunk's realized figures exist (some labels known).
        flags: Per kind of `KINDS`, whether the chunk is in alert.
        univariate_alerts: Features in alert per chunk.
        features: Features monitored for univariate drift.
    """

    days: tuple[int, ...]
    labelled: tuple[bool, ...]
    flags: Mapping[str, tuple[bool, ...]]
    univariate_alerts: tuple[int, ...]
    features: int


def read_alerts(result: MonitoringResult, first_stream_day: date) -> AlertSeries:
    """The alert flags of ``result``, per chunk; adapt here when the result's alerts change.

    Args:
        result: A monitoring run's result.
        first_stream_day: The date of streamed day 0.
    """
    chunks = result.chunks
    days = tuple((chunk.start.date() - first_stream_day).days for chunk in chunks)
    n = len(chunks)

    def any_of(series: Sequence[Sequence[bool | None]]) -> tuple[bool, ...]:
        return tuple(any(bool(flags[i]) for flags in series) for i in range(n))

    metrics = result.metrics
    # The realized calibration counts as realized performance, as in `MonitoringResult.verdicts`.
    calibration = [] if result.calibration is None else [result.calibration.alert]
    quality = (*result.missing_values, *result.unseen_values, *result.zero_values)
    flags = {
        ESTIMATED: any_of([m.alert for m in metrics]),
        REALIZED: any_of([*(m.realized_alert for m in metrics), *calibration]),
        ESTIMATE_VS_REALIZED: any_of([m.estimate_realized_alert for m in metrics]),
        UNIVARIATE: any_of([s.alert for s in result.univariate]),
        MULTIVARIATE: tuple(bool(flag) for flag in result.multivariate.alert),
        DATA_QUALITY: any_of([s.alert for s in quality]),
    }
    flags[PERFORMANCE] = any_of([flags[ESTIMATED], flags[REALIZED], flags[ESTIMATE_VS_REALIZED]])
    flags[DRIFT] = any_of([flags[UNIVARIATE], flags[MULTIVARIATE]])
    univariate = tuple(sum(bool(s.alert[i]) for s in result.univariate) for i in range(n))
    labelled = tuple(
        any(not math.isnan(m.realized[i]) for m in metrics) and chunks[i].labelled_rows > 0
        for i in range(n)
    )
    return AlertSeries(days, labelled, flags, univariate, len(result.univariate))


def realized_pairs(
    result: MonitoringResult, first_stream_day: date | None = None, skip_days: int = 0
) -> dict[str, list[tuple[float, float]]]:
    """(CBPE estimate, realized value) per metric, for the chunks where both exist.

    With ``skip_days``, chunks dated before streamed day ``skip_days`` are left out: with
    ``--reference-days`` they are the reference, where CBPE's error is in-sample.
    """
    kept = [
        first_stream_day is None or (chunk.start.date() - first_stream_day).days >= skip_days
        for chunk in result.chunks
    ]
    pairs: dict[str, list[tuple[float, float]]] = {}
    for series in result.metrics:
        pairs[series.name] = [
            (estimate, realized)
            for estimate, realized, keep in zip(series.estimate, series.realized, kept, strict=True)
            if keep and not (math.isnan(estimate) or math.isnan(realized))
        ]
    return pairs


# ---------------------------------------------------------------------------------------------
# Pure figures.


@dataclass(frozen=True)
class FalseAlarms:
    """Alerts on the chunks before the onset: ``alerts`` of ``chunks`` (rate None without any)."""

    alerts: int
    chunks: int

    @property
    def rate(self) -> float | None:
        return self.alerts / self.chunks if self.chunks else None


def false_alarms(alerts: AlertSeries, kind: str, before_day: int | None) -> FalseAlarms:
    """Alerts of ``kind`` on chunks dated before ``before_day`` (None: every chunk).

    Realized kinds count labelled chunks only; univariate drift counts feature-chunks.
    """
    alerts_n = chunks_n = 0
    for index, day in enumerate(alerts.days):
        if before_day is not None and day >= before_day:
            continue
        if kind in LABELLED_KINDS and not alerts.labelled[index]:
            continue
        if kind == UNIVARIATE:
            alerts_n += alerts.univariate_alerts[index]
            chunks_n += alerts.features
        else:
            alerts_n += alerts.flags[kind][index]
            chunks_n += 1
    return FalseAlarms(alerts_n, chunks_n)


def detection_delay(
    alerts: AlertSeries,
    kind: str,
    search_from: int,
    injection_day: int,
    clean: AlertSeries | None = None,
) -> int | None:
    """Chunks from ``injection_day`` to the first chunk in alert dated ``search_from`` or later.

    Negative when the first such alert comes before the injection day; None when no chunk
    (no labelled chunk, for the realized kinds) from ``search_from`` on is in alert.

    With ``clean`` (the clean stream's alerts, same seed), a chunk the clean stream has in
    alert for ``kind`` on the same day does not count: that alert is a false alarm both
    streams share, not the injection's.
    """
    shared = set() if clean is None else _alerting_days(clean, kind)
    for index, day in enumerate(alerts.days):
        if day < search_from or day in shared:
            continue
        if kind in LABELLED_KINDS and not alerts.labelled[index]:
            continue
        if alerts.flags[kind][index]:
            return day - injection_day
    return None


def _alerting_days(alerts: AlertSeries, kind: str) -> set[int]:
    return {day for day, flag in zip(alerts.days, alerts.flags[kind], strict=True) if flag}


def chunks_observable(alerts: AlertSeries, kind: str, search_from: int) -> int:
    """Chunks dated ``search_from`` or later that could show ``kind`` (labelled, if needed)."""
    return sum(
        1
        for index, day in enumerate(alerts.days)
        if day >= search_from and (kind not in LABELLED_KINDS or alerts.labelled[index])
    )


def mean_absolute_error(pairs: Sequence[tuple[float, float]]) -> float | None:
    """Mean of ``|estimate - realized|``; None without pairs."""
    if not pairs:
        return None
    return float(np.mean([abs(estimate - realized) for estimate, realized in pairs]))


def mean_error(pairs: Sequence[tuple[float, float]]) -> float | None:
    """Mean of ``estimate - realized``: CBPE's bias (positive: it estimates too high)."""
    if not pairs:
        return None
    return float(np.mean([estimate - realized for estimate, realized in pairs]))


def mean_realized(pairs: Sequence[tuple[float, float]]) -> float | None:
    """Mean realized value over the labelled chunks."""
    if not pairs:
        return None
    return float(np.mean([realized for _, realized in pairs]))


def first_difference(clean: pd.DataFrame, other: pd.DataFrame, first_day: date) -> int | None:
    """The first streamed day whose records differ between two streams (None: all equal).

    Both frames hold `CDR_COLUMNS`; a day's records are compared as a set (sorted by
    subscriber), NULL equal to NULL.
    """
    left, right = _by_day(clean, first_day), _by_day(other, first_day)
    for day in sorted(set(left) | set(right)):
        if day not in left or day not in right or not _same_records(left[day], right[day]):
            return day
    return None


def _by_day(frame: pd.DataFrame, first_day: date) -> dict[int, pd.DataFrame]:
    days = (pd.to_datetime(frame[DATE_COLUMN]).dt.normalize() - pd.Timestamp(first_day)).dt.days
    return {int(day): part for day, part in frame.groupby(days.to_numpy(), sort=True)}


def _same_records(left: pd.DataFrame, right: pd.DataFrame) -> bool:
    if len(left) != len(right):
        return False
    left = left.sort_values(SUBSCRIBER_COLUMN, kind="stable")
    right = right.sort_values(SUBSCRIBER_COLUMN, kind="stable")
    if not np.array_equal(left[SUBSCRIBER_COLUMN].to_numpy(), right[SUBSCRIBER_COLUMN].to_numpy()):
        return False
    for column in CDR_COLUMNS:
        if column in (DATE_COLUMN, SUBSCRIBER_COLUMN):
            continue
        a = pd.to_numeric(left[column]).to_numpy(dtype=float, na_value=np.nan)
        b = pd.to_numeric(right[column]).to_numpy(dtype=float, na_value=np.nan)
        if not np.array_equal(a, b, equal_nan=True):
            return False
    return True


@dataclass(frozen=True)
class KindOutcome:
    """One alert kind in one scenario."""

    kind: str
    false_alarms: FalseAlarms
    delay: int | None
    observable_chunks: int
    false_rate_target: float | None
    delay_target: int | None
    delay_beyond_clean: int | None = None
    compared_with_clean: bool = False

    @property
    def false_rate_met(self) -> bool | None:
        rate = self.false_alarms.rate
        if self.false_rate_target is None or rate is None:
            return None
        return rate <= self.false_rate_target

    @property
    def quiet_before(self) -> bool:
        """Whether the kind was quiet enough before the onset for a detection to count."""
        rate = self.false_alarms.rate
        ceiling = FALSE_RATE_TARGETS.get(self.kind, DETECTION_MAX_FALSE_RATE)
        return rate is None or rate <= ceiling

    @property
    def counted_delay(self) -> int | None:
        """The delay the target is checked on: beyond the clean stream's alerts when known."""
        return self.delay_beyond_clean if self.compared_with_clean else self.delay

    @property
    def delay_met(self) -> bool | None:
        """Caught in time by a kind that was quiet before; None without a delay target."""
        if self.delay_target is None:
            return None
        delay = self.counted_delay
        in_time = delay is not None and delay <= self.delay_target
        return in_time and self.quiet_before

    def to_json(self) -> dict[str, Any]:
        return {
            "false_alerts": self.false_alarms.alerts,
            "false_chunks": self.false_alarms.chunks,
            "false_rate": _round(self.false_alarms.rate),
            "false_rate_target": self.false_rate_target,
            "false_rate_met": self.false_rate_met,
            "delay_chunks": self.delay,
            "delay_beyond_clean_chunks": self.delay_beyond_clean,
            "compared_with_clean": self.compared_with_clean,
            "observable_chunks": self.observable_chunks,
            "delay_target": self.delay_target,
            "quiet_before": self.quiet_before,
            "delay_met": self.delay_met,
        }


@dataclass(frozen=True)
class ScenarioOutcome:
    """Everything measured on one scenario."""

    plan: ScenarioPlan
    onset: int | None
    chunks: int
    labelled_chunks: int
    kinds: tuple[KindOutcome, ...]
    cbpe_mae: Mapping[str, float | None]
    roc_auc_bias: float | None = None
    roc_auc_realized: float | None = None
    seconds: Mapping[str, float] = field(default_factory=dict)

    @property
    def cbpe_met(self) -> bool | None:
        mae = self.cbpe_mae.get("roc_auc")
        if not self.plan.cbpe_holds or mae is None:
            return None
        return mae <= CBPE_MAE_TARGET

    def to_json(self) -> dict[str, Any]:
        return {
            "injection_day": self.plan.injection_day,
            "onset_day": self.onset,
            "knobs": self.plan.scenario.model_dump(mode="json", exclude_none=True),
            "caught_by": self.plan.caught_by,
            "chunks": self.chunks,
            "labelled_chunks": self.labelled_chunks,
            "kinds": {outcome.kind: outcome.to_json() for outcome in self.kinds},
            "cbpe_mae": {name: _round(value) for name, value in self.cbpe_mae.items()},
            "cbpe_mae_target": CBPE_MAE_TARGET if self.plan.cbpe_holds else None,
            "roc_auc_bias": _round(self.roc_auc_bias),
            "roc_auc_realized_mean": _round(self.roc_auc_realized),
            "cbpe_met": self.cbpe_met,
            "seconds": {stage: round(value, 1) for stage, value in self.seconds.items()},
        }


def evaluate(
    plan: ScenarioPlan,
    alerts: AlertSeries,
    pairs: Mapping[str, Sequence[tuple[float, float]]],
    onset: int | None,
    clean_alerts: AlertSeries | None = None,
) -> ScenarioOutcome:
    """The figures of one scenario from its alerts, CBPE's pairs and its ground-truth onset.

    False alarms count the chunks before the onset (all chunks of a stream that never differs
    from the clean one); delays are searched from the onset on and counted from the injection.
    With ``clean_alerts`` (the clean stream of the same seed), a second delay skips the chunks
    the clean stream has in alert for the same kind, and the target is checked on it.
    """
    clean = plan.caught_by is None
    compared = not clean and clean_alerts is not None
    before = None if clean or onset is None else onset
    search_from = plan.injection_day if onset is None else min(onset, plan.injection_day)
    kinds = []
    for kind in KINDS:
        kinds.append(
            KindOutcome(
                kind=kind,
                false_alarms=false_alarms(alerts, kind, before),
                delay=None
                if clean
                else detection_delay(alerts, kind, search_from, plan.injection_day),
                observable_chunks=0 if clean else chunks_observable(alerts, kind, search_from),
                false_rate_target=FALSE_RATE_TARGETS.get(kind),
                delay_target=plan.within if kind == plan.caught_by else None,
                delay_beyond_clean=detection_delay(
                    alerts, kind, search_from, plan.injection_day, clean_alerts
                )
                if compared
                else None,
                compared_with_clean=compared,
            )
        )
    return ScenarioOutcome(
        plan=plan,
        onset=onset,
        chunks=len(alerts.days),
        labelled_chunks=sum(alerts.labelled),
        kinds=tuple(kinds),
        cbpe_mae={name: mean_absolute_error(pairs.get(name, [])) for name in METRICS},
        roc_auc_bias=mean_error(pairs.get("roc_auc", [])),
        roc_auc_realized=mean_realized(pairs.get("roc_auc", [])),
    )


# ---------------------------------------------------------------------------------------------
# Rendering.


def render_tables(outcomes: Sequence[ScenarioOutcome]) -> str:
    """The alert table and the CBPE table, as Markdown."""
    lines = [
        "| scenario | alert kind | false alerts before onset | rate | target | "
        "delay (chunks) | target |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for outcome in outcomes:
        for kind in outcome.kinds:
            false = kind.false_alarms
            delay = "" if outcome.plan.caught_by is None else _delay_text(kind)
            target = _target(kind.false_rate_target, kind.false_rate_met)
            lines.append(
                f"| {outcome.plan.name} | {kind.kind} | {false.alerts}/{false.chunks} | "
                f"{_percent(false.rate)} | {target} | {delay} | {_delay_target(kind)} |"
            )
    lines += [
        "",
        "| scenario | injection day | onset day | chunks | labelled | CBPE MAE ROC-AUC | F1 | "
        "accuracy | target (ROC-AUC) | ROC-AUC bias | realized ROC-AUC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for outcome in outcomes:
        mae = outcome.cbpe_mae
        target = (
            _target(CBPE_MAE_TARGET, outcome.cbpe_met, percent=False)
            if outcome.plan.cbpe_holds
            else "—"
        )
        onset = "—" if outcome.onset is None else str(outcome.onset)
        injection = "—" if outcome.plan.caught_by is None else str(outcome.plan.injection_day)
        lines.append(
            f"| {outcome.plan.name} | {injection} | {onset} | {outcome.chunks} | "
            f"{outcome.labelled_chunks} | {_number(mae['roc_auc'])} | {_number(mae['f1'])} | "
            f"{_number(mae['accuracy'])} | {target} | {_signed(outcome.roc_auc_bias)} | "
            f"{_number(outcome.roc_auc_realized)} |"
        )
    return "\n".join(lines)


def _delay_text(kind: KindOutcome) -> str:
    if kind.delay is None:
        return f"none ({kind.observable_chunks} chunks)"
    text = f"{kind.delay:+d}"
    if kind.kind in LABELLED_KINDS:
        text += " after labels"
    if kind.compared_with_clean and kind.delay_beyond_clean != kind.delay:
        beyond = kind.delay_beyond_clean
        text += f" ({'none' if beyond is None else f'{beyond:+d}'} beyond clean's alerts)"
    return text


def _delay_target(kind: KindOutcome) -> str:
    if kind.delay_target is None:
        return ""
    delay = kind.counted_delay
    if kind.delay_met:
        mark = "ok"
    elif delay is not None and delay <= kind.delay_target:
        mark = "MISSED (alerting before the onset)"
    else:
        mark = "MISSED"
    return f"<= {kind.delay_target} {mark}"


def _target(target: float | None, met: bool | None, *, percent: bool = True) -> str:
    if target is None:
        return ""
    text = f"{target:.0%}" if percent else f"{target:.2f}"
    return f"<= {text} " + ("" if met is None else "ok" if met else "MISSED")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# ---------------------------------------------------------------------------------------------
# Wiring: generate, load, Spark, monitor.


@dataclass(frozen=True)
class Sizes:
    """How big one run is."""

    subscribers: int
    stream_days: int
    injection_day: int
    min_chunk_rows: int


def stream_frame(
    base: Any, seed: int, scenario: Scenario, days: int, first_day: date
) -> pd.DataFrame:
    """The first ``days`` streamed days of a stream, as the simulator's batches hold them."""
    from ingest.simulator import BatchClock, build_batch, stream_days

    streamed = stream_days(base, seed, scenario)
    rows = sum(streamed.day_size(day) for day in range(days))
    anchor = datetime(first_day.year, first_day.month, first_day.day)
    clock = BatchClock("simulated", anchor)
    return build_batch(base, 0, rows, seed, clock, anchor, scenario)


def pipeline_dates(start: date, end: date, history_end: date) -> PipelineDates:
    """Analyse [start, end]; the model's processed range is the whole history."""
    return PipelineDates.model_validate(
        {
            "start_date": start.isoformat(),
            "end_date": end.isoformat(),
            "processed_start": HISTORY_START.isoformat(),
            "processed_end": history_end.isoformat(),
        }
    )


def monitored(settings: Settings, save_to: Path | None = None) -> MonitoringResult:
    """Monitor the current model of ``settings``' database with its ``monitoring_*`` settings.

    Args:
        settings: The scenario database's settings.
        save_to: If set, the folder where the monitoring's inputs are saved
            (`save_inputs`), to replay them with ``--from-inputs``.
    """
    from db.connection import connection
    from monitoring.pipeline.runner import RunSpec, load_inputs, monitor, resolve_model, utcnow

    spec = RunSpec.from_settings(settings)
    with connection(settings) as conn:
        model = resolve_model(conn, None)
        inputs = load_inputs(conn, model, 0, spec.label_delay_days)
    if save_to is not None:
        save_inputs(inputs, save_to)
    return monitor(inputs, spec, trigger="cli", started_at=utcnow()).result


def save_inputs(inputs: Any, folder: Path) -> None:
    """Write a run's `MonitorInputs` to ``folder``: two Parquet files and the mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    inputs.reference.to_parquet(folder / "reference.parquet")
    inputs.analysis.to_parquet(folder / "analysis.parquet")
    (folder / "inputs.json").write_text(
        json.dumps({"model_version": inputs.model_version, "mapping": inputs.mapping.model_dump()})
    )


def replayed(folder: Path, settings: Settings) -> MonitoringResult:
    """Monitor inputs saved by `save_inputs`, with the ``monitoring_*`` settings: no Spark."""
    from monitoring.compute.spec import ColumnMapping
    from monitoring.pipeline.runner import MonitorInputs, RunSpec, monitor, utcnow

    saved = json.loads((folder / "inputs.json").read_text())
    inputs = MonitorInputs(
        saved["model_version"],
        ColumnMapping.model_validate(saved["mapping"]),
        pd.read_parquet(folder / "reference.parquet"),
        pd.read_parquet(folder / "analysis.parquet"),
        0,
    )
    spec = RunSpec.from_settings(settings)
    return monitor(inputs, spec, trigger="cli", started_at=utcnow()).result


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def stage(self, name: str) -> _Stage:
        return _Stage(self.seconds, name)


class _Stage:
    def __init__(self, seconds: dict[str, float], name: str) -> None:
        self._seconds, self._name = seconds, name

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._seconds[self._name] = time.perf_counter() - self._started


def run_benchmark(
    base_settings: Settings,
    sizes: Sizes,
    seed: int,
    names: Sequence[str],
    save_dir: Path | None = None,
) -> tuple[list[ScenarioOutcome], dict[str, Any]]:
    """Train once on clean history, then stream, score and monitor each scenario.

    With ``save_dir``, each scenario's monitoring inputs and ground truth go to
    ``save_dir/<scenario>`` for `replay_benchmark`.
    """
    from db.clone import copy_tables
    from db.connection import connection, drop_database
    from db.ingest_log import Source
    from ingest.generator import GeneratorConfig
    from ingest.seeding import load_frame, seed_from_generator
    from ingest.simulator import GeneratorBase
    from spark_jobs.analysis import run_analysis
    from spark_jobs.model import run_model
    from spark_jobs.scoring import run_score
    from spark_jobs.session import build_spark_session

    plans = scenario_plans(sizes.injection_day)
    prefix = f"scen_bench_{os.getpid()}"
    history = base_settings.model_copy(update={"db_name": f"{prefix}_history"})
    history_end = HISTORY_START + timedelta(days=HISTORY_DAYS - 1)
    stream_start = history_end + timedelta(days=1)
    stream_end = stream_start + timedelta(days=sizes.stream_days - 1)
    config = GeneratorConfig(
        subscribers=sizes.subscribers, days=HISTORY_DAYS, start_date=HISTORY_START, seed=seed
    )
    created: list[Settings] = []
    outcomes: list[ScenarioOutcome] = []
    info: dict[str, Any] = {}
    spark: SparkSession = build_spark_session(base_settings, "bench-scenarios")
    try:
        timer = _Timer()
        with timer.stage("history"):
            created.append(history)
            _init_database(history)
            seed_from_generator(history, config, progress=False)
            model_dates = pipeline_dates(HISTORY_START, history_end, history_end)
            run_analysis(spark, history, model_dates)
        with timer.stage("model"):
            report = run_model(spark, history, model_dates)
        log.info("%s", report.describe())
        info["model"] = {
            "version": report.version,
            "test_window": [str(report.windows.test_start), str(report.windows.test_end)],
            "test_metrics": {k: _round(report.metrics[k]) for k in ("roc_auc", "f1", "accuracy")},
        }
        info["seconds"] = dict(timer.seconds)

        base = GeneratorBase(config, first_day=HISTORY_DAYS)
        stream_seed = seed + 1
        clean = stream_frame(base, stream_seed, Scenario(), sizes.stream_days, stream_start)
        stream_dates = pipeline_dates(stream_start, stream_end, history_end)
        clean_alerts: AlertSeries | None = None
        for name in _clean_first(names):
            plan = plans[name]
            timer = _Timer()
            log.info("scenario %s: %s", name, plan.scenario.model_dump(exclude_none=True))
            settings = base_settings.model_copy(update={"db_name": f"{prefix}_{name}"})
            with timer.stage("generate"):
                frame = (
                    clean
                    if name == "clean"
                    else stream_frame(
                        base, stream_seed, plan.scenario, sizes.stream_days, stream_start
                    )
                )
                onset = first_difference(clean, frame, stream_start)
            with timer.stage("load"):
                created.append(settings)
                _init_database(settings)
                with connection(settings) as conn:
                    copy_tables(conn, history.db_name, COPIED_TABLES)
                source = Source(
                    source_id=f"bench-{name}-{seed}",
                    kind="stream",
                    description=f"scenario benchmark stream: {name}",
                    params={"scenario": name, "seed": stream_seed},
                    total_batches=0,
                )
                load_frame(settings, frame, source, progress=False)
            with timer.stage("analysis"):
                run_analysis(spark, settings, stream_dates)
            with timer.stage("score"):
                run_score(spark, settings)
            folder = None if save_dir is None else save_dir / name
            with timer.stage("monitor"):
                result = monitored(settings, folder)
            if folder is not None:
                (folder / "truth.json").write_text(
                    json.dumps(
                        {
                            "onset": onset,
                            "stream_start": stream_start.isoformat(),
                            "injection_day": sizes.injection_day,
                        }
                    )
                )
            pairs = realized_pairs(result, stream_start, base_settings.monitoring_reference_days)
            alerts = read_alerts(result, stream_start)
            if name == "clean":
                clean_alerts = alerts
            outcome = evaluate(plan, alerts, pairs, onset, clean_alerts)
            outcomes.append(dataclasses.replace(outcome, seconds=dict(timer.seconds)))
            log.info(
                "scenario %s done: %s",
                name,
                ", ".join(f"{k} {v:.1f} s" for k, v in timer.seconds.items()),
            )
            drop_database(settings)
            created.remove(settings)
    finally:
        for settings in created:
            drop_database(settings)
        spark.stop()
    return outcomes, info


def replay_benchmark(
    base_settings: Settings, folder: Path, names: Sequence[str]
) -> list[ScenarioOutcome]:
    """Monitor again the inputs a run saved with ``--save-inputs``: the monitoring alone.

    The figures are those of a full run whose monitoring had the current code, in seconds
    rather than minutes: for tuning the monitoring, not for measuring the pipeline.
    """
    outcomes = []
    clean_alerts: AlertSeries | None = None
    for name in _clean_first(names):
        if not (folder / name / "truth.json").exists():
            log.warning("no saved inputs for scenario %s in %s", name, folder)
            continue
        truth = json.loads((folder / name / "truth.json").read_text())
        plan = scenario_plans(truth["injection_day"])[name]
        timer = _Timer()
        with timer.stage("monitor"):
            result = replayed(folder / name, base_settings)
        stream_start = date.fromisoformat(truth["stream_start"])
        pairs = realized_pairs(result, stream_start, base_settings.monitoring_reference_days)
        alerts = read_alerts(result, stream_start)
        if name == "clean":
            clean_alerts = alerts
        outcome = evaluate(plan, alerts, pairs, truth["onset"], clean_alerts)
        outcomes.append(dataclasses.replace(outcome, seconds=dict(timer.seconds)))
    return outcomes


def _clean_first(names: Sequence[str]) -> list[str]:
    """The scenarios in order, the clean one first: the others' delays are compared with it."""
    return sorted(names, key=lambda name: name != "clean")


def _init_database(settings: Settings, attempts: int = 5) -> None:
    """Create and migrate a database, waiting out other processes' migration runs.

    The migration lock is server-wide, and other test sessions on a shared server may hold it
    for longer than one `init_database` waits.
    """
    from db.errors import MigrationError
    from db.migrate import init_database

    for attempt in range(1, attempts + 1):
        try:
            init_database(settings)
            return
        except MigrationError as exc:
            if attempt == attempts or "lock" not in str(exc):
                raise
            log.warning("migration lock busy; retrying (%d of %d)", attempt, attempts - 1)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    names = list(scenario_plans())
    cli = parser("bench/scenarios.py", (__doc__ or "").splitlines()[0])
    cli.add_argument(
        "--subscribers",
        type=positive_int,
        default=DEFAULT_SUBSCRIBERS,
        help="subscribers of the generated population on day 0",
    )
    cli.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed (stream: +1)")
    cli.add_argument(
        "--scenarios",
        nargs="+",
        choices=names,
        default=names,
        metavar="NAME",
        help=f"scenarios to run, of: {', '.join(names)}",
    )
    cli.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK['subscribers']} subscribers, {QUICK['stream_days']} streamed "
        f"days, injection on day {QUICK['injection_day']} (figures not meaningful)",
    )
    cli.add_argument(
        "--reference-days",
        type=int,
        default=Settings.model_fields["monitoring_reference_days"].default,
        metavar="N",
        help="MONITORING_REFERENCE_DAYS: the first N streamed days become the reference once "
        "labelled; CBPE's error is then measured after them (default: %(default)s, as the "
        "setting; 0: the model's test window)",
    )
    cli.add_argument(
        "--save-inputs",
        type=Path,
        default=None,
        metavar="DIR",
        help="save each scenario's monitoring inputs and ground truth under DIR (default: not)",
    )
    cli.add_argument(
        "--from-inputs",
        type=Path,
        default=None,
        metavar="DIR",
        help="monitor the inputs a --save-inputs run left in DIR again, without Spark or a "
        "database (default: a full run)",
    )
    cli.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return cli.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables and the JSON line."""
    from monitoring.errors import MonitoringError
    from spark_jobs.errors import SparkJobError

    args = parse_args(argv)
    configure_logging(args.verbose)
    if args.quick:
        sizes = Sizes(
            QUICK["subscribers"],
            QUICK["stream_days"],
            QUICK["injection_day"],
            QUICK["min_chunk_rows"],
        )
    else:
        sizes = Sizes(args.subscribers, STREAM_DAYS, INJECTION_DAY, 300)
    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-scenarios-") as workdir:
        settings = load_settings(
            output_dir=Path(workdir) / "output",
            model_dir=Path(workdir) / "models",
            monitoring_min_chunk_rows=sizes.min_chunk_rows,
            monitoring_chunk_period="D",
            monitoring_chunk_size=None,
            monitoring_reference_days=args.reference_days,
        )
        info: dict[str, Any] = {}
        try:
            if args.from_inputs is not None:
                outcomes = replay_benchmark(settings, args.from_inputs, args.scenarios)
            else:
                outcomes, info = run_benchmark(
                    settings, sizes, args.seed, args.scenarios, args.save_inputs
                )
        except (SparkJobError, MonitoringError) as exc:
            return fail(str(exc))
    wall = time.perf_counter() - started
    load_after = os.getloadavg()
    print(render_tables(outcomes))
    print(
        f"\nwall time {wall:.0f} s (target <= {MAX_WALL_SECONDS} s); load average "
        f"{load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end; "
        f"{os.cpu_count()} cores"
    )
    figures = {
        "seed": args.seed,
        "subscribers": sizes.subscribers,
        "history_days": HISTORY_DAYS,
        "stream_days": sizes.stream_days,
        "label_delay_days": settings.monitoring_label_delay_days,
        "reference_days": settings.monitoring_reference_days,
        "quick": args.quick,
        "wall_seconds": round(wall, 1),
        "wall_target_seconds": MAX_WALL_SECONDS,
        "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
        "cpus": os.cpu_count(),
        **info,
        "scenarios": {outcome.plan.name: outcome.to_json() for outcome in outcomes},
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
