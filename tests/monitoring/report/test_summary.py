"""The summary table of a run, from its compact or its full JSON."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitoring.compute.core import run_monitoring
from monitoring.compute.spec import Chunking, ColumnMapping
from monitoring.report.summary import summary_table
from tests.monitoring.frames import START, predictions


def test_the_compact_and_the_full_json_give_the_same_table(mapping: ColumnMapping) -> None:
    reference = predictions(np.random.default_rng(7), 10, 400, START - pd.Timedelta(days=30))
    analysis = predictions(np.random.default_rng(8), 6, 400)
    analysis.loc[analysis["ts"] >= START + pd.Timedelta(days=3), "usage"] += 3.0
    analysis.loc[analysis["ts"] >= START + pd.Timedelta(days=5), "churned"] = np.nan

    result = run_monitoring(reference, analysis, mapping, Chunking(period="D"))
    compact, full = summary_table(result.to_compact_json()), summary_table(result.to_json())

    assert compact == full
    lines = compact.splitlines()
    assert lines[0].startswith("monitoring: 2,400 predictions in 6 chunks (period D), 2,000")
    assert lines[1].startswith("latest chunk 2024-03-06: data_drift (univariate_drift:usage")
    roc_auc = lines[3].split()
    assert roc_auc[:3] == ["roc_auc", "6", "5"]
    assert lines[-2].startswith("chunks: data_quality 0, performance_degraded 0, data_drift ")
    assert lines[-1].startswith("drifted features (chunks in alert): usage (3)")
