"""Planned against actual: what a finished run's plan predicted and what its batches measured.

Pure functions over a :class:`~switchyard.plan.workplan.WorkPlan` and the run's
batch rows (objects with ``name``, ``weight``, ``worker``, ``planned_worker``,
``status``, ``started_at``, ``ended_at``). A plan with predicted seconds (the app
had a run history) is compared as is; a plan of weights only is scaled so its
total is the measured total, so the comparison shows how the weights shared the
work out, not their unit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Partitions listed as the most mis-estimated.
MISESTIMATED_SHOWN = 5


@dataclass
class RunReview:
    """Per worker: planned and measured seconds; the measured makespan and its lower bound."""

    workers: list[str]
    planned: dict[str, float]
    measured: dict[str, float]
    basis: str  # "predicted" (the plan's seconds) or "weights" (its weight shares, scaled)
    makespan: float
    lower_bound: float
    misestimated: list[dict] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.makespan / self.lower_bound if self.lower_bound > 0 else 1.0

    def to_dict(self) -> dict:
        return {"workers": list(self.workers), "planned_seconds": dict(self.planned),
                "measured_seconds": dict(self.measured), "planned_basis": self.basis,
                "makespan_seconds": self.makespan, "lower_bound_seconds": self.lower_bound,
                "ratio": self.ratio, "misestimated": list(self.misestimated)}


def review(plan: Any, batches: Iterable[Any], speeds: Mapping[str, float] | None = None) -> RunReview | None:
    """The review of a run from its plan and batch rows; None when no batch completed.

    ``speeds`` are the slots' measured relative speeds (1.0 when not given): the lower
    bound is that of this run's measured costs, ``max(sum of costs / sum of speeds,
    largest cost / fastest speed)`` with a batch's cost its seconds times its slot's speed.
    """
    done = [b for b in batches if _status(b) == "completed" and b.started_at is not None
            and b.ended_at is not None]
    if not done:
        return None
    speeds = dict(speeds or {})
    slots = [s.id for s in plan.slots] if plan is not None else []
    workers = slots + sorted({str(b.worker) for b in done if b.worker and str(b.worker) not in slots})
    seconds = {id(b): max(0.0, b.ended_at - b.started_at) for b in done}
    measured = {w: 0.0 for w in workers}
    for b in done:
        measured[str(b.worker or b.planned_worker)] = measured.get(str(b.worker or b.planned_worker), 0.0) + seconds[id(b)]
    total = math.fsum(seconds.values())

    predicted_by_slot = plan.predicted_seconds() if plan is not None else None
    costs = {p.name: p.cost for s in plan.slots for p in s.partitions} if plan is not None else {}
    if predicted_by_slot is not None:
        basis = "predicted"
        planned = {w: float(predicted_by_slot.get(w, 0.0)) for w in workers}
        plan_speeds = (plan.costs or {}).get("speeds") or {}

        def predicted(b) -> float:
            cost = costs.get(b.name)
            speed = float(plan_speeds.get(str(b.worker), speeds.get(str(b.worker), 1.0)))
            return (cost if cost is not None else 0.0) / speed
    else:
        basis = "weights"
        weight_total = math.fsum(float(b.weight) for b in done)
        scale = total / weight_total if weight_total > 0 else 0.0
        by_slot = {}
        if plan is not None:
            by_slot = {s.id: s.weight for s in plan.slots}
            plan_total = math.fsum(by_slot.values())
            planned = {w: (by_slot.get(w, 0.0) / plan_total * total if plan_total > 0 else 0.0) for w in workers}
        else:
            planned = {w: 0.0 for w in workers}
            for b in done:
                planned[str(b.planned_worker)] = planned.get(str(b.planned_worker), 0.0) + float(b.weight) * scale

        def predicted(b) -> float:
            return float(b.weight) * scale

    start = min(b.started_at for b in done)
    end = max(b.ended_at for b in done)
    run_costs = [seconds[id(b)] * speeds.get(str(b.worker), 1.0) for b in done]
    slot_speeds = [speeds.get(w, 1.0) for w in (slots or workers)]
    bound = max(math.fsum(run_costs) / math.fsum(slot_speeds), max(run_costs) / max(slot_speeds))
    rows = []
    for b in done:
        want, got = predicted(b), seconds[id(b)]
        if want <= 0 and got <= 0:
            continue
        ratio = got / want if want > 0 else math.inf
        rows.append({"partition": b.name, "worker": str(b.worker), "predicted_seconds": want,
                     "measured_seconds": got, "ratio": ratio})
    rows.sort(key=lambda r: -abs(math.log(r["ratio"])) if 0 < r["ratio"] < math.inf else -math.inf)
    return RunReview(workers=workers, planned=planned, measured=measured, basis=basis,
                     makespan=end - start, lower_bound=bound, misestimated=rows[:MISESTIMATED_SHOWN])


def _status(b: Any) -> str:
    s = b.status
    return str(getattr(s, "value", s))
