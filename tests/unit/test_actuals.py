"""Planned against measured: a finished run's plan and its batch rows (pure, no store needed)."""

from __future__ import annotations

import pytest

from switchyard.app import Partition
from switchyard.plan import build_plan
from switchyard.plan.actuals import review
from switchyard.plan.costs import MEASURED, CostModel, plan_costs
from switchyard.runs.state import Batch

SLOTS = ["h-0", "h-1"]


def batches(plan, seconds: dict[str, float], moved: dict[str, str] | None = None, t0: float = 100.0):
    """Completed rows: each slot runs its partitions back to back from t0 (``moved`` ones elsewhere)."""
    moved = moved or {}
    clock = {s.id: t0 for s in plan.slots}
    rows = []
    for s in plan.slots:
        for p in s.partitions:
            worker = moved.get(p.name, s.id)
            start = clock[worker]
            clock[worker] = start + seconds[p.name]
            rows.append(Batch("o", p.index, p.name, weight=p.weight, planned_worker=s.id, worker=worker,
                              status="completed", attempts=1, started_at=start, ended_at=clock[worker]))
    return rows


def test_weights_plan_is_scaled_to_the_measured_total_and_misestimates_are_named():
    parts = [Partition(f"p{i}", 1.0, ()) for i in range(6)] + [Partition("big", 2.0, ())]
    plan = build_plan("a", {}, {"h": 2}, "s:1", parts)
    secs = {**{f"p{i}": 1.0 for i in range(6)}, "big": 4.0}  # weights say 2, it costs 4
    rev = review(plan, batches(plan, secs))
    assert rev.basis == "weights" and rev.workers == SLOTS
    assert sum(rev.planned.values()) == pytest.approx(sum(secs.values()))
    assert rev.measured == {s.id: pytest.approx(sum(secs[p.name] for p in s.partitions)) for s in plan.slots}
    assert rev.makespan == pytest.approx(max(rev.measured.values()))
    assert rev.lower_bound == pytest.approx(max(10.0 / 2, 4.0))
    assert rev.misestimated[0]["partition"] == "big" and rev.misestimated[0]["ratio"] > 1.5
    assert review(plan, []) is None


def test_measured_plan_compares_predicted_seconds_and_follows_stolen_batches():
    parts = [Partition(f"p{i}", 1.0, ()) for i in range(4)]
    model = CostModel(app="a", mode=4, fingerprint="f", costs={"p0": 3.0, "p1": 1.0, "p2": 1.0, "p3": 1.0},
                      speeds={"h-0": 1.0, "h-1": 1.0}, seconds_per_weight=1.0, runs=["r"])
    plan = build_plan("a", {}, {"h": 2}, "s:1", parts, costs=plan_costs(MEASURED, model, parts, SLOTS))
    assert plan.predicted_seconds() == {"h-0": pytest.approx(3.0), "h-1": pytest.approx(3.0)}
    secs = {"p0": 3.0, "p1": 1.0, "p2": 1.0, "p3": 1.0}
    heavy_slot = plan.assignment()["p0"]
    other = next(s for s in SLOTS if s != heavy_slot)
    light = next(n for n, s in plan.assignment().items() if s == other)
    rev = review(plan, batches(plan, secs, moved={light: heavy_slot}))  # stolen onto the busy slot
    assert rev.basis == "predicted" and rev.planned == {"h-0": pytest.approx(3.0), "h-1": pytest.approx(3.0)}
    assert rev.measured[heavy_slot] == pytest.approx(4.0) and rev.measured[other] == pytest.approx(2.0)
    assert rev.makespan == pytest.approx(4.0) and rev.lower_bound == pytest.approx(3.0)
    assert rev.ratio == pytest.approx(4 / 3)
    assert all(r["ratio"] == pytest.approx(1.0) for r in rev.misestimated)
