"""`python -m monitoring run` in file mode, on NannyML's synthetic binary-classification dataset
(bundled with NannyML) and on broken inputs."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from config.settings import Settings
from monitoring.__main__ import _parser, main
from monitoring.compute.nannyml_loader import nml
from tests.config.cli_help import help_without_default
from tests.monitoring.frames import START, predictions

NANNYML_MAPPING: dict[str, Any] = {
    "y_true": "work_home_actual",
    "y_pred_proba": "y_pred_proba",
    "y_pred": "y_pred",
    "timestamp": "timestamp",
    "id": "id",
    "features": [
        "distance_from_office",
        "salary_range",
        "gas_price_per_litre",
        "public_transportation_cost",
        "wfh_prev_workday",
        "workday",
        "tenure",
    ],
    "categorical": ["salary_range", "wfh_prev_workday", "workday"],
}
SYNTHETIC_MAPPING: dict[str, Any] = {
    "y_true": "churned",
    "y_pred_proba": "score",
    "y_pred": "churn_pred",
    "timestamp": "ts",
    "features": ["usage", "spend", "plan"],
    "categorical": ["plan"],
}


def _strict(text: str) -> dict[str, Any]:
    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    parsed: dict[str, Any] = json.loads(text, parse_constant=refuse)
    return parsed


def _write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def nannyml_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """NannyML's dataset as files: reference as Parquet, analysis and its targets as CSV."""
    folder = tmp_path_factory.mktemp("nannyml")
    reference, analysis, targets = nml.load_synthetic_binary_classification_dataset()
    files = {
        "reference": folder / "reference.parquet",
        "analysis": folder / "analysis.csv",
        "targets": folder / "targets.csv",
        "mapping": _write_json(folder / "mapping.json", NANNYML_MAPPING),
    }
    reference.to_parquet(files["reference"])
    analysis.to_csv(files["analysis"], index=False)
    targets.to_csv(files["targets"], index=False)
    return files


@pytest.fixture(scope="module")
def nannyml_output(nannyml_files: dict[str, Path]) -> dict[str, Any]:
    """The JSON printed for NannyML's dataset in chunks of 5,000 predictions."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["run", *_file_args(nannyml_files), "--chunk-size", "5000", "--json"])
    assert status == 0
    return _strict(printed.getvalue())


@pytest.fixture
def synthetic_files(tmp_path: Path) -> dict[str, Path]:
    """Small synthetic reference and analysis CSV files and their mapping."""
    files = {
        "reference": tmp_path / "reference.csv",
        "analysis": tmp_path / "analysis.csv",
        "mapping": _write_json(tmp_path / "mapping.json", SYNTHETIC_MAPPING),
    }
    predictions(np.random.default_rng(7), 10, 400, START - pd.Timedelta(days=30)).to_csv(
        files["reference"], index=False
    )
    predictions(np.random.default_rng(8), 4, 400).to_csv(files["analysis"], index=False)
    return files


def _file_args(files: dict[str, Path]) -> list[str]:
    return [arg for role, path in files.items() for arg in (f"--{role}", str(path))]


def _run_error(args: list[str], capsys: pytest.CaptureFixture[str], expected: int = 2) -> str:
    """The one error line of a run that exits ``expected``: 2 for a usage or input mistake,
    1 for data that does not allow monitoring or nothing to monitor (`config.cli`)."""
    status = main(["run", *args])
    captured = capsys.readouterr()
    assert status == expected
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1, captured.err
    assert "Traceback" not in captured.err
    return captured.err.strip()


# Loading, writing and monitoring NannyML's 100k rows takes a few seconds, once per module.
SLOW_DATASET = pytest.mark.slow
DATASET_WARNING = pytest.mark.filterwarnings("ignore:path is deprecated:DeprecationWarning")


@SLOW_DATASET
@DATASET_WARNING
def test_estimated_roc_auc_tracks_the_realized_one_on_nannymls_dataset(
    nannyml_output: dict[str, Any],
) -> None:
    chunks = nannyml_output["metrics"]["roc_auc"]["chunks"]
    differences = [abs(chunk["estimate"] - chunk["realized"]) for chunk in chunks]

    assert len(chunks) == 10
    assert sum(differences) / len(differences) < 0.01


@SLOW_DATASET
@DATASET_WARNING
def test_nannymls_dataset_report_has_the_drift_nannyml_documents(
    nannyml_output: dict[str, Any],
) -> None:
    univariate = nannyml_output["drift"]["univariate"]
    # The second half of the analysis period moves these features and the performance.
    for feature in ("distance_from_office", "salary_range", "public_transportation_cost"):
        assert univariate[feature]["alerts"] >= 5
    assert univariate["tenure"]["alerts"] == 0
    assert univariate["salary_range"]["kind"] == "categorical"
    assert nannyml_output["drift"]["multivariate"]["alerts"] == 5
    roc_auc = nannyml_output["metrics"]["roc_auc"]
    assert [chunk["alert"] for chunk in roc_auc["chunks"]] == [False] * 5 + [True] * 5
    assert roc_auc["latest"] == roc_auc["chunks"][-1]
    assert nannyml_output["summary"]["labelled_rows"] == 50_000
    assert "total" not in nannyml_output["alerts"]
    assert sum(nannyml_output["alerts"].values()) > 0
    verdicts = [chunk["verdict"] for chunk in nannyml_output["chunks"]]
    assert verdicts[5:] == ["performance_degraded"] * 5


@SLOW_DATASET
@DATASET_WARNING
def test_the_json_has_every_documented_field(nannyml_output: dict[str, Any]) -> None:
    assert set(nannyml_output) == {
        "summary",
        "verdict",
        "verdicts",
        "chunks",
        "metrics",
        "drift",
        "data_quality",
        "alerts",
        "calibration",
        "warnings",
    }
    assert set(nannyml_output["metrics"]) == {"roc_auc", "f1", "accuracy"}
    chunk = nannyml_output["metrics"]["f1"]["chunks"][0]
    assert {"start", "end", "estimate", "lower_bound", "upper_bound", "realized", "alert"} <= set(
        chunk
    )
    assert chunk["start"] == "2017-08-31T04:20:00"
    assert set(nannyml_output["data_quality"]["unseen_values"]) == set(
        NANNYML_MAPPING["categorical"]
    )


def test_default_daily_chunks_without_targets(
    synthetic_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *_file_args(synthetic_files), "--chunk-period", "D", "--json"]) == 0

    output = _strict(capsys.readouterr().out)
    assert output["summary"]["chunking"] == {"period": "D"}
    assert [chunk["chunk_rows"] for chunk in output["metrics"]["accuracy"]["chunks"]] == [400] * 4


def test_nan_becomes_null(
    synthetic_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    analysis = pd.read_csv(synthetic_files["analysis"])
    analysis.loc[analysis["ts"] >= "2024-03-03", "churned"] = np.nan
    analysis.to_csv(synthetic_files["analysis"], index=False)

    assert main(["run", *_file_args(synthetic_files), "--json"]) == 0

    chunks = _strict(capsys.readouterr().out)["metrics"]["roc_auc"]["chunks"]
    assert [chunk["realized"] is None for chunk in chunks] == [False, False, True, True]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reference": "missing.csv"}, "missing.csv: no such file"),
        ({"analysis": "analysis.txt"}, "analysis.txt: expected a .csv or .parquet file"),
        ({"mapping": "missing.json"}, "missing.json: no such file"),
    ],
)
def test_missing_files_exit_2(
    synthetic_files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    message: str,
) -> None:
    files = {
        **synthetic_files,
        **{role: synthetic_files[role].with_name(name) for role, name in change.items()},
    }

    assert message in _run_error(_file_args(files), capsys)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({**SYNTHETIC_MAPPING, "featurs": []}, "featurs is not a recognised field"),
        ({**SYNTHETIC_MAPPING, "categorical": ["region"]}, "categorical ['region'] are not"),
        ({k: v for k, v in SYNTHETIC_MAPPING.items() if k != "y_pred"}, "y_pred is required"),
        (["not", "an", "object"], "the mapping must be a JSON object"),
    ],
)
def test_a_bad_mapping_exits_2_naming_the_key(
    synthetic_files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    mapping: object,
    message: str,
) -> None:
    _write_json(synthetic_files["mapping"], mapping)

    error = _run_error(_file_args(synthetic_files), capsys)

    assert error.startswith(f"error: {synthetic_files['mapping']}: ")
    assert message in error


def test_invalid_json_exits_2(
    synthetic_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    synthetic_files["mapping"].write_text("{", encoding="utf-8")

    assert "not valid JSON" in _run_error(_file_args(synthetic_files), capsys)


def test_missing_columns_exit_2(
    synthetic_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    analysis = pd.read_csv(synthetic_files["analysis"]).drop(columns=["spend"])
    analysis.to_csv(synthetic_files["analysis"], index=False)

    assert (
        _run_error(_file_args(synthetic_files), capsys)
        == "error: the analysis has no column 'spend'"
    )


def test_a_single_class_reference_exits_1(
    synthetic_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    reference = pd.read_csv(synthetic_files["reference"]).assign(churned=0)
    reference.to_csv(synthetic_files["reference"], index=False)

    error = _run_error(_file_args(synthetic_files), capsys, expected=1)
    assert "every reference label 'churned' is 0" in error


def test_too_few_rows_exit_1(
    synthetic_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    reference = pd.read_csv(synthetic_files["reference"]).head(200)
    reference.to_csv(synthetic_files["reference"], index=False)

    assert "200 labelled predictions; at least 300" in _run_error(
        _file_args(synthetic_files), capsys, expected=1
    )


def test_an_empty_analysis_exits_1(
    synthetic_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pd.read_csv(synthetic_files["analysis"]).head(0).to_csv(
        synthetic_files["analysis"], index=False
    )

    assert (
        _run_error(_file_args(synthetic_files), capsys, expected=1)
        == "error: there are no predictions to analyse"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--chunk-period", "Q"],
            "error: invalid chunking: period must be 'D', 'W' or 'M'",
        ),
        (["--chunk-period", "D", "--chunk-size", "10"], "not allowed with argument"),
        (["--chunk-size", "0"], "must be a positive whole number"),
        (["--model-version", "3"], "--model-version selects a model in database mode"),
    ],
)
def test_bad_options_exit_2(
    synthetic_files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    assert message in _run_error([*_file_args(synthetic_files), *extra], capsys)


def test_targets_need_an_id_in_the_mapping(
    synthetic_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    targets = synthetic_files["analysis"].with_name("targets.csv")
    pd.read_csv(synthetic_files["analysis"])[["churned"]].to_csv(targets, index=False)

    error = _run_error([*_file_args(synthetic_files), "--targets", str(targets)], capsys)

    assert error == "error: the mapping has no 'id' column to join the targets on"


def test_targets_are_joined_on_the_id(tmp_path: Path) -> None:
    from monitoring.compute.spec import ColumnMapping
    from monitoring.pipeline.files import join_targets

    mapping = ColumnMapping.model_validate({**SYNTHETIC_MAPPING, "id": "msisdn"})
    analysis = pd.DataFrame({"msisdn": [1, 2, 3], "churned": [0.0, np.nan, np.nan]})
    targets = pd.DataFrame({"msisdn": [3, 1], "churned": [1, 1]})

    joined = join_targets(analysis, targets, mapping)

    assert joined["churned"].tolist()[0::2] == [1.0, 1.0]
    assert np.isnan(joined["churned"].iloc[1])


def test_database_mode_names_what_is_missing(
    db_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DB_NAME", db_settings.db_name)
    assert "python -m spark_jobs model" in _run_error([], capsys, expected=1)
    assert "churn-x" in _run_error(["--model-version", "churn-x"], capsys, expected=1)
    assert _run_error(["--analysis", "a.csv"], capsys) == (
        "error: --analysis, --mapping, --targets and --output need --reference"
    )


def test_every_flag_s_help_shows_its_default() -> None:
    parser = _parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))

    assert help_without_default(parser) == []
    for name, command in commands.choices.items():
        assert help_without_default(command) == [], name


def test_help_shows_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: jensen_shannon)" in text
    assert main(["serve", "--help"]) == 0
    assert "(default: 4)" in " ".join(capsys.readouterr().out.split())


def test_a_mistyped_database_name_is_a_configuration_mistake(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DB_NAME", "my-db")

    error = _run_error([], capsys)

    assert "db_name" in error.lower() or "DB_NAME" in error


def test_a_missing_subcommand_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("error: the following arguments are required")


@pytest.mark.slow  # kaleido starts a headless Chromium for the PNGs
@pytest.mark.filterwarnings("ignore:setDaemon:DeprecationWarning")
def test_output_also_writes_the_report(
    synthetic_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "report"

    assert main(["run", *_file_args(synthetic_files), "--output", str(folder), "--json"]) == 0

    assert _strict(capsys.readouterr().out)["summary"]["chunks"] == 4
    assert (folder / "metrics.csv").is_file()
    assert (folder / "performance.png").is_file()


def test_an_unwritable_output_exits_1(
    synthetic_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "report"
    blocker.write_text("a file, not a folder", encoding="utf-8")

    assert main(["run", *_file_args(synthetic_files), "--output", str(blocker)]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: cannot write the report to {blocker}")


def test_run_prints_a_summary_table_by_default(
    synthetic_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *_file_args(synthetic_files)]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("monitoring: 1,600 predictions in 4 chunks (period D)")
    assert "performance alerts: on a drop only" in lines[0]
    assert lines[1].startswith("latest chunk 2024-03-04: ")
    assert lines[2].split() == [
        "metric",
        "chunks",
        "realized",
        "mean",
        "|est-real|",
        "latest",
        "estimate",
        "[bounds]",
        "alerts",
    ]
    assert [line.split()[0] for line in lines[3:6]] == ["roc_auc", "f1", "accuracy"]
    assert lines[6].startswith("alerts: estimated_performance ")
    assert lines[7].startswith("chunks: data_quality ")


def test_alert_direction_both_is_reported(
    synthetic_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *_file_args(synthetic_files), "--json", "--alert-direction", "both"]) == 0

    output = _strict(capsys.readouterr().out)
    assert output["summary"]["alert_direction"] == "both"
    roc_auc = output["metrics"]["roc_auc"]
    assert roc_auc["lower_threshold"] < roc_auc["upper_threshold"]
