"""Checking and preparing prediction frames: codes for categories, clear errors for bad data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.compute.prepare import CategoryCodes, prepare_analysis, prepare_reference
from monitoring.compute.result import UNLABELLED_REFERENCE_ROWS
from monitoring.compute.spec import ColumnMapping
from monitoring.errors import InputError, InsufficientDataError


def test_codes_number_reference_values_in_order_and_unseen_values_after_them() -> None:
    codes = CategoryCodes.fit(pd.DataFrame({"plan": ["b", "a", None, "b"]}), ["plan"])

    encoded = codes.encode("plan", pd.Series(["a", "z", None, "b", "y", "z"]))

    assert encoded[[0, 1, 3, 4, 5]].tolist() == [0.0, 2.0, 1.0, 3.0, 2.0]
    assert np.isnan(encoded[2])


def test_a_category_dtype_encodes_like_its_values() -> None:
    codes = CategoryCodes.fit(pd.DataFrame({"plan": ["b", "a"]}), ["plan"])
    values = pd.Series(["a", "b", "c", None])

    assert np.array_equal(
        codes.encode("plan", values.astype("category")),
        codes.encode("plan", values),
        equal_nan=True,
    )


def test_the_prepared_reference_is_sorted_typed_and_labelled(
    reference: pd.DataFrame, mapping: ColumnMapping
) -> None:
    shuffled = reference.sample(frac=1.0, random_state=1)
    shuffled.loc[shuffled.index[:5], "churned"] = np.nan

    frame, _, warnings = prepare_reference(shuffled, mapping)

    assert frame["ts"].is_monotonic_increasing
    assert len(frame) == len(reference) - 5
    assert [w.code for w in warnings] == [UNLABELLED_REFERENCE_ROWS]
    assert frame.dtypes.astype(str).to_dict() == {
        "ts": "datetime64[ns]",
        "score": "float64",
        "churn_pred": "int8",
        "usage": "float32",
        "spend": "float32",
        "plan": "float32",
        "churned": "int8",
    }


def test_timestamps_may_be_iso_strings_or_time_zone_aware(
    analysis: pd.DataFrame, reference: pd.DataFrame, mapping: ColumnMapping
) -> None:
    _, codes, _ = prepare_reference(reference, mapping)
    as_text = analysis.assign(ts=analysis["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S"))
    as_utc = analysis.assign(ts=analysis["ts"].dt.tz_localize("Europe/Amsterdam"))

    from_text = prepare_analysis(as_text, mapping, codes)
    from_utc = prepare_analysis(as_utc, mapping, codes)

    assert from_text["ts"].iloc[0] == analysis["ts"].iloc[0].floor("s")
    assert from_utc["ts"].iloc[0] == analysis["ts"].iloc[0] - pd.Timedelta(hours=1)


def test_analysis_labels_are_optional(
    analysis: pd.DataFrame, reference: pd.DataFrame, mapping: ColumnMapping
) -> None:
    _, codes, _ = prepare_reference(reference, mapping)

    frame = prepare_analysis(analysis.drop(columns="churned"), mapping, codes)

    assert frame["churned"].isna().all()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["usage", "score"]), "no column 'score', 'usage'"),
        (lambda f: f.assign(score=f["score"] * 2), "'score' holds scores outside [0, 1]"),
        (lambda f: f.assign(score=np.nan), "rows have no 'score' score"),
        (lambda f: f.assign(churn_pred=2), "'churn_pred' holds values other than 0 and 1"),
        (lambda f: f.assign(churned="yes"), "'churned' holds values that are not numbers"),
        (lambda f: f.assign(usage="high"), "'usage' holds values that are not numbers"),
        (lambda f: f.assign(usage=np.inf), "'usage' holds infinite values"),
        (lambda f: f.assign(ts="yesterday"), "'ts' holds values that are not ISO 8601"),
        (lambda f: f.assign(ts=pd.NaT), "rows have no 'ts' timestamp"),
        (lambda f: f.assign(ts=1.5), "'ts' holds values that are not ISO 8601"),
    ],
)
def test_bad_reference_columns_are_input_errors(
    reference: pd.DataFrame, mapping: ColumnMapping, change: object, message: str
) -> None:
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        prepare_reference(change(reference), mapping)  # type: ignore[operator]


def test_a_reference_needs_labelled_rows_of_both_classes(
    reference: pd.DataFrame, mapping: ColumnMapping
) -> None:
    with pytest.raises(InsufficientDataError, match="no predictions"):
        prepare_reference(reference.iloc[:0], mapping)
    with pytest.raises(InsufficientDataError, match="has a 'churned' label"):
        prepare_reference(reference.assign(churned=np.nan), mapping)
    with pytest.raises(InsufficientDataError, match="every reference label 'churned' is 1"):
        prepare_reference(reference.assign(churned=1.0), mapping)


def test_a_reference_feature_without_values_is_an_insufficient_data_error(
    reference: pd.DataFrame, mapping: ColumnMapping
) -> None:
    with pytest.raises(InsufficientDataError, match="no value of feature 'plan'"):
        prepare_reference(reference.assign(plan=None), mapping)
