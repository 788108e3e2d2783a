"""Lineage sidecars, and the [analysis] choices kept in app_settings.toml."""

from __future__ import annotations

import hashlib
import json

import pytest

from switchyard import lineage
from switchyard.analysis.data import DEFAULT_SAMPLE_ROWS, AnalysisError
from switchyard.analysis.prefs import load_prefs, save_prefs, save_view_choices
from switchyard.app import Partition
from switchyard.exceptions import SettingsError
from switchyard.runs.store import RunStore
from switchyard.settings import load_settings, update_section

from .test_analysis_runs import two_worker_run


def test_export_lineage_records_run_args_fingerprint_and_hashed_inputs(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    inputs = [data / "flight_0000.csv", data / "flight_0001.csv"]
    for i, p in enumerate(inputs):
        p.write_text(f"t,lat\n{i},45\n")
    output = tmp_path / "runs" / "r1" / "output" / "segments.parquet"
    output.parent.mkdir(parents=True)
    output.write_bytes(b"PAR1 not really")
    store = RunStore(tmp_path / "switchyard.db")
    oid = two_worker_run(store)
    found = lineage.inputs_from_items(data, [Partition("p0", 1.0, (("flight_0000.csv", 0, 5),)),
                                             Partition("p1", 1.0, (("flight_0001.csv", 0, 5), ("gone.csv", 0, 1)))])
    assert found == inputs
    side = lineage.write_run_lineage(output, store.get(oid), inputs=found, now=5.0)
    assert side.name == "segments.parquet.lineage.json"
    export = tmp_path / "export" / "flight" / "export.csv"
    export.parent.mkdir(parents=True)
    export.write_text("lat\n45\n")
    lineage.write_export_lineage(export, output, columns=["lat"])
    doc = lineage.read_lineage(export)
    assert (doc["schema"], doc["app"], doc["run_id"], doc["plan_fingerprint"]) == \
        (lineage.SCHEMA, "flight", oid, "abc")
    assert doc["args"] == {"files": 5} and doc["columns"] == ["lat"]
    assert [i["sha256"] for i in doc["inputs"]] == [hashlib.sha256(p.read_bytes()).hexdigest() for p in inputs]
    assert [i["size"] for i in doc["inputs"]] == [p.stat().st_size for p in inputs]
    assert doc["derived_from"][0]["path"] == str(output.resolve())
    assert doc["file"]["sha256"] == hashlib.sha256(b"lat\n45\n").hexdigest()
    assert lineage.lineage_state(export, doc) == "current"
    export.write_text("lat\n46\n47\n")
    assert lineage.lineage_state(export, doc) == "changed"


def test_missing_and_broken_sidecars(tmp_path):
    f = tmp_path / "x.csv"
    assert lineage.read_lineage(f) is None
    with pytest.raises(AnalysisError, match="does not exist"):
        lineage.write_lineage(f, app="a")
    f.write_text("a\n1\n")
    lineage.sidecar_path(f).write_text("{broken")
    with pytest.raises(AnalysisError, match="not readable JSON"):
        lineage.read_lineage(f)
    lineage.sidecar_path(f).write_text(json.dumps({"schema": "other"}))
    with pytest.raises(AnalysisError, match="not a lineage document"):
        lineage.read_lineage(f)
    lineage.write_lineage(f, app="a", inputs=[f], max_hash_bytes=1)
    doc = lineage.read_lineage(f)
    assert doc["inputs"][0]["sha256"] is None and "larger than 1 bytes" in doc["inputs"][0]["hash_skipped"]


SETTINGS = """# my app
[args]
n = 4  # keep me

[cluster]
dask = true
"""


def test_view_choices_round_trip_through_app_settings_keeping_comments(tmp_path):
    path = tmp_path / "app_settings.toml"
    path.write_text(SETTINGS)
    assert load_prefs(path).views is None
    save_prefs(path, views=["map", "chart"], sample_rows=1000)
    assert save_view_choices(path, "chart", {"kind": "line", "x": "t", "color": None}, previous={}) is True
    assert save_view_choices(path, "chart", {"kind": "line", "x": "t"}, previous={"kind": "line", "x": "t"}) is False
    save_view_choices(path, "table", {"filters": [{"column": "a", "op": "in", "value": ["x"]}]})
    prefs = load_prefs(path)
    assert prefs.views == ["map", "chart"] and prefs.sample_rows == 1000
    assert prefs.per_view["chart"] == {"kind": "line", "x": "t"}
    assert json.loads(prefs.per_view["table"]["filters"]) == [{"column": "a", "op": "in", "value": ["x"]}]
    text = path.read_text()
    assert "n = 4  # keep me" in text and text.startswith("# my app")
    assert load_settings(path).args == {"n": 4}
    update_section(path, "analysis.chart", {"x": None})  # None removes the key
    assert load_prefs(path).per_view["chart"] == {"kind": "line"}


def test_bad_analysis_values_fall_back_and_other_tables_are_refused(tmp_path):
    path = tmp_path / "app_settings.toml"
    path.write_text(SETTINGS + '\n[analysis]\nviews = "chart"\nsample_rows = 3\n')
    prefs = load_prefs(path)
    assert prefs.views is None and prefs.sample_rows == DEFAULT_SAMPLE_ROWS and len(prefs.problems) == 2
    with pytest.raises(SettingsError, match="has its own writer"):
        update_section(path, "cluster", {"dask": False})
    with pytest.raises(SettingsError, match="unknown key"):
        save_prefs(path, colour="red")
    path.write_text("[args\n")
    assert "using default Analysis choices" in load_prefs(path).problems[0]
