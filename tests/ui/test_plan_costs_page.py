"""Measured costs on the Orchestrate page (AppTest, no browser): a real run store holding one
completed run of the flight app, written through RunStore's API; no mocks."""

from __future__ import annotations

import socket

import pytest
import tomlkit

from switchyard.runs import submit
from switchyard.runs.store import RunStore

from .conftest import open_page, texts
from .test_orchestrate_page import button

pytestmark = pytest.mark.timeout(180)
T0 = 1_800_000_000.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def record_completed_run(app_env, plan, seconds) -> str:
    """A completed mode-4 run of ``plan``: each slot ran its partitions back to back."""
    store = RunStore(app_env.home / "switchyard.db")
    oid = store.new_id(now=T0)
    run_dir = app_env.home / "runs" / oid
    plan.save(run_dir / "plan.json")
    where = plan.assignment()
    names = sorted(where, key=lambda n: next(p.index for s in plan.slots for p in s.partitions if p.name == n))
    store.create_orchestration(
        oid=oid, kind="app", app=app_env.app, mode=4, args=plan.args, workers=plan.workers,
        scheduler=plan.scheduler, plan_fingerprint=plan.fingerprint, run_dir=str(run_dir), now=T0,
        batches=[{"name": n, "weight": 1.0, "planned_worker": where[n]} for n in names])
    store.command(oid, "start", now=T0)
    clock = {s.id: T0 for s in plan.slots}
    for idx, n in enumerate(names):
        w = where[n]
        store.record_results(oid, [{"idx": idx, "status": "completed", "worker": w, "started_at": clock[w],
                                    "ended_at": clock[w] + seconds(idx)}], now=clock[w] + seconds(idx))
        clock[w] += seconds(idx)
    store.command(oid, "complete", now=max(clock.values()))
    store.close()
    return oid


def test_review_chart_and_plan_from_measured_costs(flight):
    # A free scheduler port: a scheduler another test runs on 8786 must not be planned on.
    doc = tomlkit.parse(flight.settings_path.read_text())
    doc["cluster"]["scheduler"] = f"127.0.0.1:{free_port()}"
    flight.settings_path.write_text(tomlkit.dumps(doc))
    weights_plan = submit.get_distrib(flight, save=False)
    assert weights_plan.cost_note.startswith("planned from the app's weights")
    record_completed_run(flight, weights_plan, lambda idx: 3.0 if idx == 0 else 0.5)  # the first is heavy

    at = open_page()
    assert not at.exception
    from tests.ui.test_widget_helpers import bars

    review = next(m.value for m in at.markdown if 'aria-label="Planned vs measured load per worker"' in m.value)
    slots = [s.id for s in weights_plan.slots]
    drawn = bars(review)
    assert len({b["series"] for b in drawn}) == 2
    assert [b["x"] for b in drawn] == [x for x in slots for _ in range(2)]  # one pair of bars per worker
    assert "Lower bound of the measured costs" in [m.label for m in at.metric]

    button(at, "CHECK DISTRIBUTE").click().run()
    assert not at.exception and not at.error
    shown_weights = {m.label: m.value for m in at.metric}["Predicted makespan"]
    button(at, "Plan from measured costs").click().run()
    assert not at.exception and not at.error
    n = weights_plan.partition_count
    assert f"planned from measured costs: {n} of {n} partitions measured" in texts(at.caption)
    measured = submit.get_distrib(flight, save=False, costs="measured")
    shown = {m.label: m.value for m in at.metric}["Predicted makespan"]
    assert shown == f"{measured.predicted_makespan_seconds:.3f} s" != shown_weights
    assert submit.saved_plan(flight).cost_source == "measured"  # what RUN uses now
