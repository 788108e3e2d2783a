"""The detail tabs of the Orchestrations page with AppTest over a real store: the paged table,
single bars below the aggregation threshold, error groups with reprocess on a group, the
byte-capped log with Load more. (The 100,000-batch page is tests/e2e/test_big_run_page.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from switchyard.runs.store import RunStore

from ..bigrun import make_big_run

REPO = Path(__file__).resolve().parents[2]
PAGE = str(REPO / "pages" / "orchestrations.py")


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_HOME", str(tmp_path))
    monkeypatch.setenv("SWITCHYARD_APPS", str(REPO / "apps"))
    store = RunStore(tmp_path / "switchyard.db")
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    (run_dir / "run.log").write_text("first line\n" + "".join(f"line {i:06d} " + "x" * 90 + "\n"
                                                              for i in range(2000)))
    oid = make_big_run(store, 1000, run_dir=run_dir, finish=False)  # running: its driver holds the lease
    yield store, oid
    store.close()


def open_tab(oid: str, tab: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["orchestration"] = oid
    at.session_state[f"orch-tabs-{oid}"] = tab
    return at.run()


def text_of(at: AppTest) -> str:
    return " ".join(str(e.value) for e in (*at.caption, *at.markdown, *at.code))


def test_batches_timeline_errors_and_log_tabs(run):
    store, oid = run
    at = open_tab(oid, "Batches")
    assert not at.exception
    assert "batches 1–100 of 1,000 matching (page 1 of 10" in text_of(at)
    at.number_input(key=f"bt-page-{oid}").set_value(10).run()
    assert "batches 901–1,000 of 1,000 matching" in text_of(at)
    assert list(at.dataframe[-1].value["batch"])[:2] == [900, 901]

    at = open_tab(oid, "Timeline")
    assert not at.exception
    assert "1,000 batches from #0: one bar per batch" in text_of(at)
    assert len(at.get("plotly_chart")) == 1

    at = open_tab(oid, "Errors")
    assert "10 failed, dead or cancelled batches in 2 error groups" in text_of(at)
    assert store.batch_counts(oid)["dead"] == 10
    at.button(key=f"orch-reprocess-group-{oid}-0").click().run()
    assert not at.exception
    assert store.batch_counts(oid)["dead"] == 5  # only the group's dead letters went back to work
    assert [b.idx for b in store.pending_batches(oid)] == [7, 207, 407, 607, 807]

    at = open_tab(oid, "Log")
    assert "the last 64 KiB of 201 KiB" in text_of(at)
    assert "first line" not in at.code[0].value and at.code[0].value.startswith("line ")
    at.button(key=f"log-more-{oid}").click().run()
    assert at.code[0].value.startswith("first line")


def test_a_timeline_above_the_threshold_is_the_busy_share_svg_with_the_slowest(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_HOME", str(tmp_path))
    monkeypatch.setenv("SWITCHYARD_APPS", str(REPO / "apps"))
    with RunStore(tmp_path / "switchyard.db") as store:
        oid = make_big_run(store, 3000)
    at = open_tab(oid, "Timeline")
    assert not at.exception
    assert "3,000 batches: busy share per worker over 60 buckets" in text_of(at)
    svg = next(m.value for m in at.markdown if m.value.startswith("<svg"))
    assert svg.count('class="busy"') >= 60 and "127.0.0.1-0" in svg and "127.0.0.1-1" in svg
    assert not at.get("plotly_chart")  # the aggregated view loads no chart bundle
    slowest = at.dataframe[-1].value
    assert list(slowest["batch"])[:1] == [5] and slowest["seconds"].iloc[0] == 1.5
