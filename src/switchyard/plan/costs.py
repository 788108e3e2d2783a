"""Measured costs: what past runs of an app say its partitions and worker slots cost.

A run's batch rows hold, for each completed partition, the worker slot that ran
it and the start and end of its successful attempt (a retried batch's row is
overwritten by each attempt, so a completed row is the attempt that succeeded).
From the newest completed runs of the same app *in the same mode* (pool and
cython change speed) :func:`fit` makes a :class:`CostModel`:

- ``costs``: per partition name, its seconds on a slot of speed 1, from runs
  whose *cost fingerprint* matches (the args that change costs: an app declares
  them as ``cost_args = ("samples", ...)``; without it every arg counts);
- ``speeds``: per worker slot, its relative speed (the median slot is 1.0);
- ``seconds_per_weight``: seconds per unit of the app's weight at speed 1, the
  scale for partitions never measured (their weight times it).

The model is the fixed point of ``t = cost[p] / speed[slot]`` fitted by
alternating medians: a partition's cost is the low median of its recent
observations times the slots' speeds, a slot's speed the median of cost over
time of what ran on it. Medians make one slow batch (a pause, a noisy
neighbour) move nothing; a slot's speed is only learnt relative to slots that
ran the same partitions (across runs, or after work stealing), otherwise the
slots count as equally fast. Pure functions except :func:`observations`, which
reads a run store through its public reads only.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from switchyard.exceptions import SwitchyardError

WEIGHTS = "weights"
MEASURED = "measured"
COST_SOURCES = (WEIGHTS, MEASURED)
#: Completed runs of the app (in the mode) read, newest first.
HISTORY_RUNS = 20
#: Observations of a partition kept, newest first: costs follow the data when it changes.
RECENT_PER_PARTITION = 5
#: Batch rows read at most (whole runs, newest first): a history of huge runs stays quick to read.
MAX_OBSERVATIONS = 200_000
#: Alternating-median rounds; the fit usually settles in 3 or 4.
FIT_ROUNDS = 12
#: A batch shorter than this counts as this long (no division by zero, no infinite speed).
MIN_SECONDS = 1e-4
#: The slot name of batches that ran in the driver (modes without the dask bit).
DRIVER_SLOT = "driver"


def check_source(value: Any) -> str:
    """The cost source named by ``value`` (``"weights"`` or ``"measured"``).

    Raises:
        SwitchyardError: naming the value and the choices.
    """
    if value is None:
        return WEIGHTS
    text = str(value).strip().lower()
    if text not in COST_SOURCES:
        raise SwitchyardError(f"costs {value!r} is not a cost source: choose 'weights' (the app's "
                              "weights, the default) or 'measured' (costs measured in past runs)")
    return text


def cost_fingerprint(args: Mapping[str, Any], cost_args: Sequence[str] | None = None) -> str:
    """A short hash of the args that change what partitions cost (all args when not declared)."""
    plain = json.loads(json.dumps(dict(args), default=str))
    if cost_args is not None:
        plain = {k: plain.get(k) for k in sorted(cost_args)}
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Observation:
    """One completed batch: partition ``name`` ran on ``slot`` in ``seconds``."""

    name: str
    fingerprint: str
    slot: str
    weight: float
    seconds: float
    run: str = ""
    at: float = 0.0  # when it ended: newer observations win


@dataclass
class CostModel:
    """Measured costs of one app in one mode, for one cost fingerprint."""

    app: str
    mode: int
    fingerprint: str
    costs: dict[str, float] = field(default_factory=dict)
    speeds: dict[str, float] = field(default_factory=dict)
    seconds_per_weight: float | None = None
    runs: list[str] = field(default_factory=list)
    observations: int = 0

    @property
    def is_empty(self) -> bool:
        return not self.costs and self.seconds_per_weight is None

    def speed(self, slot: str) -> float:
        """The slot's relative speed; 1.0 (the median slot) for a slot never measured."""
        return self.speeds.get(slot, 1.0)

    def slot_seconds_per_weight(self, slot: str) -> float | None:
        """Seconds per unit of the app's weight on ``slot``."""
        if self.seconds_per_weight is None:
            return None
        return self.seconds_per_weight / self.speed(slot)

    def cost(self, name: str, weight: float) -> tuple[float | None, bool]:
        """(seconds at speed 1, measured?): the partition's measured cost, else its weight
        scaled by ``seconds_per_weight`` (None when nothing was ever measured)."""
        if name in self.costs:
            return self.costs[name], True
        if self.seconds_per_weight is None:
            return None, False
        return float(weight) * self.seconds_per_weight, False

    def to_dict(self) -> dict:
        return {"app": self.app, "mode": self.mode, "fingerprint": self.fingerprint,
                "partitions": len(self.costs), "speeds": dict(self.speeds),
                "seconds_per_weight": self.seconds_per_weight, "runs": list(self.runs),
                "observations": self.observations}


def fit(observations: Iterable[Observation], *, app: str = "", mode: int = 0,
        fingerprint: str = "") -> CostModel:
    """The cost model of ``observations`` for partitions of cost fingerprint ``fingerprint``.

    Every observation informs the slots' speeds; only those of ``fingerprint`` give
    partition costs and the weight scale (observations of other args still tell how fast
    each slot is).
    """
    obs = [o for o in observations if o.seconds is not None and math.isfinite(o.seconds)]
    model = CostModel(app=app, mode=mode, fingerprint=fingerprint, observations=len(obs))
    if not obs:
        return model
    by_key: dict[tuple[str, str], list[Observation]] = defaultdict(list)
    for o in sorted(obs, key=lambda o: -o.at):
        if len(by_key[(o.fingerprint, o.name)]) < RECENT_PER_PARTITION:
            by_key[(o.fingerprint, o.name)].append(o)
    kept = [o for group in by_key.values() for o in group]
    by_slot: dict[str, list[Observation]] = defaultdict(list)
    for o in kept:
        by_slot[o.slot].append(o)
    speeds = {slot: 1.0 for slot in by_slot}
    costs: dict[tuple[str, str], float] = {}
    for _ in range(FIT_ROUNDS):
        costs = {key: statistics.median_low([_secs(o) * speeds[o.slot] for o in group])
                 for key, group in by_key.items()}
        new = {slot: statistics.median([costs[(o.fingerprint, o.name)] / _secs(o) for o in group])
               for slot, group in by_slot.items()}
        norm = statistics.median(new.values())
        new = {slot: s / norm for slot, s in new.items()}
        settled = all(abs(new[s] - speeds[s]) <= 1e-6 * speeds[s] for s in new)
        speeds = new
        if settled:
            break
    # The costs of the final speeds (the loop may stop on the speeds' update).
    costs = {key: statistics.median_low([_secs(o) * speeds[o.slot] for o in group])
             for key, group in by_key.items()}
    model.speeds = speeds
    model.costs = {name: c for (fp, name), c in costs.items() if fp == fingerprint}
    weights = {o.name: o.weight for o in kept if o.fingerprint == fingerprint}
    scale = [model.costs[n] / w for n, w in weights.items() if w > 0 and n in model.costs]
    if not scale:  # other args only: their partitions still say what a unit of weight costs
        scale = [costs[key] / group[0].weight for key, group in by_key.items() if group[0].weight > 0]
    model.seconds_per_weight = statistics.median(scale) if scale else None
    model.runs = sorted({o.run for o in kept if o.run})
    return model


def _secs(o: Observation) -> float:
    return max(float(o.seconds), MIN_SECONDS)


# reading the run store ----------------------------------------------------------------------


def observations(store: Any, app: str, mode: int, cost_args: Sequence[str] | None = None,
                 runs: int = HISTORY_RUNS) -> list[Observation]:
    """The completed batches of the newest ``runs`` completed runs of ``app`` in ``mode``.

    ``store`` is a :class:`~switchyard.runs.store.RunStore` (read through ``list`` and
    ``batches`` only). Batches that ran in the driver (no dask bit) count as one slot.
    """
    found = []
    for o in store.list(status="completed", app=app, kind="app", limit=max(50, runs * 5)):
        if int(o.mode) == int(mode):
            found.append(o)
        if len(found) >= runs:
            break
    uses_dask = bool(int(mode) & 4)
    out: list[Observation] = []
    for o in found:
        if len(out) >= MAX_OBSERVATIONS:
            break
        fp = cost_fingerprint(o.args or {}, cost_args)
        for b in store.batches(o.id, status="completed"):
            if b.started_at is None or b.ended_at is None:
                continue
            slot = (b.worker or b.planned_worker or "?") if uses_dask else DRIVER_SLOT
            out.append(Observation(name=b.name, fingerprint=fp, slot=str(slot), weight=float(b.weight),
                                   seconds=max(0.0, b.ended_at - b.started_at), run=o.id, at=b.ended_at))
    return out


def measured_model(store: Any, app: str, mode: int, args: Mapping[str, Any],
                   cost_args: Sequence[str] | None = None) -> CostModel:
    """The cost model of ``app`` in ``mode`` for these ``args``, from the store's history."""
    return fit(observations(store, app, mode, cost_args), app=app, mode=int(mode),
               fingerprint=cost_fingerprint(args, cost_args))


# planning inputs ----------------------------------------------------------------------------


@dataclass
class PlanCosts:
    """What a plan is made from: a value per partition, a capacity per slot, and what it says."""

    source: str
    values: list[float]
    capacities: dict[str, float]
    costs: list[float | None]  # predicted seconds at speed 1 (None without history)
    speeds: dict[str, float]
    measured: int  # partitions with a measured cost
    note: str
    runs: list[str] = field(default_factory=list)
    seconds_per_weight: float | None = None

    def to_doc(self) -> dict:
        """The plan's ``costs`` document: which costs it used and what they predict with."""
        return {"source": self.source, "note": self.note, "measured_partitions": self.measured,
                "runs": list(self.runs), "speeds": dict(self.speeds),
                "seconds_per_weight": self.seconds_per_weight}


def plan_costs(source: str, model: CostModel | None, partitions: Sequence[Any],
               slots: Sequence[str], what: str = "") -> PlanCosts:
    """The planner's inputs for ``source`` over ``partitions`` (``.name``, ``.weight``).

    ``measured`` plans on the model's costs (weights scaled for unseen partitions) and
    slot speeds; without any history it falls back to the weights and says so in
    ``note``. A ``weights`` plan still carries the model's predictions when there is a
    history, so its predicted seconds can be shown next to a measured plan's.
    """
    source = check_source(source)
    what = what or "this app"
    weights = [float(p.weight) for p in partitions]
    empty = model is None or model.is_empty
    predicted: list[float | None] = [None] * len(weights)
    measured = 0
    speeds: dict[str, float] = {}
    if not empty:
        for i, p in enumerate(partitions):
            predicted[i], seen = model.cost(str(p.name), float(p.weight))
            measured += seen
        speeds = {s: model.speed(s) for s in slots}
    if source == MEASURED and empty:
        return PlanCosts(source=WEIGHTS, values=weights, capacities={}, costs=predicted, speeds={},
                         measured=0, note=f"no measured runs of {what} yet: planned from the app's weights")
    if source == MEASURED:
        values = [c if c is not None else 0.0 for c in predicted]
        note = (f"planned from measured costs: {measured} of {len(weights)} partitions measured in "
                f"{len(model.runs)} runs, the others from their weights scaled "
                f"({model.seconds_per_weight:.3g} s per unit)" if model.seconds_per_weight is not None else
                f"planned from measured costs: {measured} of {len(weights)} partitions measured")
        return PlanCosts(source=MEASURED, values=values, capacities=dict(speeds), costs=predicted,
                         speeds=speeds, measured=measured, note=note, runs=list(model.runs),
                         seconds_per_weight=model.seconds_per_weight)
    note = "planned from the app's weights"
    if not empty:
        note += f" (measured costs of {len(model.runs)} runs predict its seconds)"
    return PlanCosts(source=WEIGHTS, values=weights, capacities={}, costs=predicted, speeds=speeds,
                     measured=measured, note=note, runs=list(model.runs) if not empty else [],
                     seconds_per_weight=None if empty else model.seconds_per_weight)
