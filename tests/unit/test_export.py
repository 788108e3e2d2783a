"""Run output preview and export.csv: real Parquet/CSV files and a real run store."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from switchyard import export
from switchyard.app import AppEnv
from switchyard.runs.store import RunStore


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    monkeypatch.delenv("SWITCHYARD_EXPORT", raising=False)
    return AppEnv("flight", apps_dir=tmp_path / "apps", workspace=tmp_path / "home")


def frame(n: int = 50) -> pd.DataFrame:
    return pd.DataFrame({"aircraft": [f"A{i % 3}" for i in range(n)], "latitude": [i * 0.5 for i in range(n)],
                         "longitude": [-i * 0.25 for i in range(n)], "speed_kmh": list(range(n))})


def parquet(path: Path, df: pd.DataFrame, row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=row_group_size)
    return path


def completed_run(store: RunStore, app: str, output: Path, now: float) -> str:
    oid = store.create_orchestration(kind="app", app=app, mode=4, args={}, workers={"127.0.0.1": 1},
                                     scheduler=None, plan_fingerprint=None, run_dir=str(output.parent),
                                     batches=[{"name": "p0"}], now=now)
    store.command(oid, "start", now=now)
    store.set_output(oid, str(output), 1.5)
    store.command(oid, "complete", now=now + 1)
    return oid


def test_preview_reads_head_count_and_dtypes_across_row_groups(tmp_path):
    path = parquet(tmp_path / "out.parquet", frame(50), row_group_size=7)
    p = export.preview(AppEnv("x", workspace=tmp_path), rows=20, path=path)
    assert p.rows == 50 and len(p.head) == 20
    assert p.columns == ["aircraft", "latitude", "longitude", "speed_kmh"]
    assert p.dtypes["speed_kmh"] == "int64" and p.dtypes["latitude"] == "float64"
    assert p.head["speed_kmh"].tolist() == list(range(20))


def test_latest_output_is_the_newest_completed_run_of_the_app(app_env, tmp_path):
    store = RunStore(app_env.home / "switchyard.db")
    old = parquet(tmp_path / "r1" / "out.parquet", frame(5))
    new = parquet(tmp_path / "r2" / "out.parquet", frame(9))
    completed_run(store, "flight", old, now=1000.0)
    oid = completed_run(store, "flight", new, now=2000.0)
    completed_run(store, "other", parquet(tmp_path / "r3" / "o.parquet", frame(2)), now=3000.0)
    assert export.latest_output(app_env, store) == (oid, new)
    p = export.preview(app_env, store=store)
    assert (p.orchestration_id, p.rows) == (oid, 9)


def test_no_completed_run_says_to_run_first(app_env):
    with pytest.raises(export.ExportError, match="app 'flight' has no completed run with an output yet: RUN"):
        export.preview(app_env)


def test_a_vanished_output_is_named(app_env, tmp_path):
    store = RunStore(app_env.home / "switchyard.db")
    out = parquet(tmp_path / "r" / "out.parquet", frame(3))
    oid = completed_run(store, "flight", out, now=1.0)
    out.unlink()
    with pytest.raises(export.ExportError, match=f"the output of run {oid} .* is gone"):
        export.latest_output(app_env, store)


def test_export_writes_exactly_the_chosen_columns_in_order(app_env, tmp_path):
    src = parquet(tmp_path / "out.parquet", frame(12))
    path = export.write_export(app_env, ["longitude", "latitude"], source=src)
    assert path == app_env.home / "export" / "flight" / "export.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["longitude", "latitude"] and len(rows) == 13
    assert rows[2] == ["-0.25", "0.5"]
    # no temp file left behind; the lineage sidecar says where the export came from
    assert sorted(p.name for p in path.parent.iterdir()) == ["export.csv", "export.csv.lineage.json"]


def test_export_dir_can_be_overridden(app_env, tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_EXPORT", str(tmp_path / "elsewhere"))
    src = parquet(tmp_path / "out.parquet", frame(3))
    path = export.write_export(app_env, ["aircraft"], source=src)
    assert path == (tmp_path / "elsewhere" / "flight" / "export.csv").resolve()


@pytest.mark.parametrize("columns, message", [
    (["latitude", "altitude"], "column 'altitude' is not in the run output: choose from aircraft, latitude"),
    ([], "no columns chosen"),
    (["latitude", "latitude"], "column 'latitude' is chosen twice"),
])
def test_a_bad_column_choice_is_refused_and_nothing_is_written(app_env, tmp_path, columns, message):
    src = parquet(tmp_path / "out.parquet", frame(3))
    target = export.export_path(app_env)
    target.parent.mkdir(parents=True)
    target.write_text("previous\n")
    with pytest.raises(export.ExportError, match=message):
        export.write_export(app_env, columns, source=src)
    assert target.read_text() == "previous\n"


def test_csv_and_json_lines_outputs_are_read_too(tmp_path):
    df = frame(6)
    df.to_csv(tmp_path / "out.csv", index=False)
    df.to_json(tmp_path / "out.jsonl", orient="records", lines=True)
    for name in ("out.csv", "out.jsonl"):
        p = export.preview(AppEnv("x", workspace=tmp_path), rows=4, path=tmp_path / name)
        assert p.rows == 6 and len(p.head) == 4 and p.columns == list(df.columns)
    subset = export.read_output(tmp_path / "out.csv", columns=["latitude"])
    assert list(subset.columns) == ["latitude"]


def test_an_unknown_output_format_says_what_to_write(tmp_path):
    (tmp_path / "out.xlsx").write_bytes(b"not really")
    with pytest.raises(export.ExportError, match="cannot read '.xlsx' files: make the app's reduce"):
        export.read_output(tmp_path / "out.xlsx")


def test_a_corrupt_parquet_file_is_an_export_error(tmp_path):
    (tmp_path / "out.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(export.ExportError, match="cannot be read"):
        export.preview(AppEnv("x", workspace=tmp_path), path=tmp_path / "out.parquet")
