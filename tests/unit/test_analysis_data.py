"""Loading files for analysis: workspace confinement, formats, encodings and clear refusals."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from switchyard.analysis.data import AnalysisError, load_table, resolve_path, sniff_delimiter


def mixed_frame(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "value": rng.normal(size=n),
        "count": rng.integers(0, 100, n),
        "group": rng.choice(["north", "south", "east"], n),
        "note": [f"row {i}" for i in range(n)],
        "when": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
        "latitude": rng.uniform(40, 50, n),
        "longitude": rng.uniform(-5, 10, n),
    })


def test_csv_columns_get_kinds_and_iso_timestamps_parse(workspace):
    path = workspace / "export" / "demo" / "export.csv"
    path.parent.mkdir(parents=True)
    mixed_frame().to_csv(path, index=False)
    data = load_table(path)
    assert (data.rows, len(data.columns)) == (300, 7)
    assert data.kinds == {"value": "numeric", "count": "numeric", "group": "category", "note": "text",
                          "when": "datetime", "latitude": "numeric", "longitude": "numeric"}
    assert data.file_bytes == path.stat().st_size
    assert list(data.dtypes()["column"]) == data.columns


def test_parquet_and_relative_paths_load(workspace):
    path = workspace / "runs" / "r1" / "output" / "out.parquet"
    path.parent.mkdir(parents=True)
    mixed_frame(50).to_parquet(path)
    data = load_table("runs/r1/output/out.parquet")
    assert data.path == path.resolve()
    assert data.rows == 50 and data.kinds["when"] == "datetime"


def test_paths_outside_the_workspace_are_refused(workspace, tmp_path):
    outside = tmp_path / "secret.csv"
    outside.write_text("a,b\n1,2\n")
    with pytest.raises(AnalysisError, match="outside the workspace"):
        load_table(outside)
    with pytest.raises(AnalysisError, match="outside the workspace"):
        resolve_path("../secret.csv")
    link = workspace / "link.csv"
    os.symlink(outside, link)  # a symlink inside pointing outside is refused too
    with pytest.raises(AnalysisError, match="outside the workspace"):
        load_table(link)


@pytest.mark.parametrize("content, expected", [
    (b"", "is empty"),
    (b"a,b,c\n", "no rows"),
    (b"a,b\n1,caf\xe9\n2,ok\n", r"not utf-8 text \(byte 0xE9 on line 2\)"),
    (b"a,b\n1,2\n3,4,5\n", "cannot be read as CSV"),
])
def test_bad_csv_files_give_one_clear_message(workspace, content, expected):
    path = workspace / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(AnalysisError, match=expected) as info:
        load_table(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_latin1_file_loads_when_its_encoding_is_chosen(workspace):
    path = workspace / "latin.csv"
    path.write_bytes("city,n\nBézier,1\nNîmes,2\n".encode("latin-1"))
    data = load_table(path, encoding="latin-1")
    assert list(data.frame["city"]) == ["Bézier", "Nîmes"]


def test_missing_file_and_unknown_type_are_named(workspace):
    with pytest.raises(AnalysisError, match="does not exist"):
        load_table("export/none/export.csv")
    (workspace / "sheet.xlsx").write_bytes(b"PK")
    with pytest.raises(AnalysisError, match="cannot read '.xlsx' files"):
        load_table("sheet.xlsx")


def test_one_column_file_loads_with_a_note_and_semicolons_are_sniffed(workspace):
    (workspace / "one.csv").write_text("speed\n1\n2\n3\n")
    data = load_table("one.csv")
    assert data.columns == ["speed"] and "one column" in data.notes[0]
    (workspace / "semi.csv").write_text("a;b;c\n1;2;x\n")
    assert load_table("semi.csv").columns == ["a", "b", "c"]
    assert sniff_delimiter("a\tb\tc") == "\t" and sniff_delimiter("single") == ","


def test_plots_sample_above_the_configured_rows_and_say_so(workspace):
    path = workspace / "big.parquet"
    mixed_frame(1000).to_parquet(path)
    data = load_table(path, sample_rows=200)
    assert len(data.plot_frame) == 200 and data.plot_frame.index.is_monotonic_increasing
    assert data.sample_note == "random sample of 200 of 1,000 rows"
    assert load_table(path, sample_rows=1000).sample_note is None
    other = data.with_sample_rows(500)  # another sample size: same table, its own sample, kept
    assert other.frame is data.frame and len(other.plot_frame) == 500 and data.with_sample_rows(500) is other
    with pytest.raises(AnalysisError, match="sample_rows"):
        load_table(path, sample_rows=5)
