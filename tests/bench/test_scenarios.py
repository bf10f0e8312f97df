"""The scenario benchmark's pure parts: false alarms, delays and onsets on hand-made series."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from bench import scenarios as bench
from ingest.generator import GeneratorConfig
from ingest.scenario import Scenario
from ingest.simulator import GeneratorBase
from monitoring.compute.result import ChunkSummary, MetricSeries, MonitoringResult, StatisticSeries
from monitoring.compute.spec import Chunking


def _series(
    flags: dict[str, list[bool]],
    labelled: list[bool] | None = None,
    univariate: list[int] | None = None,
    features: int = 10,
) -> bench.AlertSeries:
    n = len(next(iter(flags.values())))
    full = {kind: tuple(flags.get(kind, [False] * n)) for kind in bench.KINDS}
    return bench.AlertSeries(
        days=tuple(range(n)),
        labelled=tuple(labelled if labelled is not None else [True] * n),
        flags=full,
        univariate_alerts=tuple(univariate if univariate is not None else [0] * n),
        features=features,
    )


def test_false_alarms_count_the_chunks_before_the_onset() -> None:
    alerts = _series({bench.DRIFT: [False, True, False, False, True, True]})
    counted = bench.false_alarms(alerts, bench.DRIFT, before_day=4)
    assert (counted.alerts, counted.chunks) == (1, 4)
    assert counted.rate == pytest.approx(0.25)
    everything = bench.false_alarms(alerts, bench.DRIFT, before_day=None)
    assert (everything.alerts, everything.chunks) == (3, 6)


def test_realized_false_alarms_count_labelled_chunks_only() -> None:
    alerts = _series(
        {bench.REALIZED: [True, False, False, False]}, labelled=[True, True, False, False]
    )
    counted = bench.false_alarms(alerts, bench.REALIZED, before_day=None)
    assert (counted.alerts, counted.chunks) == (1, 2)


def test_univariate_false_alarms_count_feature_chunks() -> None:
    alerts = _series({bench.UNIVARIATE: [True, True, False]}, univariate=[2, 1, 0], features=10)
    counted = bench.false_alarms(alerts, bench.UNIVARIATE, before_day=None)
    assert (counted.alerts, counted.chunks) == (3, 30)


def test_no_chunk_before_the_onset_has_no_rate() -> None:
    alerts = _series({bench.DRIFT: [True, True]})
    assert bench.false_alarms(alerts, bench.DRIFT, before_day=0).rate is None


def test_delay_counts_chunks_from_the_injection_to_the_first_alert() -> None:
    flags = [False] * 10
    flags[2] = True  # before the search window: a false alarm, not a detection
    flags[7] = True
    alerts = _series({bench.DRIFT: flags})
    assert bench.detection_delay(alerts, bench.DRIFT, search_from=5, injection_day=5) == 2
    assert bench.detection_delay(alerts, bench.DRIFT, search_from=1, injection_day=5) == -3
    assert bench.detection_delay(alerts, bench.DRIFT, search_from=8, injection_day=5) is None


def test_realized_delay_skips_unlabelled_chunks() -> None:
    alerts = _series(
        {bench.ESTIMATE_VS_REALIZED: [False, False, True, True]},
        labelled=[True, True, False, True],
    )
    assert bench.detection_delay(alerts, bench.ESTIMATE_VS_REALIZED, 1, 1) == 2
    assert bench.chunks_observable(alerts, bench.ESTIMATE_VS_REALIZED, 1) == 2
    assert bench.chunks_observable(alerts, bench.DRIFT, 1) == 3


def test_evaluate_checks_each_figure_against_its_target() -> None:
    plan = bench.scenario_plans(3)["covariate_sudden"]
    drift = [False, False, False, False, True, True]
    alerts = _series({bench.DRIFT: drift, bench.UNIVARIATE: drift, bench.PERFORMANCE: [True] * 6})
    pairs = {"roc_auc": [(0.80, 0.79), (0.82, 0.84)], "f1": [], "accuracy": [(0.9, 0.9)]}
    outcome = bench.evaluate(plan, alerts, pairs, onset=3)
    kinds = {kind.kind: kind for kind in outcome.kinds}
    assert kinds[bench.DRIFT].delay == 1 and kinds[bench.DRIFT].delay_met is True
    assert kinds[bench.PERFORMANCE].false_alarms.rate == 1.0
    assert kinds[bench.PERFORMANCE].false_rate_met is False
    assert outcome.cbpe_mae["roc_auc"] == pytest.approx(0.015)
    assert outcome.cbpe_mae["f1"] is None
    assert outcome.cbpe_met is True
    assert outcome.roc_auc_bias == pytest.approx(-0.005)
    assert outcome.roc_auc_realized == pytest.approx(0.815)
    assert "covariate_sudden" in bench.render_tables([outcome])


def test_a_missed_detection_misses_its_target() -> None:
    plan = bench.scenario_plans(2)["broken_feed"]
    alerts = _series({bench.DATA_QUALITY: [False] * 5})
    outcome = bench.evaluate(plan, alerts, {}, onset=2)
    quality = next(kind for kind in outcome.kinds if kind.kind == bench.DATA_QUALITY)
    assert quality.delay is None and quality.delay_met is False
    assert "MISSED" in bench.render_tables([outcome])


def test_onset_is_the_first_streamed_day_that_differs_from_the_clean_stream() -> None:
    config = GeneratorConfig(subscribers=60, days=10, seed=5)
    base = GeneratorBase(config, first_day=10)
    first = date(2024, 1, 11)
    plans = bench.scenario_plans(3)
    clean = bench.stream_frame(base, 6, Scenario(), 6, first)
    assert bench.first_difference(clean, clean.copy(), first) is None
    for name in ("covariate_sudden", "broken_feed"):
        drifted = bench.stream_frame(base, 6, plans[name].scenario, 6, first)
        assert bench.first_difference(clean, drifted, first) == 3


def test_a_missing_day_is_a_difference() -> None:
    frame = pd.DataFrame(
        {
            "DP_DATE": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 10:00"]),
            "DP_MSISDN": ["1", "1"],
        }
    )
    for column in bench.CDR_COLUMNS:
        if column not in frame:
            frame[column] = 1
    assert bench.first_difference(frame, frame.iloc[:1], date(2024, 1, 1)) == 1


def test_a_kind_that_alerts_before_the_onset_does_not_count_as_a_detection() -> None:
    plan = bench.scenario_plans(3)["covariate_sudden"]
    alerts = _series({bench.DRIFT: [False, True, False, True, True]})
    outcome = bench.evaluate(plan, alerts, {}, onset=3)
    drift = next(kind for kind in outcome.kinds if kind.kind == bench.DRIFT)
    assert drift.delay == 0 and not drift.quiet_before and drift.delay_met is False
    assert "alerting before the onset" in bench.render_tables([outcome])


def test_an_alert_the_clean_stream_shares_is_no_detection() -> None:
    plan = bench.scenario_plans(2)["covariate_sudden"]
    clean = _series({bench.DRIFT: [False, False, True, False, False, False]})
    drifted = _series({bench.DRIFT: [False, False, True, False, True, True]})

    outcome = bench.evaluate(plan, drifted, {}, onset=2, clean_alerts=clean)

    drift = next(kind for kind in outcome.kinds if kind.kind == bench.DRIFT)
    assert drift.delay == 0  # the clean stream's own alert on day 2
    assert drift.delay_beyond_clean == 2 and drift.counted_delay == 2
    assert drift.delay_met is False  # the target is 1 chunk
    assert "+0 (+2 beyond clean's alerts)" in bench.render_tables([outcome])


def test_without_the_clean_stream_the_delay_is_the_first_alert() -> None:
    plan = bench.scenario_plans(2)["covariate_sudden"]
    drifted = _series({bench.DRIFT: [False, False, True, False, True, True]})

    drift = next(
        kind
        for kind in bench.evaluate(plan, drifted, {}, onset=2).kinds
        if kind.kind == bench.DRIFT
    )

    assert drift.delay == drift.counted_delay == 0 and drift.delay_beyond_clean is None
    assert drift.delay_met is True


def _statistic(kind: str, subject: str, alert: list[bool]) -> StatisticSeries:
    return StatisticSeries(
        kind=kind,
        subject=subject,
        method="m",
        values=tuple(0.1 for _ in alert),
        lower_threshold=None,
        upper_threshold=0.5,
        alert=tuple(alert),
    )


def _result(calibration: list[bool], zeros: list[bool], labelled: list[bool]) -> MonitoringResult:
    n = len(calibration)
    start = pd.Timestamp("2024-03-01")
    chunks = tuple(
        ChunkSummary(
            key=str(i),
            start=start + pd.Timedelta(days=i),
            end=start + pd.Timedelta(days=i + 1),
            chunk_rows=100,
            labelled_rows=100 if labelled[i] else 0,
            ece=0.01,
        )
        for i in range(n)
    )
    metrics = tuple(
        MetricSeries(
            name=name,
            lower_threshold=0.5,
            upper_threshold=None,
            estimate=(0.8,) * n,
            sampling_error=(0.01,) * n,
            lower_bound=(0.77,) * n,
            upper_bound=(0.83,) * n,
            realized=tuple(0.8 if known else math.nan for known in labelled),
            alert=(False,) * n,
            realized_alert=tuple(False if known else None for known in labelled),
            estimate_realized_alert=tuple(False if known else None for known in labelled),
        )
        for name in bench.METRICS
    )
    return MonitoringResult(
        chunking=Chunking(period="D"),
        reference_rows=1000,
        reference_chunks=10,
        chunks=chunks,
        metrics=metrics,
        univariate=(_statistic("continuous", "usage", [False] * n),),
        multivariate=_statistic("multivariate", "all features", [False] * n),
        missing_values=(),
        unseen_values=(),
        warnings=(),
        calibration=_statistic("calibration", "calibration", calibration),
        zero_values=(_statistic("zero_values", "data_volume", zeros),),
    )


def test_the_realized_calibration_and_zero_shares_count_as_their_kinds() -> None:
    result = _result(
        calibration=[False, False, False, True, False],
        zeros=[False, False, True, True, False],
        labelled=[True, True, True, True, False],
    )

    alerts = bench.read_alerts(result, date(2024, 3, 1))

    assert alerts.days == (0, 1, 2, 3, 4)
    assert alerts.flags[bench.REALIZED] == (False, False, False, True, False)
    assert alerts.flags[bench.PERFORMANCE] == (False, False, False, True, False)
    assert alerts.flags[bench.DATA_QUALITY] == (False, False, True, True, False)
    assert alerts.flags[bench.ESTIMATE_VS_REALIZED] == (False,) * 5
    # Silent before the injection on day 2 (broken feed) and day 3 (churn rate).
    broken = bench.evaluate(bench.scenario_plans(2)["broken_feed"], alerts, {}, onset=2)
    quality = next(kind for kind in broken.kinds if kind.kind == bench.DATA_QUALITY)
    assert quality.false_alarms.alerts == 0 and quality.delay == 0 and quality.delay_met
    churn = bench.evaluate(bench.scenario_plans(1)["churn_rate"], alerts, {}, onset=1)
    realized = next(kind for kind in churn.kinds if kind.kind == bench.REALIZED)
    assert realized.false_alarms.alerts == 0 and realized.delay == 2 and realized.delay_met


def test_saved_inputs_replay_to_the_same_frames(tmp_path: Path) -> None:
    from monitoring.compute.spec import ColumnMapping
    from monitoring.pipeline.runner import MonitorInputs

    frame = pd.DataFrame(
        {"ts": pd.to_datetime(["2024-03-01"]), "score": [0.2], "pred": [0], "y": [1.0], "f": [3.0]}
    )
    mapping = ColumnMapping(
        y_true="y", y_pred_proba="score", y_pred="pred", timestamp="ts", features=["f"]
    )
    bench.save_inputs(MonitorInputs("v1", mapping, frame, frame.iloc[:0], 7), tmp_path)

    saved = {path.name for path in tmp_path.iterdir()}
    assert saved == {"reference.parquet", "analysis.parquet", "inputs.json"}
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "reference.parquet"), frame)
