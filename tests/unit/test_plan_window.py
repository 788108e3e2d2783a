"""Following a plan from measured costs: per-worker windows, biggest first, the driver steals."""

from __future__ import annotations

import json
from collections import deque

from switchyard.runs.plan_window import PlanWindow

# slot a: one 3 s batch (idx 5) and two small ones; slot b: four small ones
SLOTS = {"a": [0, 5, 1], "b": [2, 3, 4, 6]}
COST = {0: 0.1, 1: 0.1, 2: 0.1, 3: 0.1, 4: 0.1, 5: 3.0, 6: 0.1}


def test_each_slot_gets_its_own_batches_biggest_first_two_at_a_time():
    w = PlanWindow(SLOTS, COST)
    todo = {i: 0.0 for i in COST}
    got = w.take(0.0, todo, busy=set())
    assert got == [(5, "a"), (2, "b"), (3, "b")]  # nothing queued behind the 3 s batch
    assert w.take(0.0, todo, busy={5, 2, 3}) == []  # the windows are full
    todo.pop(5)
    w.settled(5, again=False)
    assert w.take(0.0, todo, busy={2, 3}) == [(0, "a"), (1, "a")]
    # batch 2 completes: slot b takes its next own one
    todo.pop(2)
    w.settled(2, again=False)
    assert w.take(0.0, todo, busy={5, 0, 3}) == [(4, "b")]
    # batch 3 fails and waits for its retry: it goes back to the front of b's list
    todo[3] = 10.0
    w.settled(3, again=True)
    assert w.take(0.0, todo, busy={0, 1, 4}) == [(6, "b")]
    assert w.take(10.0, todo, busy={0, 1, 4, 6}) == []
    todo.pop(4)
    w.settled(4, again=False)
    assert w.take(10.0, todo, busy={0, 1, 6}) == [(3, "b")]


def test_a_slot_done_with_its_own_list_takes_the_smallest_left_of_the_busiest():
    w = PlanWindow({"a": [5, 0, 1, 7], "b": [2]}, {**COST, 7: 0.1})
    todo = {i: 0.0 for i in (0, 1, 2, 5, 7)}
    assert w.take(0.0, todo, busy=set()) == [(5, "a"), (2, "b"), (7, "b")]  # b steals 7 (a's last)
    todo.pop(2)
    w.settled(2, again=False)
    assert w.take(0.0, todo, busy={5, 7}) == [(1, "b")]
    todo.pop(7)
    w.settled(7, again=False)
    assert w.take(0.0, todo, busy={5, 1}) == [(0, "b")]
    assert w.is_empty


def test_only_a_plan_from_measured_costs_of_this_run_is_followed(tmp_path):
    def plan(source, indices):
        doc = {"costs": {"source": source}, "slots": [
            {"id": "h-0", "partitions": [{"name": f"p{i}", "weight": 1.0, "index": i, "cost": 0.5} for i in indices]}]}
        (tmp_path / "plan.json").write_text(json.dumps(doc))

    plan("measured", [0, 1, 2])
    assert PlanWindow.from_plan(tmp_path, 3).queues == {"h-0": deque([0, 1, 2])}
    assert PlanWindow.from_plan(tmp_path, 4) is None  # not this run's partitions
    plan("weights", [0, 1, 2])
    assert PlanWindow.from_plan(tmp_path, 3) is None
    (tmp_path / "plan.json").write_text("{not json")
    assert PlanWindow.from_plan(tmp_path, 3) is None
