"""`switchyard output` / `switchyard export`, their AGI snippets and the Export button's writer: one path."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from switchyard import cli, export
from switchyard.app import AppEnv
from switchyard.runs.store import RunStore

from .test_export import completed_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Two completed runs of flight (real store, real Parquet outputs): (app_env, old id, new id)."""
    home = tmp_path / "home"
    monkeypatch.setenv("SWITCHYARD_HOME", str(home))
    monkeypatch.setenv("SWITCHYARD_APPS", str(REPO / "apps"))
    monkeypatch.delenv("SWITCHYARD_EXPORT", raising=False)
    store = RunStore(home / "switchyard.db")
    ids = []
    for i, n in enumerate((5, 30)):
        df = pd.DataFrame({"flight_id": [f"F{k}" for k in range(n)], "speed_kmh": [k * 1.5 for k in range(n)],
                           "latitude": [float(k) for k in range(n)]})
        path = tmp_path / f"r{i}" / "segments.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
        ids.append(completed_run(store, "flight", path, now=1000.0 + i * 100))
    return AppEnv("flight", apps_dir=REPO / "apps"), ids[0], ids[1]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_output_shows_what_load_data_shows(runs, capsys):
    app_env, old, new = runs
    code, out, _ = run_cli(capsys, "output", "flight", "--rows", "3", "--json")
    doc = json.loads(out)
    assert code == 0 and set(doc) >= {"path", "rows", "columns", "dtypes", "head"}
    assert doc["run"] == new and doc["rows"] == 30 and len(doc["head"]) == 3
    assert doc["columns"] == ["flight_id", "speed_kmh", "latitude"] and doc["dtypes"]["speed_kmh"] == "float64"
    page = export.preview(app_env, rows=3)  # LOAD DATA's call
    assert export.preview_dict(page) == doc
    code, out, _ = run_cli(capsys, "output", "flight", "--run", old, "--json")
    assert json.loads(out)["rows"] == 5
    code, out, _ = run_cli(capsys, "output", "flight", "--rows", "2")
    assert code == 0 and "30 rows, 3 columns" in out and "F1" in out
    code, _, err = run_cli(capsys, "output", "flight", "--run", "20990101-000000-abcdef")
    assert code == 2 and err.count("\n") == 1 and "20990101-000000-abcdef" in err


def test_export_writes_the_buttons_file_and_names_a_bad_column(runs, capsys, tmp_path):
    app_env, old, new = runs
    # what the Export button writes for the same choice
    button = export.write_export(app_env, ["flight_id", "speed_kmh"], source=export.output_of(app_env)[1],
                                 run_id=new)
    by_button = button.read_bytes()
    button.unlink()
    code, out, _ = run_cli(capsys, "export", "flight", "--columns", "flight_id,speed_kmh", "--json",
                           "--output", str(tmp_path / "copy.csv"))
    doc = json.loads(out)
    assert code == 0 and doc["columns"] == ["flight_id", "speed_kmh"]
    assert Path(doc["path"]).read_bytes() == by_button == (tmp_path / "copy.csv").read_bytes()
    assert json.loads(Path(doc["lineage"]).read_text())["run_id"] == new
    assert Path(doc["output"] + ".lineage.json").is_file()
    code, out, _ = run_cli(capsys, "export", "flight", "--all", "--run", old, "--json")
    assert pd.read_csv(json.loads(out)["path"]).shape == (5, 3)
    code, out, err = run_cli(capsys, "export", "flight", "--columns", "flight_id,altitude")
    assert code == 2 and err.count("\n") == 1
    assert "'altitude'" in err and "flight_id, speed_kmh, latitude" in err
    # the snippets the page shows run the same calls
    ns: dict = {}
    exec(export.export_snippet(app_env, ["latitude"], old), ns)
    assert pd.read_csv(ns["path"]).columns.tolist() == ["latitude"] and len(pd.read_csv(ns["path"])) == 5
    exec(export.load_data_snippet(app_env, rows=4), ns)
    assert ns["preview"].rows == 30 and len(ns["preview"].head) == 4
