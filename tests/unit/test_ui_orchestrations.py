"""The Orchestrations page with Streamlit's AppTest over a real store (no driver processes), and
its pure helpers (tables, timeline, badges)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from switchyard.runs.state import Batch
from switchyard.runs.store import RunStore
from switchyard.ui.orchestrations import batch_frame, list_frame, timeline_figure
from switchyard.ui.status import badge_markdown, color_of, progress_text

REPO = Path(__file__).resolve().parents[2]
PAGE = str(REPO / "pages" / "orchestrations.py")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_HOME", str(tmp_path))
    monkeypatch.setenv("SWITCHYARD_APPS", str(REPO / "apps"))
    return tmp_path


def make(store: RunStore, n: int = 4, app: str = "montecarlo") -> str:
    return store.create_orchestration(
        kind="app", app=app, mode=4, args={}, workers={}, scheduler=None, plan_fingerprint=None,
        run_dir=str(store.path.parent / "runs" / "x"), batches=[{"name": f"b{i}"} for i in range(n)])


def running(store: RunStore, app: str = "montecarlo") -> str:
    oid = make(store, app=app)
    store.acquire_lease(oid, "drv", ttl=600)
    store.command(oid, "start")
    now = time.time()
    store.batches_started(oid, [0, 1], {0: "w0", 1: "w1"})
    store.record_results(oid, [{"idx": 0, "status": "completed", "worker": "w0",
                                "started_at": now - 2, "ended_at": now - 1}])
    return oid


def page(oid: str | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    if oid:
        at.query_params["orchestration"] = oid
    return at.run()


def buttons(at: AppTest) -> list[str]:
    """The labels of the orchestration's lifecycle buttons (the page's other tabs have their own)."""
    return [b.label for b in at.button if (b.key or "").startswith("orch-")]


def test_a_running_orchestration_shows_progress_and_only_its_legal_buttons(home):
    store = RunStore(home / "switchyard.db")
    oid = running(store)
    at = page(oid)
    assert not at.exception
    assert buttons(at) == ["Pause", "Cancel"]
    assert any("25% · 1/4 batches completed" in str(p.proto) for p in at.get("progress"))
    at.button(key=f"orch-pause-{oid}").click().run()
    assert store.status(oid).value == "pausing"
    assert buttons(at) == ["Cancel"]  # pausing: only cancel is legal


def test_cancel_asks_for_confirmation(home):
    store = RunStore(home / "switchyard.db")
    oid = running(store)
    store.command(oid, "pause")
    store.command(oid, "paused", owner="drv")
    at = page(oid)
    assert buttons(at) == ["Resume", "Cancel"]
    at.button(key=f"orch-cancel-{oid}").click().run()
    assert store.status(oid).value == "paused"  # not yet
    assert any("cannot be resumed" in w.value for w in at.warning)
    at.button(key=f"orch-cancel-yes-{oid}").click().run()
    assert store.status(oid).value == "cancelled"
    assert buttons(at) == []


def test_the_list_filters_by_status_and_app(home):
    store = RunStore(home / "switchyard.db")
    a = running(store, app="montecarlo")
    b = make(store, app="flight")
    at = page()
    assert not at.exception
    table = at.dataframe[0].value
    assert set(table["id"]) == {a, b}
    at.sidebar.multiselect(key="orch-status-filter").select("running").run()
    assert list(at.dataframe[0].value["id"]) == [a]
    at.sidebar.multiselect(key="orch-status-filter").unselect("running").run()
    at.sidebar.selectbox(key="orch-app-filter").select("flight").run()
    assert list(at.dataframe[0].value["id"]) == [b]


def test_helpers_build_the_tables_and_the_timeline():
    now = 1_800_000_000.0
    batches = [Batch("o", 0, "b0", worker="w0", status="completed", attempts=1, started_at=now, ended_at=now + 2),
               Batch("o", 1, "b1", worker="w1", status="running", attempts=1, started_at=now + 1),
               Batch("o", 2, "b2", status="pending")]
    frame = batch_frame(batches)
    assert list(frame.columns) == ["batch", "name", "status", "worker", "attempts", "start", "seconds", "error"]
    assert list(frame["seconds"].fillna(-1)) == [2.0, -1, -1]
    fig = timeline_figure(batches, now=now + 3)
    assert sorted(set(fig.data[0].y) | set(fig.data[1].y)) == ["w0", "w1"]  # one row per worker
    assert {t.name for t in fig.data} == {"completed", "running"}
    rows = [{"status": "paused", "orchestration_id": "x", "app": "a", "kind": "app", "created_at": now,
             "batches": 4, "completed": 1, "progress": 0.25}]
    assert list_frame(rows).loc[0, "progress"] == 0.25
    assert color_of("completed") == "green" and color_of("dead") == "red" and color_of("?") == "gray"
    assert badge_markdown("failed") == ":red-badge[failed]"
    assert progress_text(3, 4) == "75% · 3/4 batches completed" and progress_text(0, 0).startswith("0%")
