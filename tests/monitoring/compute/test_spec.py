"""The column mapping and chunking models: what they accept and how they name what they refuse."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from config.web import validation_error
from monitoring.compute.spec import Chunking, ColumnMapping

VALID: dict[str, Any] = {
    "y_true": "churned",
    "y_pred_proba": "score",
    "y_pred": "churn_pred",
    "timestamp": "ts",
    "id": "msisdn",
    "features": ["usage", "plan"],
    "categorical": ["plan"],
}


def _message(**changes: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        ColumnMapping.model_validate({**VALID, **changes})
    return validation_error(caught.value).message


def test_a_valid_mapping_splits_features_by_declared_type() -> None:
    mapping = ColumnMapping.model_validate(VALID)

    assert mapping.continuous == ["usage"]
    assert mapping.categorical == ["plan"]


def test_id_and_categorical_are_optional() -> None:
    mapping = ColumnMapping.model_validate(
        {key: value for key, value in VALID.items() if key not in ("id", "categorical")}
    )

    assert mapping.id is None
    assert mapping.continuous == ["usage", "plan"]


def test_an_unknown_key_is_named() -> None:
    assert _message(featurs=["usage"]) == "featurs is not a recognised field"


def test_a_missing_key_is_named() -> None:
    with pytest.raises(ValidationError) as caught:
        ColumnMapping.model_validate({k: v for k, v in VALID.items() if k != "y_pred_proba"})

    assert validation_error(caught.value).message == "y_pred_proba is required"


def test_categorical_must_be_features() -> None:
    assert "categorical ['region'] are not listed in features" in _message(categorical=["region"])


def test_a_column_cannot_play_two_roles() -> None:
    assert "two roles" in _message(y_pred="score")
    assert "also label, score, timestamp or id" in _message(features=["usage", "ts"])


def test_features_must_not_repeat_or_be_empty() -> None:
    assert "more than once" in _message(features=["usage", "usage"], categorical=[])
    assert _message(features=[], categorical=[]).startswith("features ")


def test_wrong_types_name_the_key() -> None:
    assert _message(features="usage").startswith("features ")


def test_chunking_defaults_to_days() -> None:
    assert Chunking().describe() == {"period": "D"}


def test_a_size_replaces_the_default_period() -> None:
    assert Chunking(size=5000).describe() == {"size": 5000}


@pytest.mark.parametrize(
    "fields",
    [{"period": "D", "size": 10}, {"period": None}, {"period": "Q"}, {"size": 0}, {"every": 3}],
)
def test_chunking_refuses_anything_but_one_period_or_one_size(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Chunking.model_validate(fields)
