"""Measured costs from a synthetic run store (a real SQLite file written through RunStore's API)."""

from __future__ import annotations

import random

import pytest

from switchyard.app import Partition
from switchyard.exceptions import SwitchyardError
from switchyard.plan import build_plan
from switchyard.plan.costs import (MEASURED, WEIGHTS, check_source, cost_fingerprint, fit, measured_model,
                                   observations, plan_costs)
from switchyard.runs.store import RunStore

T0 = 1_800_000_000.0
SLOTS = ["127.0.0.1-0", "127.0.0.1-1", "127.0.0.1-2"]
SPEEDS = {"127.0.0.1-0": 1.0, "127.0.0.1-1": 2.0, "127.0.0.1-2": 0.5}  # median slot: 1.0
ARGS = {"samples": 1000, "seed": 1}


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "switchyard.db")
    yield s
    s.close()


def record_run(store: RunStore, batches: list[dict], *, mode: int = 4, args: dict = ARGS,
               app: str = "synthetic", now: float = T0) -> str:
    """A completed run: each batch dict has name, weight, slot, seconds and optionally
    ``failed`` (seconds of a failed first attempt on the same slot)."""
    oid = store.create_orchestration(
        kind="app", app=app, mode=mode, args=args, workers={"127.0.0.1": 3}, scheduler="127.0.0.1:8786",
        plan_fingerprint="fp", run_dir="/tmp/none", now=now,
        batches=[{"name": b["name"], "weight": b["weight"], "planned_worker": b["slot"]} for b in batches])
    store.command(oid, "start", now=now)
    t = now
    for idx, b in enumerate(batches):
        store.batches_started(oid, [idx], {idx: b["slot"]}, now=t)
        if b.get("failed"):
            store.record_results(oid, [{"idx": idx, "status": "failed", "worker": b["slot"], "started_at": t,
                                        "ended_at": t + b["failed"], "error": "boom"}], now=t + b["failed"])
            t += b["failed"]
            store.batches_started(oid, [idx], {idx: b["slot"]}, now=t)
        store.record_results(oid, [{"idx": idx, "status": "completed", "worker": b["slot"], "started_at": t,
                                    "ended_at": t + b["seconds"]}], now=t + b["seconds"])
        t += b["seconds"]
    store.command(oid, "complete", now=t)
    return oid


def true_costs(n: int = 24, seed: int = 7) -> dict[str, tuple[float, float]]:
    """name -> (weight, seconds at speed 1): costs that the weights do not predict."""
    rnd = random.Random(seed)
    return {f"p{i:02d}": (1.0 + i % 4, rnd.uniform(0.5, 5.0)) for i in range(n)}


def history(store: RunStore, costs: dict, runs: int = 5, outliers: int = 0, retried: int = 0,
            args: dict = ARGS, mode: int = 4) -> list[str]:
    oids = []
    for r in range(runs):
        batches = []
        for i, (name, (w, c)) in enumerate(costs.items()):
            slot = SLOTS[(i + r) % len(SLOTS)]  # partitions move between slots across runs
            secs = c / SPEEDS[slot]
            b = {"name": name, "weight": w, "slot": slot, "seconds": secs}
            if r == 1 and i < outliers:
                b["seconds"] = secs * 10  # a stalled batch: one observation of five
            if r == 2 and i < retried:
                b["failed"] = 60.0  # a long failed attempt before the successful one
            batches.append(b)
        oids.append(record_run(store, batches, now=T0 + 1000 * r, args=args, mode=mode))
    return oids


def within(got: float, want: float, rel: float = 0.05) -> bool:
    return abs(got - want) <= rel * want


def test_recovers_known_costs_and_slot_speeds_despite_outliers_and_retries(store):
    costs = true_costs()
    oids = history(store, costs, runs=5, outliers=6, retried=6)
    model = measured_model(store, "synthetic", 4, ARGS)
    assert sorted(model.runs) == sorted(oids) and model.observations == 5 * len(costs)
    for slot, speed in SPEEDS.items():
        assert within(model.speed(slot), speed), (slot, model.speed(slot), speed)
    bad = {n: (model.costs[n], c) for n, (_, c) in costs.items() if not within(model.costs[n], c)}
    assert not bad, bad
    # The failed attempts' 60 s are nowhere: retried partitions cost what their success took.
    assert all(model.costs[f"p{i:02d}"] < 6.0 for i in range(6))
    # Seconds per unit of weight, per slot: the scale for a partition never measured.
    spw = model.seconds_per_weight
    assert spw is not None and within(model.slot_seconds_per_weight("127.0.0.1-1"), spw / 2.0)
    assert model.cost("never-seen", 2.0) == (pytest.approx(2.0 * spw), False)


def test_other_modes_and_other_cost_args_are_kept_apart(store):
    costs = true_costs(n=9)
    history(store, costs, runs=3, mode=4)
    history(store, {n: (w, 10 * c) for n, (w, c) in costs.items()}, runs=3, mode=5)  # pool: other speed
    m4, m5 = measured_model(store, "synthetic", 4, ARGS), measured_model(store, "synthetic", 5, ARGS)
    assert all(within(m4.costs[n], c) and within(m5.costs[n], 10 * c) for n, (_, c) in costs.items())
    assert measured_model(store, "synthetic", 1, ARGS).is_empty
    # Declared cost args: another seed is the same work, other samples is not.
    decl = ("samples",)
    assert cost_fingerprint(ARGS, decl) == cost_fingerprint({**ARGS, "seed": 9}, decl)
    assert cost_fingerprint(ARGS) != cost_fingerprint({**ARGS, "seed": 9})
    same = measured_model(store, "synthetic", 4, {**ARGS, "seed": 9}, cost_args=decl)
    assert set(same.costs) == set(costs)
    other = measured_model(store, "synthetic", 4, {**ARGS, "samples": 5}, cost_args=decl)
    assert other.costs == {} and other.seconds_per_weight is not None  # speeds and scale still known


def test_measured_plan_balances_seconds_and_weights_plan_predicts_them(store):
    costs = true_costs(n=16)
    history(store, costs, runs=3)
    model = measured_model(store, "synthetic", 4, ARGS)
    parts = [Partition(name=n, weight=w, items=()) for n, (w, _) in costs.items()]
    workers = {"127.0.0.1": 3}
    measured = build_plan("synthetic", ARGS, workers, "s:1", parts, costs=plan_costs(MEASURED, model, parts, SLOTS))
    weights = build_plan("synthetic", ARGS, workers, "s:1", parts, costs=plan_costs(WEIGHTS, model, parts, SLOTS))
    assert measured.cost_source == MEASURED and weights.cost_source == WEIGHTS
    assert "16 of 16 partitions measured" in measured.cost_note
    # Real seconds of each plan, from the true costs and speeds.
    def real(plan):
        return max(sum(costs[p.name][1] for p in s.partitions) / SPEEDS[s.id] for s in plan.slots)
    assert within(measured.predicted_makespan_seconds, real(measured), 0.05)
    assert within(weights.predicted_makespan_seconds, real(weights), 0.05)
    assert real(measured) < real(weights)
    # The plan records its costs and reads back with them.
    again = type(measured).from_json(measured.to_json())
    assert again.costs == measured.costs and again.predicted_seconds() == measured.predicted_seconds()
    assert again.summary()["predicted_makespan_seconds"] == pytest.approx(measured.predicted_makespan_seconds)


def test_no_history_falls_back_to_weights_in_one_line(store):
    assert observations(store, "synthetic", 4) == []
    parts = [Partition(name=f"p{i}", weight=1.0 + i, items=()) for i in range(4)]
    got = plan_costs(MEASURED, measured_model(store, "synthetic", 4, ARGS), parts, SLOTS,
                     what="app 'synthetic' in mode 4")
    assert got.source == WEIGHTS and got.values == [1.0, 2.0, 3.0, 4.0] and got.costs == [None] * 4
    assert got.note == "no measured runs of app 'synthetic' in mode 4 yet: planned from the app's weights"
    plan = build_plan("synthetic", ARGS, {"127.0.0.1": 3}, "s:1", parts, costs=got)
    assert plan.cost_source == WEIGHTS and plan.predicted_makespan_seconds is None
    assert check_source(None) == WEIGHTS and check_source(" Measured ") == MEASURED
    with pytest.raises(SwitchyardError, match="costs 'fast' is not a cost source: choose 'weights'"):
        check_source("fast")


def test_fit_ignores_one_slow_batch_among_few():
    from switchyard.plan.costs import Observation

    obs = [Observation("a", "f", "w0", 1.0, s, run=f"r{i}", at=i) for i, s in enumerate([2.0, 2.02, 20.0])]
    obs += [Observation("b", "f", "w0", 1.0, 1.0, run="r0", at=0), Observation("b", "f", "w0", 1.0, 9.0, run="r1", at=1)]
    model = fit(obs, fingerprint="f")
    assert within(model.costs["a"], 2.0) and model.costs["b"] == pytest.approx(1.0)
