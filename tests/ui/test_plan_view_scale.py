"""The Orchestrate page with a saved 100,000-partition plan: drawn from a summary (per-worker
ranges, the largest partitions, a paged editor and a move picker of one page), in well under
2 s of server time per page load, and still editable."""

from __future__ import annotations

import time

import pytest

from switchyard.app import Partition
from switchyard.plan import build_plan
from switchyard.runs import submit
from switchyard.ui import plan_view

from .conftest import open_page, texts

pytestmark = pytest.mark.timeout(180)
N = 100_000


def test_a_100k_partition_plan_draws_from_a_summary_and_stays_editable(flight):
    parts = [Partition(name=f"p{i:06d}", weight=float(1 + i % 13)) for i in range(N)]
    submit.save_plan(flight, build_plan("flight", {}, {"127.0.0.1": 2}, "127.0.0.1:8786", parts, now=0.0))

    at = open_page()  # the first script run imports the page's modules and parses the plan
    assert not at.exception, [e.value for e in at.exception]
    t0 = time.perf_counter()
    at = open_page()  # a page load is a new session: the parsed plan is shared
    took = time.perf_counter() - t0
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Partitions"] == str(N) and metrics["Unsaved moves"] == "0"
    table = next(t.value for t in at.table if "max weight" in t.value.columns)  # static tables: no data grid
    assert table["partitions"].sum() == N and set(table["max weight"]) == {13.0}
    assert "The 10 largest of 100,000 partitions" in texts(at.caption)
    largest = next(t.value for t in at.table if list(t.value.columns) == ["weight", "share %", "worker"])
    assert len(largest) == 10 and set(largest["weight"]) == {13.0}
    assert f"{N} of {N} partitions match · page 1 of 2000" in texts(at.caption)
    picker = next(m for m in at.multiselect if m.key.startswith("plan-move-names-flight"))
    assert len(picker.options) == plan_view.PAGE_SIZE  # one page, not 100,000 options
    print(f"Orchestrate page with a {N:,}-partition plan: {took:.2f} s (AppTest, a new session)")

    at.text_input(key="plan-filter-flight").set_value("p00001").run()  # p000010 .. p000019
    assert "10 of 100000 partitions match" in texts(at.caption)
    picker = at.multiselect(key="plan-move-names-flight")  # all matches fit: the plain picker
    assert len(picker.options) == 10
    plan = submit.saved_plan(flight)
    source = plan.assignment()["p000013"]
    target = next(s.id for s in plan.slots if s.id != source)
    picker.set_value(["p000013"])
    at.selectbox(key="plan-move-target-flight").set_value(target)
    next(b for b in at.button if b.label == "Move").click().run()
    assert {m.label: m.value for m in at.metric}["Unsaved moves"] == "1"
    next(b for b in at.button if b.label == "Save plan").click().run()
    saved = submit.saved_plan(flight)
    assert saved.edited and saved.assignment()["p000013"] == target and saved.partition_count == N
    assert not at.exception
