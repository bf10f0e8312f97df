"""CSV validation: required and unknown columns, malformed values, NULL-filled usage."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from db.schema import CDR_COLUMNS
from ingest.sources import SourceFormatError, parse_gs_uri, read_cdr_csv, validate_cdr_frame

HEADER = ",".join(CDR_COLUMNS)
GOOD = [
    "2024-01-01,27710000001,3,5.5,2,4.0,1,0,4,120.25,0",
    "2024-01-02 13:45:00,027710000002,0,0,1,2.5,0,3,0,0,1",
]


def _csv(tmp_path: Path, lines: list[str], name: str = "cdr.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_full_file_is_typed(tmp_path: Path) -> None:
    validated = read_cdr_csv(_csv(tmp_path, [HEADER, *GOOD]))
    frame = validated.frame
    assert list(frame.columns) == list(CDR_COLUMNS)
    assert frame["DP_DATE"].tolist() == [
        pd.Timestamp("2024-01-01"),
        pd.Timestamp("2024-01-02 13:45"),
    ]
    assert frame["DP_MSISDN"].tolist() == ["27710000001", "027710000002"]  # leading 0 kept
    assert frame["DP_MOC_COUNT"].tolist() == [3, 0]
    assert frame["DP_DATA_VOLUME"].tolist() == [120.25, 0.0]
    assert frame["PSEUDO_CHURNED"].tolist() == [0, 1]
    assert validated.missing_usage_columns == ()


def test_gzipped_file(tmp_path: Path) -> None:
    path = tmp_path / "cdr.csv.gz"
    path.write_bytes(gzip.compress(("\n".join([HEADER, *GOOD]) + "\n").encode()))
    assert len(read_cdr_csv(path).frame) == 2


def test_missing_usage_columns_become_null_and_are_reported(tmp_path: Path) -> None:
    validated = read_cdr_csv(
        _csv(tmp_path, ["dp_date, DP_MSISDN ,DP_MOC_COUNT", "2024-01-01,1,7", "2024-01-02,2,"])
    )
    frame = validated.frame
    assert "DP_DATA_VOLUME" in validated.missing_usage_columns
    assert "DP_MOC_COUNT" not in validated.missing_usage_columns
    assert frame["DP_DATA_VOLUME"].isna().all() and frame["PSEUDO_CHURNED"].isna().all()
    assert frame["DP_MOC_COUNT"].iloc[0] == 7 and pd.isna(frame["DP_MOC_COUNT"].iloc[1])


def test_id_column_of_a_table_dump_is_ignored(tmp_path: Path) -> None:
    validated = read_cdr_csv(_csv(tmp_path, ["id,DP_DATE,DP_MSISDN", "17,2024-01-01,1"]))
    assert validated.ignored_columns == ("id",)
    assert "id" not in validated.frame.columns


def test_unknown_columns_are_named(tmp_path: Path) -> None:
    path = _csv(tmp_path, ["DP_DATE,DP_MSISDN,CELL_ID,Region", "2024-01-01,1,7,x"])
    with pytest.raises(SourceFormatError, match=r"unknown column\(s\) 'CELL_ID', 'Region'"):
        read_cdr_csv(path)


def test_required_columns(tmp_path: Path) -> None:
    with pytest.raises(SourceFormatError, match=r"required column\(s\) missing: DP_MSISDN"):
        read_cdr_csv(_csv(tmp_path, ["DP_DATE,DP_MOC_COUNT", "2024-01-01,1"]))


@pytest.mark.parametrize(
    ("line", "column", "shown"),
    [
        ("2024-25-26,1,1,1.0", "DP_DATE", "'2024-25-26'"),
        (",1,1,1.0", "DP_DATE", "(empty)"),
        ("2024-01-01,,1,1.0", "DP_MSISDN", "(empty)"),
        ("2024-01-01,1,three,1.0", "DP_MOC_COUNT", "'three'"),
        ("2024-01-01,1,-2,1.0", "DP_MOC_COUNT", "'-2'"),
        ("2024-01-01,1,1.5,1.0", "DP_MOC_COUNT", "'1.5'"),
        ("2024-01-01,1,1,-0.5", "DP_MOC_DURATION", "'-0.5'"),
        ("2024-01-01,1,1,nan", "DP_MOC_DURATION", "'nan'"),
    ],
)
def test_malformed_values_name_column_and_row(
    tmp_path: Path, line: str, column: str, shown: str
) -> None:
    path = _csv(tmp_path, ["DP_DATE,DP_MSISDN,DP_MOC_COUNT,DP_MOC_DURATION", GOOD[0][:0] + line])
    with pytest.raises(SourceFormatError) as error:
        read_cdr_csv(path)
    message = str(error.value)
    assert f"{column} has 1 bad value(s)" in message and f"row 2: {shown}" in message


def test_every_malformed_column_is_reported_at_once() -> None:
    raw = pd.DataFrame(
        {"DP_DATE": ["x", "2024-01-01"], "DP_MSISDN": ["1", "2"], "PSEUDO_CHURNED": ["2", "1"]}
    )
    with pytest.raises(SourceFormatError) as error:
        validate_cdr_frame(raw)
    assert "DP_DATE has 1" in str(error.value) and "PSEUDO_CHURNED has 1" in str(error.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [("", "empty"), (HEADER + "\n", "no rows")],
)
def test_empty_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "e.csv"
    path.write_text(content)
    with pytest.raises(SourceFormatError, match=expected):
        read_cdr_csv(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceFormatError, match="no such file"):
        read_cdr_csv(tmp_path / "absent.csv")


def test_gs_uri() -> None:
    assert parse_gs_uri("gs://my-bucket/raw/RawData.csv.gz") == ("my-bucket", "raw/RawData.csv.gz")
    for bad in ("gs://bucket", "s3://b/o", "gs:///o"):
        with pytest.raises(SourceFormatError, match="not a gs://bucket/object"):
            parse_gs_uri(bad)
