"""Zeros against expectation: partners learnt from the reference, shares checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from monitoring.compute.quality import (
    CONTRADICTED_ZERO_RATE,
    ZERO_VALUES_RATE,
    zero_method,
    zero_partners,
    zero_shares,
)


def _reference(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    sessions = rng.poisson(1.0, rows).astype(float)  # about a third of the rows are 0
    return pd.DataFrame(
        {
            "data_count": sessions,
            "data_volume": sessions * rng.uniform(1.0, 5.0, rows),  # 0 exactly with the count
            "calls": rng.normal(5.0, 1.0, rows),  # never 0
        }
    )


def test_a_partner_is_the_feature_that_is_zero_with_it() -> None:
    partners = zero_partners(_reference(), ["data_count", "data_volume", "calls"])

    assert partners == {"data_count": "data_volume", "data_volume": "data_count", "calls": None}
    assert zero_method(partners["data_volume"]) == CONTRADICTED_ZERO_RATE
    assert zero_method(None) == ZERO_VALUES_RATE


def test_too_few_zeros_or_a_loose_partner_gives_none() -> None:
    reference = _reference()
    loose = reference.assign(data_count=np.where(reference.index % 2 == 0, 1.0, 0.0))

    assert zero_partners(reference, ["data_volume", "calls"], min_zeros=1_000) == {
        "data_volume": None,
        "calls": None,
    }
    assert zero_partners(loose, ["data_volume", "data_count"])["data_volume"] is None


def test_zero_shares_count_contradicted_zeros_with_a_partner_and_all_zeros_without() -> None:
    frame = pd.DataFrame(
        {
            "data_count": [1.0, 0.0, 2.0, 1.0, 0.0, 3.0],
            "data_volume": [0.0, 0.0, 4.0, 0.0, 0.0, np.nan],
            "calls": [0.0, 1.0, 1.0, 2.0, 2.0, 0.0],
        }
    )
    ids = np.array([0, 0, 0, 1, 1, 1])
    partners = {"data_volume": "data_count", "data_count": "data_volume", "calls": None}

    shares = zero_shares(frame, ["data_volume", "data_count", "calls"], ids, 2, partners)

    # Chunk 0: the volume is 0 beside a count of 1 on one row of three (the other zero row is
    # a quiet subscriber); chunk 1: one of its two known volumes.
    assert math.isclose(shares["data_volume"][0], 1 / 3)
    assert math.isclose(shares["data_volume"][1], 1 / 2)
    # A count of 0 is never contradicted here: its volume is 0 too.
    assert shares["data_count"].tolist() == [0.0, 0.0]
    assert math.isclose(shares["calls"][0], 1 / 3)
    assert math.isclose(shares["calls"][1], 1 / 3)
    plain = zero_shares(frame, ["data_volume"], ids, 2)
    assert math.isclose(plain["data_volume"][0], 2 / 3)
