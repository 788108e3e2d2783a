"""Run observability over a real SQLite run store: Gantt lanes, durations, throughput, benchmark, compare."""

from __future__ import annotations

import json

import pytest

from switchyard.analysis import runs
from switchyard.analysis.data import AnalysisError
from switchyard.runs.store import RunStore

T0 = 1_800_000_000.0
# (worker, start, end) per batch, seconds after T0: two workers, batches back to back
TIMES = [("127.0.0.1-0", 1.0, 3.5), ("127.0.0.1-1", 1.2, 2.0), ("127.0.0.1-1", 2.1, 6.0),
         ("127.0.0.1-0", 3.6, 4.1), ("127.0.0.1-1", 6.2, 7.0)]


def two_worker_run(store: RunStore, items: int = 10, times=TIMES, now: float = T0) -> str:
    """A completed 2-worker orchestration recorded through the store's own API."""
    oid = store.create_orchestration(
        kind="app", app="flight", mode=4, args={"files": len(times)}, workers={"127.0.0.1": 2},
        scheduler="127.0.0.1:8786", plan_fingerprint="abc", run_dir=None,
        batches=[{"name": f"flight_{i:04d}", "weight": 1000.0 * (i + 1), "items": items,
                  "planned_worker": w} for i, (w, _, _) in enumerate(times)], now=now)
    store.command(oid, "start", now=now + 0.5)
    for i, (worker, start, end) in enumerate(times):
        store.batches_started(oid, [i], {i: worker}, now=now + start)
        store.record_results(oid, [{"idx": i, "status": "completed", "worker": worker}], now=now + end)
    store.command(oid, "complete", now=now + 8)
    store.set_output(oid, "/nowhere/out.parquet", 7.5)
    return oid


@pytest.fixture
def store(tmp_path):
    with RunStore(tmp_path / "switchyard.db") as s:
        yield s


def test_gantt_has_one_lane_per_worker_and_bars_match_the_store(store):
    oid = two_worker_run(store)
    batches = store.batches(oid)
    fig = runs.gantt_figure(batches)
    bars = [(y, base, width) for trace in fig.data for y, base, width in zip(trace.y, trace.base, trace.x)]
    assert {t.orientation for t in fig.data} == {"h"}
    assert sorted({y for y, _, _ in bars}) == ["127.0.0.1-0", "127.0.0.1-1"]  # two lanes
    assert list(fig.layout.yaxis.categoryarray) == ["127.0.0.1-1", "127.0.0.1-0"]
    first = min(b.started_at for b in batches)
    expected = sorted((b.worker, b.started_at - first, b.ended_at - first) for b in batches)
    got = sorted((y, base, base + width) for y, base, width in bars)
    assert len(got) == len(expected) == 5
    for (gw, gs, ge), (ew, es, ee) in zip(got, expected):
        assert gw == ew and gs == pytest.approx(es) and ge == pytest.approx(ee)
    # against the raw store values too: the first bar of worker 1 starts 0.2 s after t0 and lasts 0.8 s
    assert ("127.0.0.1-1", pytest.approx(0.2), pytest.approx(0.8)) in bars


def test_running_batches_end_now_and_unstarted_ones_are_left_out(store):
    oid = store.create_orchestration(kind="app", app="a", mode=0, args={}, workers={"h": 1}, scheduler=None,
                                     plan_fingerprint=None, run_dir=None,
                                     batches=[{"name": "x"}, {"name": "y"}], now=T0)
    store.batches_started(oid, [0], {0: "h-0"}, now=T0 + 1)
    fig = runs.gantt_figure(store.batches(oid), now=T0 + 4)
    assert [(t.name, list(t.x)) for t in fig.data] == [("running", [3.0])]
    empty = runs.gantt_figure([], title="batches")
    assert "no batch has started yet" in empty.layout.title.text


def test_durations_and_throughput_per_worker(store):
    oid = two_worker_run(store)
    batches = store.batches(oid)
    fig = runs.duration_figure(batches)
    assert sorted(x for t in fig.data for x in t.x) == pytest.approx(sorted(e - s for _, s, e in TIMES))
    table = runs.throughput_table(batches).set_index("worker")
    w1 = table.loc["127.0.0.1-1"]
    assert w1["batches"] == 3 and w1["items"] == 30
    assert w1["span_s"] == pytest.approx(7.0 - 1.2)
    assert w1["items_per_s"] == pytest.approx(30 / 5.8)
    assert w1["weight_per_s"] == pytest.approx((2000 + 3000 + 5000) / 5.8)
    assert w1["busy_s"] == pytest.approx(0.8 + 3.9 + 0.8)
    bar = runs.throughput_figure(runs.throughput_table(batches), "items")
    assert list(bar.data[0].x) == ["127.0.0.1-0", "127.0.0.1-1"]


def test_recent_runs_table_and_comparison(store):
    a = two_worker_run(store, now=T0)
    b = two_worker_run(store, items=20, times=[(w, s, s + 2 * (e - s)) for w, s, e in TIMES], now=T0 + 100)
    table = runs.runs_table(store.list(app="flight"))
    assert list(table["id"]) == [b, a]  # newest first
    assert table.iloc[0][["status", "mode", "workers", "batches"]].tolist() == ["completed", "4 (_d__)", 2, "5/5"]
    assert table.iloc[0]["seconds"] == pytest.approx(7.5)
    cmp = runs.compare_table(store.get(a), store.batches(a), store.get(b), store.batches(b))
    assert list(cmp.columns) == [a, b, "differs"]
    assert cmp.loc["items", a] == "50" and cmp.loc["items", b] == "100"
    assert cmp.loc["items", "differs"] == "True" and cmp.loc["mode", "differs"] == "False"
    fig = runs.compare_figure(a, store.batches(a), b, store.batches(b))
    assert sorted(t.name for t in fig.data) == sorted([a, b])


def test_benchmark_chart_highlights_the_fastest_mode(tmp_path):
    doc = {"app": "flight", "args": {}, "workers": {"127.0.0.1": 2}, "created_at": T0, "fastest": 4,
           "results": [{"mode": 0, "mode_string": "____", "status": "completed", "seconds": 3.0},
                       {"mode": 4, "mode_string": "_d__", "status": "completed", "seconds": 1.5},
                       {"mode": 8, "mode_string": "r___", "status": "skipped", "seconds": None,
                        "reason": "no GPU"}]}
    path = tmp_path / "benchmark.json"
    path.write_text(json.dumps(doc))
    fig = runs.benchmark_figure(runs.read_benchmark(path))
    bar = fig.data[0]
    assert list(bar.x) == ["0 (____)", "4 (_d__)", "8 (r___)"] and list(bar.y) == [3.0, 1.5, 0.0]
    assert bar.marker.color[1] == runs.FASTEST_COLOR and len(set(bar.marker.color)) == 3
    assert "fastest: mode 4" in fig.layout.title.subtitle.text and bar.text[2] == "skipped"
    assert runs.read_benchmark(tmp_path / "none.json") is None
    path.write_text("{not json")
    with pytest.raises(AnalysisError, match="not readable JSON"):
        runs.read_benchmark(path)
