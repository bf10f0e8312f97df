"""Vectorised realized metrics agree with scikit-learn; the estimate-vs-realized rule."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from monitoring.compute.realized import estimate_realized_alerts, realized_performance


def test_realized_metrics_match_scikit_learn_per_chunk_with_ties_and_missing_labels() -> None:
    rng = np.random.default_rng(3)
    rows, chunks = 3000, 5
    ids = np.sort(rng.integers(0, chunks, rows))
    scores = np.round(rng.uniform(0, 1, rows), 1)  # many ties
    truth = rng.binomial(1, scores).astype(float)
    truth[rng.uniform(0, 1, rows) < 0.3] = np.nan
    decisions = (scores >= 0.5).astype(np.int8)

    realized = realized_performance(ids, chunks, truth, scores, decisions)

    for chunk in range(chunks):
        rows_of_chunk = (ids == chunk) & ~np.isnan(truth)
        y, p, d = truth[rows_of_chunk], scores[rows_of_chunk], decisions[rows_of_chunk]
        assert realized.labelled_rows[chunk] == rows_of_chunk.sum()
        assert math.isclose(realized.metrics["roc_auc"][chunk], roc_auc_score(y, p))
        assert math.isclose(realized.metrics["f1"][chunk], f1_score(y, d))
        assert math.isclose(realized.metrics["accuracy"][chunk], accuracy_score(y, d))


def test_undefined_metrics_are_nan() -> None:
    ids = np.array([0, 0, 1, 1])
    truth = np.array([0.0, 0.0, np.nan, np.nan])  # chunk 0 single class, chunk 1 unlabelled
    scores = np.array([0.2, 0.4, 0.5, 0.6])
    decisions = np.array([0, 0, 1, 1])

    realized = realized_performance(ids, 2, truth, scores, decisions)

    assert np.isnan(realized.metrics["roc_auc"]).all()
    assert np.isnan(realized.metrics["f1"][0])  # no positive label nor decision
    assert realized.metrics["accuracy"].tolist()[0] == 1.0
    assert np.isnan(realized.metrics["accuracy"][1])
    assert realized.labelled_rows.tolist() == [2, 0]


def test_estimate_and_realized_disagree_beyond_three_sampling_errors_of_the_labelled_rows() -> None:
    estimate = np.array([0.80, 0.80, 0.80, 0.80, 0.80])
    realized = np.array([0.78, 0.74, 0.75, np.nan, 0.70])
    sampling_error = np.array([0.01, 0.01, 0.01, 0.01, np.nan])
    rows = np.array([1000.0, 1000.0, 1000.0, 1000.0, 1000.0])
    labelled = np.array([1000.0, 1000.0, 250.0, 0.0, 1000.0])

    flags = estimate_realized_alerts(estimate, realized, sampling_error, rows, labelled)

    # 0.02 < 3 * 0.01; 0.06 > 0.03; on a quarter of the rows labelled the tolerance doubles:
    # 0.05 < 3 * 0.01 * sqrt(4); no realized value; no sampling error.
    assert flags == [False, True, False, None, None]
