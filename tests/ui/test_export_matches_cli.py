"""The Orchestrate page's EXPORT button and `switchyard export` write the same export.csv (AppTest on a
real run store and a real Parquet output); the Export section offers the flow as a notebook."""

from __future__ import annotations

import json
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from switchyard import cli
from switchyard.runs.store import RunStore

from ..unit.test_export import completed_run
from .conftest import open_page, texts

pytestmark = pytest.mark.timeout(120)


def flight_output(home) -> str:
    """A completed flight run whose output has the flight app's columns."""
    out = home / "runs" / "r1" / "output" / "segments.parquet"
    out.parent.mkdir(parents=True)
    frame = pd.DataFrame({"flight_id": ["F1", "F2", "F3", "F4"], "aircraft": ["A", "B", "A", "C"],
                          "speed_kmh": [812.5, 790.0, 0.1, 905.25], "latitude": [48.1, 48.2, 48.3, 48.4]})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out)
    return completed_run(RunStore(home / "switchyard.db"), "flight", out, now=time.time())


def test_export_button_and_cli_write_the_same_file_and_a_bad_column_is_named(flight, capsys):
    oid = flight_output(flight.home)
    at = open_page()
    downloads = [e.proto.label for e in at.get("download_button")]
    assert "Download notebook" in downloads
    assert "switchyard notebook export flight" in texts(at.caption)
    next(b for b in at.button if b.label == "LOAD DATA").click().run()
    key = f"export-columns-flight-{flight.home / 'runs/r1/output/segments.parquet'}"
    at.multiselect(key=key).set_value(["flight_id", "speed_kmh"]).run()
    assert "switchyard export flight --columns flight_id,speed_kmh --run " + oid in texts(at.caption)
    next(b for b in at.button if b.label == "EXPORT").click().run()
    assert not at.exception
    path = flight.home / "export" / "flight" / "export.csv"
    by_button = path.read_bytes()
    path.unlink()

    assert cli.main(["export", "flight", "--columns", "flight_id,speed_kmh", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["path"] == str(path) and doc["columns"] == ["flight_id", "speed_kmh"]
    assert path.read_bytes() == by_button
    assert pd.read_csv(path).columns.tolist() == ["flight_id", "speed_kmh"] and len(pd.read_csv(path)) == 4
    assert json.loads((path.parent / "export.csv.lineage.json").read_text())["run_id"] == oid

    assert cli.main(["export", "flight", "--columns", "flight_id,altitude", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'altitude'" in err
    assert "flight_id, aircraft, speed_kmh, latitude" in err
    assert path.read_bytes() == by_button  # the refused export left the file alone


def test_pipeline_page_offers_the_pipeline_as_a_notebook(flight):
    from streamlit.testing.v1 import AppTest

    from .conftest import REPO

    at = AppTest.from_file(str(REPO / "pages" / "pipeline.py"), default_timeout=60)
    at.query_params["app"] = "flight"
    at.run()
    assert not at.exception
    assert [e.proto.label for e in at.get("download_button")] == ["Download pipeline notebook"]
    assert "switchyard notebook import flight NOTEBOOK" in texts(at.caption)
