"""Plans of 100,000 partitions: the file is written and read fast, one line per partition, and
the page's summary (per-worker ranges, the largest partitions) comes from one pass."""

from __future__ import annotations

import json
import time

from switchyard.app import Partition
from switchyard.plan import WorkPlan, build_plan, reassign
from switchyard.plan.summary import largest_partitions, worker_summary

WORKERS = {"127.0.0.1": 2, "::1": 1}


def big_plan(n: int) -> WorkPlan:
    parts = [Partition(name=f"p{i:06d}", weight=float(1 + i % 97)) for i in range(n)]
    return build_plan("engine", {"n": n}, WORKERS, "127.0.0.1:8786", parts, now=0.0)


def test_a_100k_partition_plan_saves_and_loads_fast_with_one_line_per_partition(tmp_path):
    plan = reassign(big_plan(100_000), "p000007", "::1-0")
    path = tmp_path / "plan.json"
    t0 = time.perf_counter()
    plan.save(path)
    saved = time.perf_counter() - t0
    t0 = time.perf_counter()
    again = WorkPlan.load(path)
    loaded = time.perf_counter() - t0
    assert again == plan and again.edited
    text = path.read_text()
    assert json.loads(text) == plan.to_dict()
    lines = text.splitlines()
    assert sum(1 for line in lines if line.lstrip().startswith('{"name": ')) == 100_000
    assert '      {"name": "p000007", "weight": 8.0, "index": 7}' in {line.rstrip(",") for line in lines}
    assert len(text) < 6_500_000, len(text)  # was 9.4 MB with every key on its own line
    print(f"100k plan: save {saved:.2f} s, load {loaded:.2f} s, {len(text) / 1e6:.1f} MB")
    assert saved < 2.0 and loaded < 2.0, (saved, loaded)


def test_small_and_empty_slots_keep_a_valid_readable_document():
    plan = build_plan("flight", {}, {"h": 3}, "", [Partition("only", 2.5)], now=1.0)
    text = plan.to_json()
    assert WorkPlan.from_json(text) == plan
    assert '"partitions": []}' in text  # the two empty slots
    assert text.endswith("  ]\n}\n") and '\n  "schema_version": 1,\n' in text


def test_worker_summary_and_largest_partitions():
    plan = big_plan(10_000)
    rows = worker_summary(plan)
    assert [r["worker"] for r in rows] == [s.id for s in plan.slots]
    assert sum(r["partitions"] for r in rows) == 10_000
    for r, s in zip(rows, plan.slots):
        weights = sorted(p.weight for p in s.partitions)
        assert (r["min weight"], r["max weight"]) == (weights[0], weights[-1])
        assert r["min weight"] <= r["median weight"] <= r["max weight"]
        assert abs(r["weight"] - sum(weights)) < 1e-6
        assert "cost s" not in r  # no measured costs in this plan
    top = largest_partitions(plan, 5)
    assert [t["weight"] for t in top] == [97.0] * 5
    assert [t["partition"] for t in top] == [f"p{i:06d}" for i in (96, 193, 290, 387, 484)]
    assert all(plan.assignment()[t["partition"]] == t["worker"] for t in top)
    assert abs(top[0]["share %"] - 100 * 97 / plan.total_weight) < 1e-3
