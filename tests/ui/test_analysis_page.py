"""The Analysis page under AppTest: every view type, bad files, persisted choices, the Runs tab."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from switchyard.analysis.prefs import load_prefs, save_prefs
from switchyard.runs.store import RunStore

from ..conftest import make_tiny_app
from ..unit.test_analysis_data import mixed_frame
from ..unit.test_analysis_runs import two_worker_run

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "analysis.py")
ALL_VIEWS = ["chart", "map", "table", "correlation", "summary"]


class Bench:
    """A workspace and an apps folder with one app ('demo'), set in the environment."""

    def __init__(self, root: Path):
        self.home = root / "home"
        self.apps = root / "apps"
        make_tiny_app(self.apps, "demo")
        self.settings = self.apps / "demo" / "app_settings.toml"
        self.export = self.home / "export" / "demo" / "export.csv"
        self.export.parent.mkdir(parents=True)

    def run(self, at: AppTest | None = None) -> AppTest:
        at = at or AppTest.from_file(PAGE, default_timeout=60)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at


@pytest.fixture
def bench(tmp_path, monkeypatch) -> Bench:
    b = Bench(tmp_path)
    monkeypatch.setenv("SWITCHYARD_HOME", str(b.home))
    monkeypatch.setenv("SWITCHYARD_APPS", str(b.apps))
    monkeypatch.delenv("SWITCHYARD_EXPORT", raising=False)
    return b


def figures(at: AppTest) -> dict[str, dict]:
    """Plotly figures on the page by view, from what Streamlit sends to the browser."""
    out = {}
    for el in at.get("plotly_chart"):
        out[el.key] = json.loads(el.proto.spec)
    return out


def values(v) -> list:
    """An array of a figure spec: plain JSON, or Plotly's typed array ({"dtype", "bdata"})."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).tolist()
    return list(v)


def by_view(at: AppTest, view: str) -> dict | None:
    return next((f for k, f in figures(at).items() if k.endswith(f"-{view}-figure")), None)


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_every_view_type_renders_a_generated_csv(bench):
    mixed_frame(400).to_csv(bench.export, index=False)
    save_prefs(bench.settings, views=ALL_VIEWS)
    at = bench.run()
    assert not at.error, texts(at.error)
    assert [m.value for m in at.metric][:2] == ["400", "7"]
    chart, map_, corr = by_view(at, "chart"), by_view(at, "map"), by_view(at, "correlation")
    assert chart["data"][0]["type"] in ("scatter", "scattergl")
    assert sum(len(values(t["x"])) for t in chart["data"]) == 400
    assert {t["type"] for t in map_["data"]} == {"scattermap"}
    assert sum(len(values(t["lat"])) for t in map_["data"]) == 400 and map_["layout"]["map"]["style"] == "white-bg"
    assert corr["data"][0]["type"] == "heatmap"
    shown = [d.value for d in at.dataframe]
    table = next(t for t in shown if "note" in t.columns and len(t) == 400)
    summary = next(t for t in shown if "distinct" in t.columns)
    assert list(table.columns)[:3] == ["value", "count", "group"]
    assert set(summary["column"]) == set(mixed_frame(1).columns)
    assert at.selectbox(key=next(k for k in _keys(at) if k.endswith("-chart-x"))).value == "value"


def _keys(at: AppTest) -> list[str]:
    return [w.key for w in at.selectbox] + [w.key for w in at.radio]


def test_changed_chart_type_is_kept_in_app_settings_and_after_a_reload(bench):
    mixed_frame(200).to_csv(bench.export, index=False)
    before = bench.settings.read_text()
    at = bench.run()
    assert bench.settings.read_text() == before  # looking changes nothing; choosing does
    assert {"map", "chart"} <= {k.rsplit("-", 2)[-2] for k in figures(at)}  # lat/lon: map shown by default
    kind = next(r for r in at.radio if r.key.endswith("-chart-kind"))
    assert kind.value == "scatter"
    kind.set_value("box")
    at = bench.run(at)
    assert by_view(at, "chart")["data"][0]["type"] == "box"
    assert load_prefs(bench.settings).per_view["chart"]["kind"] == "box"
    fresh = bench.run()  # a new session reads app_settings.toml
    assert next(r for r in fresh.radio if r.key.endswith("-chart-kind")).value == "box"
    assert by_view(fresh, "chart")["data"][0]["type"] == "box"


def test_table_filters_narrow_the_rows_and_are_kept(bench):
    frame = mixed_frame(300)
    frame.to_csv(bench.export, index=False)
    save_prefs(bench.settings, views=["table"])
    at = bench.run()
    on = next(m for m in at.multiselect if m.key.endswith("-table-filter-on"))
    on.set_value(["group"])
    at = bench.run(at)
    values = next(m for m in at.multiselect if m.key.endswith("-table-filter-group"))
    values.set_value(["north"])
    at = bench.run(at)
    table = next(d.value for d in at.dataframe if "note" in d.value.columns)
    assert len(table) == (frame["group"] == "north").sum() and set(table["group"]) == {"north"}
    assert f"{len(table):,} of 300 rows match" in texts(at.caption)
    saved = json.loads(load_prefs(bench.settings).per_view["table"]["filters"])
    assert saved == [{"column": "group", "op": "in", "value": ["north"]}]
    fresh = bench.run()  # a new session starts from the saved filter
    assert len(next(d.value for d in fresh.dataframe if "note" in d.value.columns)) == len(table)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty (0 bytes)"),
    (b"a,b\n1,caf\xe9\n", "is not utf-8 text (byte 0xE9 on line 2)"),
    (None, "does not exist"),
])
def test_unusable_files_show_one_clear_message(bench, content, message):
    if content is not None:
        bench.export.write_bytes(content)
    at = bench.run()
    assert len(at.error) == 1 and message in at.error[0].value
    assert "Traceback" not in at.error[0].value and not at.get("plotly_chart")


def test_one_column_csv_draws_what_it_can_and_explains_the_rest(bench):
    bench.export.write_text("speed\n" + "\n".join(str(i % 17) for i in range(100)) + "\n")
    save_prefs(bench.settings, views=ALL_VIEWS)
    at = bench.run()
    assert "has one column ('speed')" in texts(at.info)
    assert by_view(at, "chart")["data"][0]["type"] == "histogram"
    errors = texts(at.error)
    assert "no latitude/longitude columns" in errors
    assert "correlation needs at least two numeric columns" in errors
    assert "Traceback" not in errors and len(at.error) == 2


def test_a_file_outside_the_workspace_is_refused(bench, tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("a,b\n1,2\n")
    mixed_frame(10).to_csv(bench.export, index=False)
    save_prefs(bench.settings, source=str(outside))
    at = bench.run()
    assert len(at.error) == 1 and "is outside the workspace" in at.error[0].value


def test_runs_tab_shows_recent_runs_gantt_and_missing_benchmark(bench):
    with RunStore(bench.home / "switchyard.db") as store:
        two_worker_run(store)  # an app 'flight' run: not listed for 'demo'
        demo = store.create_orchestration(kind="app", app="demo", mode=4, args={}, workers={"127.0.0.1": 2},
                                          scheduler=None, plan_fingerprint=None, run_dir=None,
                                          batches=[{"name": "p0"}, {"name": "p1"}], now=1e9)
        store.batches_started(demo, [0, 1], {0: "127.0.0.1-0", 1: "127.0.0.1-1"}, now=1e9 + 1)
        store.record_results(demo, [{"idx": 0, "status": "completed"}], now=1e9 + 2)
        store.record_results(demo, [{"idx": 1, "status": "completed"}], now=1e9 + 4)
    at = bench.run()
    at.session_state["analysis-tab"] = "Runs"  # what a click on the tab does (or ?analysis-tab=Runs)
    at = bench.run(at)
    assert [s.value for s in at.subheader] == ["Recent runs", "One run", "Benchmark", "Compare two runs"]
    runs = next(d.value for d in at.dataframe if "status" in d.value.columns and "id" in d.value.columns)
    assert list(runs["id"]) == [demo]
    gantt = figures(at)[f"gantt-{demo}"]
    lanes = sorted({y for t in gantt["data"] for y in values(t["y"])})
    assert lanes == ["127.0.0.1-0", "127.0.0.1-1"]
    assert sorted(x for t in gantt["data"] for x in values(t["x"])) == [1.0, 3.0]
    assert "No benchmark yet" in texts(at.info) and "Comparing needs two runs" in texts(at.info)


def test_runs_tab_follows_an_active_run_to_its_end(bench):
    with RunStore(bench.home / "switchyard.db") as store:
        demo = store.create_orchestration(kind="app", app="demo", mode=4, args={}, workers={"127.0.0.1": 2},
                                          scheduler=None, plan_fingerprint=None, run_dir=None,
                                          batches=[{"name": "p0"}], now=1e9)
        store.command(demo, "start", now=1e9)
    at = bench.run()
    at.session_state["analysis-tab"] = "Runs"
    at = bench.run(at)

    def status() -> str:
        runs = next(d.value for d in at.dataframe if "status" in d.value.columns and "id" in d.value.columns)
        return str(list(runs["status"])[0])

    assert status() == "running"
    with RunStore(bench.home / "switchyard.db") as store:
        store.record_results(demo, [{"idx": 0, "status": "completed"}], now=1e9 + 2)
        store.command(demo, "complete", now=1e9 + 3)
    at = bench.run(at)  # the fragment's redraw (every 2 s while active) reads the store again
    assert not at.exception and status() == "completed"
