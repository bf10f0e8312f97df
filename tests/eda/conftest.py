"""Fixtures of the EDA tests: one small generated history, in memory and in the database."""

from __future__ import annotations

import pandas as pd
import pytest

from config.settings import Settings
from db.eda_queries import DAILY_COUNT_COLUMNS, FEATURE_NAMES, FEATURES, LABEL
from ingest.generator import GeneratorConfig, generate_cdr
from ingest.seeding import seed_from_generator

SMALL = GeneratorConfig(subscribers=60, days=20)  # 2024-01-01 to 2024-01-20


@pytest.fixture(scope="session")
def raw_rows() -> pd.DataFrame:
    """The rows `seeded` loads, with the raw table's column names."""
    return generate_cdr(SMALL)


@pytest.fixture(scope="session")
def eda_rows(raw_rows: pd.DataFrame) -> pd.DataFrame:
    """The same rows as the EDA reads them: the features and the label, by their EDA names."""
    frame = raw_rows.rename(columns={**FEATURES, "PSEUDO_CHURNED": LABEL})
    return frame[[*FEATURE_NAMES, LABEL]].astype("float64")


@pytest.fixture(scope="session")
def pandas_daily(raw_rows: pd.DataFrame) -> pd.DataFrame:
    """Daily totals of `raw_rows` computed by pandas, in the layout of `daily_totals`."""
    frame = raw_rows.rename(columns=FEATURES)
    by_day = frame.groupby(frame["DP_DATE"].dt.normalize().rename("day"))
    totals = pd.DataFrame(
        {
            "cdr_rows": by_day.size(),
            "subscribers": by_day["DP_MSISDN"].nunique(),
            "churn_label_rows": by_day["PSEUDO_CHURNED"].apply(lambda s: int((s == 1).sum())),
            "unlabelled_rows": by_day["PSEUDO_CHURNED"].apply(lambda s: int(s.isna().sum())),
        }
    )
    sums = by_day[list(FEATURE_NAMES)].sum(min_count=1).astype("float64")
    return pd.concat([totals, sums], axis=1).reset_index()[
        ["day", *DAILY_COUNT_COLUMNS, *FEATURE_NAMES]
    ]


@pytest.fixture(scope="module")
def seeded(module_db_settings: Settings) -> Settings:
    """A database of this module's own holding `SMALL`."""
    seed_from_generator(module_db_settings, SMALL, progress=False)
    return module_db_settings
