"""Checking prediction frames and putting them in the shape every calculator reads.

A prepared frame holds only the mapped columns, sorted by timestamp on a fresh RangeIndex:
timestamps as ``datetime64[ns]``, the score as float64, decisions as int8, labels as float32
(NaN: not known yet), continuous features as float32 and categorical features as float32 codes
(see `CategoryCodes`). float32 halves what NannyML copies per calculator, and its 7 significant
digits are far finer than any histogram or PCA used here.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitoring.compute.result import UNLABELLED_REFERENCE_ROWS, MonitoringWarning
from monitoring.compute.spec import ColumnMapping
from monitoring.errors import InputError, InsufficientDataError

REFERENCE = "reference"
ANALYSIS = "analysis"


@dataclass(frozen=True)
class CategoryCodes:
    """Numbers the values of each categorical feature: reference values first, in sorted order.

    NannyML's categorical methods only compare value counts, so numbering the values changes no
    statistic, while counting small numbers is much faster than sorting Python strings. A value
    the reference never saw gets a number after the reference's, so distinct unseen values stay
    distinct; a missing value stays NaN.

    Attributes:
        known: Per categorical feature, its distinct reference values; a value's code is its
            position.
    """

    known: dict[str, pd.Index]

    @classmethod
    def fit(cls, reference: pd.DataFrame, columns: list[str]) -> CategoryCodes:
        """Learn the reference values of ``columns``."""
        known = {}
        for name in columns:
            values = _distinct(reference[name].dropna())
            # Mixed types (e.g. 1 and "1") have no order: they keep their first-seen order.
            with contextlib.suppress(TypeError):
                values = values.sort_values()
            known[name] = values
        return cls(known)

    def encode(self, name: str, values: pd.Series) -> np.ndarray:
        """The float32 codes of ``values`` of feature ``name``."""
        row_codes, distinct = pd.factorize(values, use_na_sentinel=True)
        distinct_codes = self.known[name].get_indexer(_distinct(distinct)).astype(np.float32)
        unseen = distinct_codes < 0
        distinct_codes[unseen] = len(self.known[name]) + np.arange(int(unseen.sum()))
        codes = np.append(distinct_codes, np.float32(np.nan))
        # factorize marks missing values with -1, which picks the NaN appended last.
        return codes[row_codes]


def prepare_reference(
    reference: pd.DataFrame, mapping: ColumnMapping
) -> tuple[pd.DataFrame, CategoryCodes, list[MonitoringWarning]]:
    """Check the reference predictions and prepare them; drop rows without a label.

    Returns:
        The prepared frame (labels as int8), the categorical codes learnt from it, and a warning
        when unlabelled rows were dropped.

    Raises:
        InputError: A column is missing or holds unusable values.
        InsufficientDataError: No labelled predictions, a single class among the labels, or a
            feature without any value.
    """
    if reference.empty:
        raise InsufficientDataError("the reference holds no predictions")
    _require_columns(reference, [*_model_columns(mapping), mapping.y_true], REFERENCE)
    labels = _binary(reference[mapping.y_true], mapping.y_true, REFERENCE, allow_missing=True)
    labelled = ~np.isnan(labels)
    warnings = []
    if not labelled.all():
        unlabelled = int((~labelled).sum())
        warnings.append(
            MonitoringWarning(
                UNLABELLED_REFERENCE_ROWS,
                f"{unlabelled:,} of {len(labels):,} reference predictions have no "
                f"'{mapping.y_true}' and were left out of the reference",
            )
        )
        reference = reference.loc[labelled]
        labels = labels[labelled]
    if len(labels) == 0:
        raise InsufficientDataError(f"no reference prediction has a '{mapping.y_true}' label")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise InsufficientDataError(
            f"every reference label '{mapping.y_true}' is {int(classes[0])}: estimating "
            "performance needs both classes in the reference"
        )
    codes = CategoryCodes.fit(reference, mapping.categorical)
    columns = _model_columns_data(reference, mapping, codes, REFERENCE)
    empty = [name for name in mapping.features if np.isnan(columns[name]).all()]
    if empty:
        raise InsufficientDataError(
            f"the reference has no value of feature {', '.join(map(repr, empty))}: its drift "
            "has nothing to be measured against"
        )
    columns[mapping.y_true] = labels.astype(np.int8)
    return _sorted(pd.DataFrame(columns), mapping.timestamp), codes, warnings


def prepare_analysis(
    analysis: pd.DataFrame, mapping: ColumnMapping, codes: CategoryCodes
) -> pd.DataFrame:
    """Check the analysis predictions and prepare them; labels are optional (NaN: unknown).

    Raises:
        InputError: A column is missing or holds unusable values.
        InsufficientDataError: There are no predictions to analyse.
    """
    check_analysis(analysis, mapping)
    columns = _model_columns_data(analysis, mapping, codes, ANALYSIS)
    if mapping.y_true in analysis.columns:
        labels = _binary(analysis[mapping.y_true], mapping.y_true, ANALYSIS, allow_missing=True)
        columns[mapping.y_true] = labels.astype(np.float32)
    else:
        columns[mapping.y_true] = np.full(len(analysis), np.nan, dtype=np.float32)
    return _sorted(pd.DataFrame(columns), mapping.timestamp)


def check_analysis(analysis: pd.DataFrame, mapping: ColumnMapping) -> None:
    """The cheap checks of `prepare_analysis`: rows to analyse and the mapped columns.

    Raises:
        InputError: A mapped column is missing.
        InsufficientDataError: There are no predictions to analyse.
    """
    if analysis.empty:
        raise InsufficientDataError("there are no predictions to analyse")
    _require_columns(analysis, _model_columns(mapping), ANALYSIS)


def _model_columns(mapping: ColumnMapping) -> list[str]:
    return [mapping.timestamp, mapping.y_pred_proba, mapping.y_pred, *mapping.features]


def _require_columns(frame: pd.DataFrame, columns: list[str], frame_name: str) -> None:
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise InputError(f"the {frame_name} has no column {', '.join(map(repr, missing))}")


def _model_columns_data(
    source: pd.DataFrame, mapping: ColumnMapping, codes: CategoryCodes, frame_name: str
) -> dict[str, np.ndarray]:
    decisions = _binary(source[mapping.y_pred], mapping.y_pred, frame_name, allow_missing=False)
    columns = {
        mapping.timestamp: _timestamps(source[mapping.timestamp], mapping.timestamp, frame_name),
        mapping.y_pred_proba: _scores(source[mapping.y_pred_proba], mapping, frame_name),
        mapping.y_pred: decisions.astype(np.int8),
    }
    categorical = set(mapping.categorical)
    for name in mapping.features:
        if name in categorical:
            columns[name] = codes.encode(name, source[name])
        else:
            columns[name] = _continuous(source[name], name, frame_name)
    return columns


def _distinct(values: object) -> pd.Index:
    # Object dtype whatever the source (strings, numbers, a Categorical's values), so reference
    # and analysis values compare by value even when one file was read as a category.
    return pd.Index(np.asarray(pd.unique(np.asarray(values, dtype=object))), dtype=object)


def _sorted(frame: pd.DataFrame, timestamp: str) -> pd.DataFrame:
    # Predictions usually arrive in time order: then there is nothing to copy.
    if frame[timestamp].is_monotonic_increasing:
        return frame
    return frame.sort_values(timestamp, kind="stable", ignore_index=True)


def _timestamps(values: pd.Series, name: str, frame_name: str) -> np.ndarray:
    not_timestamps = InputError(
        f"the {frame_name} column '{name}' holds values that are not ISO 8601 timestamps"
    )
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.Series(values)
    elif pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise not_timestamps
    else:
        try:
            parsed = pd.to_datetime(values, format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise not_timestamps from exc
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    missing = int(parsed.isna().sum())
    if missing:
        raise InputError(f"{missing:,} {frame_name} rows have no '{name}' timestamp")
    return parsed.to_numpy(dtype="datetime64[ns]")


def _scores(values: pd.Series, mapping: ColumnMapping, frame_name: str) -> np.ndarray:
    name = mapping.y_pred_proba
    scores = _numbers(values, name, frame_name, np.float64)
    if np.isnan(scores).any():
        raise InputError(
            f"{int(np.isnan(scores).sum()):,} {frame_name} rows have no '{name}' score"
        )
    if scores.min() < 0 or scores.max() > 1:
        raise InputError(f"the {frame_name} column '{name}' holds scores outside [0, 1]")
    return scores


def _binary(values: pd.Series, name: str, frame_name: str, *, allow_missing: bool) -> np.ndarray:
    numbers = _numbers(values, name, frame_name, np.float64)
    present = numbers[~np.isnan(numbers)]
    if not allow_missing and len(present) < len(numbers):
        raise InputError(f"{len(numbers) - len(present):,} {frame_name} rows have no '{name}'")
    if not np.isin(present, (0.0, 1.0)).all():
        raise InputError(f"the {frame_name} column '{name}' holds values other than 0 and 1")
    return numbers


def _continuous(values: pd.Series, name: str, frame_name: str) -> np.ndarray:
    numbers = _numbers(values, name, frame_name, np.float32, hint=" (list it under categorical?)")
    if np.isinf(numbers).any():
        raise InputError(f"the {frame_name} feature '{name}' holds infinite values")
    return numbers


def _numbers(
    values: pd.Series, name: str, frame_name: str, dtype: type[np.floating], hint: str = ""
) -> np.ndarray:
    try:
        return values.to_numpy(dtype=dtype, na_value=np.nan)
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"the {frame_name} column '{name}' holds values that are not numbers{hint}"
        ) from exc
