"""The run pipeline's steps, each on its own: `load_inputs` (database), `monitor` (pure),
`store` (database), and the JSON the edges build from the typed result."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from config.settings import Settings
from db.connection import connection
from db.monitoring import latest_run, stored_results
from monitoring.compute.result import MonitoringRun
from monitoring.compute.spec import Chunking, ColumnMapping
from monitoring.errors import InsufficientDataError
from monitoring.pipeline.runner import (
    STAGES,
    CompletedRun,
    MonitorInputs,
    ReportFiles,
    RunSpec,
    load_inputs,
    monitor,
    resolve_model,
    store,
)
from tests.monitoring.web.test_service import (
    ANALYSIS_DAYS,
    FEATURES,
    KNOWN_LABEL_DAYS,
    REFERENCE_DAYS,
    SUBSCRIBERS,
    TEST_SETTINGS,
    VERSION,
    populate,
)

STARTED = datetime(2024, 3, 1, 12, 0, 0)
FINISHED = datetime(2024, 3, 1, 12, 0, 5)
SPEC = RunSpec(chunking=Chunking(period="D"), min_chunk_rows=100)


def _inputs(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> MonitorInputs:
    return MonitorInputs("v1", mapping, reference, analysis, watermark_id=42)


def test_monitor_is_pure_and_stamps_the_run(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping
) -> None:
    run = monitor(
        _inputs(reference, analysis, mapping),
        SPEC,
        trigger="poller",
        started_at=STARTED,
        clock=lambda: FINISHED,
    )

    assert isinstance(run, MonitoringRun)
    assert (run.model_version, run.trigger, run.watermark_id) == ("v1", "poller", 42)
    assert (run.started_at, run.finished_at) == (STARTED, FINISHED)
    assert run.chunking == "period=D"
    assert run.result.analysis_rows == len(analysis)
    assert len(run.result.chunks) == 8
    with pytest.raises(AttributeError):
        run.watermark_id = 0  # type: ignore[misc]  # frozen


@pytest.mark.parametrize("empty", ["reference", "analysis"])
def test_monitor_refuses_inputs_without_predictions(
    reference: pd.DataFrame, analysis: pd.DataFrame, mapping: ColumnMapping, empty: str
) -> None:
    frames = {"reference": reference, "analysis": analysis}
    frames[empty] = frames[empty].head(0)

    with pytest.raises(InsufficientDataError, match=f"no {empty} predictions"):
        monitor(
            _inputs(frames["reference"], frames["analysis"], mapping),
            SPEC,
            trigger="cli",
            started_at=STARTED,
        )


def test_run_spec_follows_the_settings(base_settings: Settings) -> None:
    sized = base_settings.model_copy(
        update={"monitoring_chunk_size": 500, "monitoring_min_chunk_rows": 50}
    )

    spec = RunSpec.from_settings(sized)

    assert spec.chunking == Chunking(size=500)
    assert spec.min_chunk_rows == 50
    assert spec.label_delay_days == base_settings.monitoring_label_delay_days
    assert spec.policy.direction == "lower"
    both = base_settings.model_copy(update={"monitoring_alert_direction": "both"})
    assert RunSpec.from_settings(both).policy.direction == "both"


def test_monitor_fits_a_version_once_and_reuses_it(
    reference: pd.DataFrame,
    analysis: pd.DataFrame,
    mapping: ColumnMapping,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import monitoring.compute.core as core

    fits = []
    fit_monitor = core.fit_monitor

    def counting(*args: Any, **kwargs: Any) -> Any:
        fits.append(args)
        return fit_monitor(*args, **kwargs)

    monkeypatch.setattr(core, "fit_monitor", counting)
    inputs = MonitorInputs("cache-test", mapping, reference, analysis, watermark_id=1)
    first = monitor(inputs, SPEC, trigger="cli", started_at=STARTED)
    again = monitor(inputs, SPEC, trigger="cli", started_at=STARTED)
    # A changed reference is a different fit, even under the same version.
    changed = MonitorInputs("cache-test", mapping, reference.iloc[100:], analysis, 1)
    monitor(changed, SPEC, trigger="cli", started_at=STARTED)

    assert len(fits) == 2
    assert again.result == first.result


@pytest.mark.slow
def test_load_inputs_then_monitor_then_store(db_settings: Settings, tmp_path: Path) -> None:
    settings = db_settings.model_copy(update=TEST_SETTINGS)
    populate(settings)

    with connection(settings) as conn:
        model = resolve_model(conn, None)
        inputs = load_inputs(conn, model, 7, settings.monitoring_label_delay_days)
        run = monitor(inputs, RunSpec.from_settings(settings), trigger="cli", started_at=STARTED)
        run_id = store(conn, run)
        stored = stored_results(conn, VERSION)
        row = latest_run(conn, VERSION)

    assert inputs.model_version == VERSION
    assert inputs.watermark_id == 7
    assert len(inputs.reference) == REFERENCE_DAYS * SUBSCRIBERS
    assert len(inputs.analysis) == ANALYSIS_DAYS * SUBSCRIBERS
    assert inputs.analysis["label"].notna().sum() == KNOWN_LABEL_DAYS * SUBSCRIBERS
    assert inputs.mapping.features == [feature["name"] for feature in FEATURES]
    assert row is not None and (row.run_id, row.watermark_id) == (run_id, 7)
    expected = pd.DataFrame(run.result.metric_rows())
    assert sorted(stored["estimate"]) == sorted(expected["estimate"])
    assert sorted(stored["lower_bound"]) == sorted(expected["lower_bound"])
    assert stored["chunk_rows"].tolist() == [SUBSCRIBERS] * len(stored)

    completed = CompletedRun(
        run_id,
        run,
        dict.fromkeys(STAGES, 0.5),
        ReportFiles(tmp_path / "r", {"metrics_csv": tmp_path / "r" / "metrics.csv"}),
    )
    body = completed.to_json(tmp_path)
    assert body["run_id"] == run_id
    assert body["report"] == {"folder": "r", "files": {"metrics_csv": "r/metrics.csv"}}
    assert body["run"]["started_at"] == "2024-03-01T12:00:00.000+00:00"
    assert body["summary"]["analysis_rows"] == ANALYSIS_DAYS * SUBSCRIBERS
