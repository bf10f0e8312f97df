"""Tests for the stream's batch builder: a pure function of a small hand-made subscriber base."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from db.schema import (
    AMOUNT_COLUMNS,
    CDR_COLUMNS,
    COUNT_COLUMNS,
    DATA_COLUMNS,
    DATE_COLUMN,
    LABEL_COLUMN,
    SMS_COLUMNS,
    SUBSCRIBER_COLUMN,
    USAGE_COLUMNS,
    VOICE_COLUMNS,
)
from ingest.scenario import ChurnRateChange, ConceptDrift, CovariateDrift, Scenario
from ingest.simulator import (
    NOISE_SIGMA,
    REALTIME_JITTER_S,
    BatchClock,
    EmptyBaseError,
    build_batch,
    simulated_anchor,
)

NOW = datetime(2024, 3, 5, 14, 30, 0)
REALTIME = BatchClock("realtime", datetime(2024, 3, 1))
SIMULATED = BatchClock("simulated", datetime(2024, 1, 11))
USAGE_OF = dict(zip(USAGE_COLUMNS, range(len(USAGE_COLUMNS)), strict=True))


def _base(rows: Sequence[tuple[str, Sequence[float | None], int | None]]) -> pd.DataFrame:
    """A base frame as `recent_cdr` returns it: (MSISDN, usage in `USAGE_COLUMNS` order, label)."""
    stamp = datetime(2024, 1, 10, 8, 0)
    records = [(stamp, msisdn, *usage, label) for msisdn, usage, label in rows]
    return pd.DataFrame(records, columns=list(CDR_COLUMNS))


# usage: MOC count, MOC minutes, MTC count, MTC minutes, MO SMS, MT SMS, data sessions, data MB
BASE = _base(
    [
        ("27710000001", (4, 9.5, 3, 6.25, 2, 5, 7, 120.0), 0),
        ("27710000002", (0, 0.0, 1, 2.0, 0, 0, 3, 35.5), 1),
        ("27710000003", (12, 30.0, 9, 21.5, 6, 8, 15, 640.0), 0),
        ("27710000004", (1, 1.5, 0, 0.0, 1, 1, 1, 4.0), 1),
        ("27710000005", (7, 14.0, 5, 11.0, 3, 2, 9, 210.0), None),
    ]
)
WITH_NULLS = _base(
    [
        ("27710000001", (4, 9.5, 3, 6.25, 2, 5, 7, 120.0), 0),
        ("27710000009", (None, None, 2, 3.0, 1, 1, 4, None), 1),
        ("27710000003", (12, 30.0, 9, 21.5, 6, 8, 15, 640.0), None),
    ]
)


def _batch(
    base: pd.DataFrame = BASE,
    batch_index: int = 0,
    size: int = 50,
    seed: int = 42,
    clock: BatchClock = REALTIME,
    scenario: Scenario | None = None,
) -> pd.DataFrame:
    return build_batch(base, batch_index, size, seed, clock, NOW, scenario)


@pytest.mark.parametrize("size", [1, 3, 5, 200])
def test_batch_has_the_requested_rows_in_table_column_order(size: int) -> None:
    batch = _batch(size=size)

    assert len(batch) == size
    assert list(batch.columns) == list(CDR_COLUMNS)
    assert batch.index.tolist() == list(range(size))


def test_a_batch_is_rebuilt_exactly_from_its_seed_and_index() -> None:
    pd.testing.assert_frame_equal(_batch(batch_index=3), _batch(batch_index=3))


@pytest.mark.parametrize(
    ("seed", "batch_index"), [(42, 4), (43, 3)], ids=["other-batch", "other-seed"]
)
def test_another_batch_index_or_seed_draws_another_batch(seed: int, batch_index: int) -> None:
    first = _batch(seed=42, batch_index=3, size=200)
    other = _batch(seed=seed, batch_index=batch_index, size=200)

    assert not first[list(USAGE_COLUMNS)].equals(other[list(USAGE_COLUMNS)])
    assert not first[DATE_COLUMN].equals(other[DATE_COLUMN])


def test_counts_stay_non_negative_integers_and_amounts_non_negative() -> None:
    batch = _batch(size=2000)

    for column in COUNT_COLUMNS:
        assert pd.api.types.is_integer_dtype(batch[column]), column
        assert (batch[column].dropna() >= 0).all(), column
    for column in AMOUNT_COLUMNS:
        assert pd.api.types.is_float_dtype(batch[column]), column
        assert (batch[column].dropna() >= 0).all(), column
    # zero usage stays zero: noise is multiplicative, never additive
    idle = batch[batch[SUBSCRIBER_COLUMN] == "27710000002"]
    assert not idle.empty
    assert (idle[["DP_MOC_COUNT", "DP_MOC_DURATION", "DP_MOSMS_COUNT"]] == 0).all().all()


def test_subscribers_and_labels_are_copied_from_the_base_never_jittered() -> None:
    batch = _batch(size=500)

    labels = BASE.set_index(SUBSCRIBER_COLUMN)[LABEL_COLUMN]
    assert set(batch[SUBSCRIBER_COLUMN]) == set(labels.index)
    expected = batch[SUBSCRIBER_COLUMN].map(labels)
    pd.testing.assert_series_equal(
        batch[LABEL_COLUMN].astype("Float64"), expected.astype("Float64"), check_names=False
    )


def test_usage_is_the_sampled_rows_usage_times_small_noise() -> None:
    batch = _batch(size=500)

    source = BASE.set_index(SUBSCRIBER_COLUMN).loc[batch[SUBSCRIBER_COLUMN]]
    ratio = batch["DP_DATA_VOLUME"].to_numpy() / source["DP_DATA_VOLUME"].to_numpy()
    # log-normal noise with sigma 0.1: 6 sigma either way, and not a copy
    assert np.exp(-6 * NOISE_SIGMA) < ratio.min() < ratio.max() < np.exp(6 * NOISE_SIGMA)
    assert ratio.std() > NOISE_SIGMA / 2


@pytest.mark.parametrize(
    "scenario",
    [None, Scenario(concept_drift=ConceptDrift(strength=1.0))],
    ids=["plain", "concept-drift"],
)
def test_null_usage_and_null_labels_stay_null(scenario: Scenario | None) -> None:
    batch = _batch(base=WITH_NULLS, size=300, scenario=scenario)

    sparse = batch[SUBSCRIBER_COLUMN] == "27710000009"
    unlabelled = batch[SUBSCRIBER_COLUMN] == "27710000003"
    assert sparse.any()
    assert unlabelled.any()
    for column in ("DP_MOC_COUNT", "DP_MOC_DURATION", "DP_DATA_VOLUME"):
        assert batch.loc[sparse, column].isna().all(), column
        assert batch.loc[~sparse, column].notna().all(), column
    other_usage = [c for c in USAGE_COLUMNS if c not in ("DP_MOC_COUNT", "DP_MOC_DURATION")]
    assert batch.loc[sparse, [c for c in other_usage if c != "DP_DATA_VOLUME"]].notna().all().all()
    assert batch.loc[unlabelled, LABEL_COLUMN].isna().all()
    assert batch.loc[~unlabelled, LABEL_COLUMN].notna().all()


def test_realtime_stamps_fall_within_five_minutes_of_now() -> None:
    stamps = _batch(size=1000, clock=REALTIME)[DATE_COLUMN]

    window = timedelta(seconds=REALTIME_JITTER_S)
    assert REALTIME_JITTER_S == 300
    assert stamps.min() >= NOW - window
    assert stamps.max() <= NOW + window
    # they spread over the window rather than all sitting on now
    assert stamps.max() - stamps.min() > window
    assert stamps.is_monotonic_increasing


@pytest.mark.parametrize("batch_index", [0, 1, 9])
def test_simulated_stamps_fall_on_the_anchor_plus_the_batch_index(batch_index: int) -> None:
    batch = _batch(size=400, clock=SIMULATED, batch_index=batch_index)
    later = build_batch(BASE, batch_index, 400, 42, SIMULATED, NOW + timedelta(days=30))

    day = datetime(2024, 1, 11) + timedelta(days=batch_index)
    assert (batch[DATE_COLUMN].dt.normalize() == day).all()
    assert batch[DATE_COLUMN].nunique() > 100  # spread over the day
    # the wall clock plays no part in a simulated stream
    pd.testing.assert_series_equal(batch[DATE_COLUMN], later[DATE_COLUMN])


@pytest.mark.parametrize(
    ("latest", "anchor"),
    [
        (datetime(2024, 1, 10), datetime(2024, 1, 11)),
        (datetime(2024, 1, 10, 23, 59, 59), datetime(2024, 1, 11)),
        (datetime(2024, 2, 29, 0, 0, 1), datetime(2024, 3, 1)),
        (datetime(2023, 12, 31, 12), datetime(2024, 1, 1)),
    ],
)
def test_simulated_anchor_is_the_midnight_after_the_latest_record(
    latest: datetime, anchor: datetime
) -> None:
    assert simulated_anchor(latest) == anchor


def test_covariate_drift_scales_usage_from_its_first_step_on() -> None:
    drift = Scenario(
        covariate_drift=CovariateDrift(
            from_step=2, voice_factor=1.0, sms_factor=1.0, data_factor=3.0
        )
    )

    before = _batch(batch_index=1, size=2000, scenario=drift)
    pd.testing.assert_frame_equal(before, _batch(batch_index=1, size=2000))

    drifted = _batch(batch_index=2, size=2000, scenario=drift)
    plain = _batch(batch_index=2, size=2000)
    for column in DATA_COLUMNS:
        ratio = drifted[column].astype(float).mean() / plain[column].astype(float).mean()
        assert ratio == pytest.approx(3.0, rel=0.02), column
    for column in (*VOICE_COLUMNS, *SMS_COLUMNS):
        pd.testing.assert_series_equal(drifted[column], plain[column])
    # against the base itself: the sampled rows' volume, tripled, within the noise
    sampled = BASE.set_index(SUBSCRIBER_COLUMN).loc[drifted[SUBSCRIBER_COLUMN], "DP_DATA_VOLUME"]
    assert drifted["DP_DATA_VOLUME"].mean() / sampled.mean() == pytest.approx(3.0, rel=0.05)


def test_churn_rate_change_raises_the_churned_share_from_its_first_step_on() -> None:
    # one churner in five: a factor of 4 weights it 4 : 4 against the rest
    base = _base(
        [(f"2771000000{i}", (5, 10.0, 5, 10.0, 2, 2, 5, 50.0), int(i == 0)) for i in range(5)]
    )
    change = Scenario(churn_rate_change=ChurnRateChange(from_step=3, factor=4.0))

    before = _batch(base=base, batch_index=2, size=4000, scenario=change)
    after = _batch(base=base, batch_index=3, size=4000, scenario=change)

    assert before[LABEL_COLUMN].mean() == pytest.approx(0.2, abs=0.03)
    assert after[LABEL_COLUMN].mean() == pytest.approx(0.5, abs=0.04)


def test_concept_drift_decouples_labels_from_usage_but_keeps_the_rate() -> None:
    # churners are exactly the low-usage subscribers; a third of the base churns
    quiet = [(f"277100000{i:02d}", (1, 1.0, 1, 1.0, 0, 1, 1, 5.0), 1) for i in range(2)]
    busy = [(f"277100001{i:02d}", (20, 40.0, 15, 30.0, 8, 9, 25, 900.0), 0) for i in range(4)]
    base = _base(quiet + busy)
    drift = Scenario(concept_drift=ConceptDrift(from_step=1, strength=1.0))

    before = _batch(base=base, batch_index=0, size=3000, scenario=drift)
    after = _batch(base=base, batch_index=1, size=3000, scenario=drift)

    low_before = before["DP_DATA_VOLUME"] < 100
    assert (before[LABEL_COLUMN] == low_before.astype(int)).all()

    low = after["DP_DATA_VOLUME"] < 100
    assert set(after[LABEL_COLUMN].unique()) == {0, 1}
    assert after[LABEL_COLUMN].mean() == pytest.approx(1 / 3, abs=0.04)
    assert after.loc[low, LABEL_COLUMN].mean() == pytest.approx(1 / 3, abs=0.06)
    assert after.loc[~low, LABEL_COLUMN].mean() == pytest.approx(1 / 3, abs=0.06)
    correlation = np.corrcoef(after[LABEL_COLUMN].astype(float), low.astype(float))[0, 1]
    assert abs(correlation) < 0.1
    # the usage itself is the plain batch's: only the labels moved
    plain = _batch(base=base, batch_index=1, size=3000)
    pd.testing.assert_frame_equal(after[list(USAGE_COLUMNS)], plain[list(USAGE_COLUMNS)])


def test_an_empty_base_raises_empty_base_error() -> None:
    empty = pd.DataFrame(columns=list(CDR_COLUMNS))

    with pytest.raises(EmptyBaseError, match="no CDR history"):
        _batch(base=empty)
    assert issubclass(EmptyBaseError, ValueError)
