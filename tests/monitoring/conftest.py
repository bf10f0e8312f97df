"""Fixtures of the monitoring tests: a mapping and small reference and analysis frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.compute.spec import ColumnMapping
from tests.monitoring.frames import START, predictions


@pytest.fixture
def mapping() -> ColumnMapping:
    """The roles of the synthetic frames' columns."""
    return ColumnMapping(
        y_true="churned",
        y_pred_proba="score",
        y_pred="churn_pred",
        timestamp="ts",
        features=["usage", "spend", "plan"],
        categorical=["plan"],
    )


@pytest.fixture
def reference() -> pd.DataFrame:
    """Ten days of 800 labelled predictions, the month before `START`."""
    return predictions(np.random.default_rng(7), 10, 800, START - pd.Timedelta(days=30))


@pytest.fixture
def analysis() -> pd.DataFrame:
    """Eight days of 800 labelled predictions from `START`."""
    return predictions(np.random.default_rng(8), 8, 800)
