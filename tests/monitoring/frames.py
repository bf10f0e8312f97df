"""Small synthetic prediction frames for the monitoring tests.

They imitate a calibrated churn model: two correlated continuous features and a plan,
a score that is the true churn probability, labels drawn from it. Tests then break one thing
(the labels, a feature, a value) in the later analysis chunks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2024-03-01")
PLANS = np.array(["prepaid", "postpaid", "family"])


def predictions(
    rng: np.random.Generator, days: int, rows_per_day: int, start: pd.Timestamp = START
) -> pd.DataFrame:
    """``days`` days of ``rows_per_day`` labelled predictions each, from ``start``.

    Columns: ts, usage, spend (0.8 correlated with usage), plan, score, churn_pred, churned.
    """
    rows = days * rows_per_day
    day = np.repeat(np.arange(days), rows_per_day)
    seconds = rng.integers(0, 86_400, rows)
    usage = rng.normal(0.0, 1.0, rows)
    spend = 0.8 * usage + 0.6 * rng.normal(0.0, 1.0, rows)
    plan = rng.choice(PLANS, rows, p=[0.5, 0.3, 0.2])
    logit = 1.6 * usage - 0.8 * spend + 0.7 * (plan == "prepaid") - 0.6
    score = 1.0 / (1.0 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "ts": start + pd.to_timedelta(day, unit="D") + pd.to_timedelta(seconds, unit="s"),
            "usage": usage,
            "spend": spend,
            "plan": plan,
            "score": score,
            "churn_pred": (score >= 0.5).astype(int),
            "churned": rng.binomial(1, score).astype(float),
        }
    )
    return frame.sort_values("ts", ignore_index=True)


def rescore(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """``frame`` with score, decision and label recomputed from its (changed) features."""
    logit = 1.6 * frame["usage"] - 0.8 * frame["spend"] + 0.7 * (frame["plan"] == "prepaid") - 0.6
    score = 1.0 / (1.0 + np.exp(-logit))
    return frame.assign(
        score=score,
        churn_pred=(score >= 0.5).astype(int),
        churned=rng.binomial(1, score).astype(float),
    )


def day_of(frame: pd.DataFrame) -> pd.Series:
    """Day number of each row since `START`."""
    return (frame["ts"] - START).dt.days
