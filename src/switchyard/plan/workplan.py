"""The WorkPlan: which partitions each worker slot processes, as a versioned JSON document.

A plan records what it was computed for (app, args, workers: its fingerprint),
per worker slot the partitions with their weights, and whether the operator
edited it. ``build_plan`` makes one with the planner; ``reassign`` and
``reassign_many`` return edited copies. Slot ids are ``"<host>-<i>"``; hosts may
be IPv6 addresses, so a slot id is split with ``rsplit("-", 1)``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from switchyard import workspace
from switchyard.exceptions import PlanError
from switchyard.cluster.addresses import slot_name
from switchyard.plan import planner

if TYPE_CHECKING:
    from switchyard.plan.costs import PlanCosts

SCHEMA_VERSION = 1
_FIX = "re-plan with get_distrib or correct the plan file"


@dataclass
class PlannedPartition:
    """A partition in a plan; ``index`` is its position in the app's ``partitions()``.

    ``weight`` is what the plan balanced: the app's weight, or for a plan from measured
    costs its predicted seconds. ``cost`` is its predicted seconds on a slot of speed 1
    (measured, or its weight scaled) when the app has a run history, else None.
    """

    name: str
    weight: float
    index: int
    cost: float | None = None

    def to_dict(self) -> dict:
        d = {"name": self.name, "weight": self.weight, "index": self.index}
        if self.cost is not None:
            d["cost"] = self.cost
        return d


@dataclass
class WorkerSlot:
    """One worker process: id ``"<host>-<i>"``, its host, capacity and partitions."""

    id: str
    host: str
    capacity: float = 1.0
    partitions: list[PlannedPartition] = field(default_factory=list)

    @property
    def weight(self) -> float:
        return math.fsum(p.weight for p in self.partitions)

    @property
    def load(self) -> float:
        return self.weight / self.capacity

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "host": self.host,
            "capacity": self.capacity,
            "partitions": [p.to_dict() for p in self.partitions],
        }


@dataclass
class WorkPlan:
    """A work plan: the partitions of one app run distributed over worker slots."""

    app: str
    fingerprint: str
    args: dict
    workers: dict[str, int]
    scheduler: str
    slots: list[WorkerSlot]
    created_at: float
    edited: bool = False
    schema_version: int = SCHEMA_VERSION
    # Where the planned workers came from ("settings", "warm cluster", "scheduler <address>")
    # and the one line saying how they differ from [cluster].workers (None when they do not).
    workers_from: str = "settings"
    note: str | None = None
    # Which costs the plan used (``plan.costs.PlanCosts.to_doc``): source, note, slot speeds;
    # None for a plan made before costs were measured (the app's weights).
    costs: dict | None = None

    # serialisation -----------------------------------------------------------
    def to_dict(self) -> dict:
        return {**self._head(), "slots": [s.to_dict() for s in self.slots]}

    def _head(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "app": self.app,
            "fingerprint": self.fingerprint,
            "args": self.args,
            "workers": dict(self.workers),
            "scheduler": self.scheduler,
            "created_at": self.created_at,
            "edited": self.edited,
            "workers_from": self.workers_from,
            "note": self.note,
            **({"costs": self.costs} if self.costs is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: Any, source: str | Path | None = None) -> WorkPlan:
        """Validate a plan document and build the plan.

        Raises:
            PlanError: naming the key at fault (and ``source``, the file, if given).
        """
        where = f"work plan {source}" if source else "work plan"

        def fail(key: str, problem: str, fix: str = _FIX) -> PlanError:
            return PlanError(f"{where}: key '{key}': {problem}: {fix}")

        if not isinstance(d, dict):
            raise PlanError(f"{where}: expected a JSON object, got {type(d).__name__}: {_FIX}")
        version = d.get("schema_version")
        if version is None:
            raise fail("schema_version", "missing")
        if type(version) is not int:
            raise fail("schema_version", f"{version!r} is not a whole number")
        if version != SCHEMA_VERSION:
            newer = version > SCHEMA_VERSION
            raise fail(
                "schema_version",
                f"version {version} is not supported "
                f"(this switchyard reads version {SCHEMA_VERSION})",
                "upgrade switchyard" if newer else "re-plan with get_distrib",
            )
        for key, kind in (
            ("app", str),
            ("fingerprint", str),
            ("scheduler", str),
            ("args", dict),
            ("workers", dict),
            ("slots", list),
        ):
            if key not in d:
                raise fail(key, "missing")
            if not isinstance(d[key], kind):
                raise fail(key, f"expected {_kind(kind)}, got {type(d[key]).__name__}")
        for host, count in d["workers"].items():
            if type(count) is not int or count < 0:
                raise fail(f"workers.{host}", f"count {count!r} is not a whole number >= 0")
        created_at = d.get("created_at", 0.0)
        if not _is_number(created_at):
            raise fail("created_at", f"{created_at!r} is not a number (seconds since the epoch)")
        edited = d.get("edited", False)
        if not isinstance(edited, bool):
            raise fail("edited", f"{edited!r} is not true or false")
        costs = d.get("costs")
        if costs is not None and not isinstance(costs, dict):
            raise fail("costs", f"expected an object, got {type(costs).__name__}")
        if not d["slots"]:
            raise fail(
                "slots", "no worker slots", "re-plan with at least one worker in [cluster.workers]"
            )

        slots: list[WorkerSlot] = []
        slot_ids: set[str] = set()
        names: set[str] = set()
        indices: set[int] = set()
        for s_pos, s in enumerate(d["slots"]):
            key = f"slots[{s_pos}]"
            if not isinstance(s, dict):
                raise fail(key, f"expected an object, got {type(s).__name__}")
            for sub, kind in (("id", str), ("host", str), ("partitions", list)):
                if not isinstance(s.get(sub), kind):
                    raise fail(
                        f"{key}.{sub}", f"expected {_kind(kind)}, got {type(s.get(sub)).__name__}"
                    )
            if s["id"] in slot_ids:
                raise fail(
                    f"{key}.id",
                    f"slot id '{s['id']}' appears twice",
                    "give each worker slot a unique id",
                )
            slot_ids.add(s["id"])
            capacity = s.get("capacity", 1.0)
            if not _is_number(capacity) or not math.isfinite(capacity) or capacity <= 0:
                raise fail(f"{key}.capacity", f"{capacity!r} is not a number > 0")
            parts: list[PlannedPartition] = []
            for p_pos, p in enumerate(s["partitions"]):
                pkey = f"{key}.partitions[{p_pos}]"
                if not isinstance(p, dict):
                    raise fail(pkey, f"expected an object, got {type(p).__name__}")
                name, weight, index = p.get("name"), p.get("weight"), p.get("index")
                if not isinstance(name, str):
                    raise fail(f"{pkey}.name", f"expected a string, got {type(name).__name__}")
                if not _is_number(weight) or not math.isfinite(weight) or weight < 0:
                    raise fail(f"{pkey}.weight", f"{weight!r} is not a number >= 0")
                if type(index) is not int or index < 0:
                    raise fail(f"{pkey}.index", f"{index!r} is not a whole number >= 0")
                if name in names:
                    raise fail(
                        f"{pkey}.name",
                        f"partition '{name}' appears twice",
                        "keep each partition on exactly one worker slot",
                    )
                if index in indices:
                    raise fail(f"{pkey}.index", f"index {index} appears twice", _FIX)
                cost = p.get("cost")
                if cost is not None and (not _is_number(cost) or not math.isfinite(cost) or cost < 0):
                    raise fail(f"{pkey}.cost", f"{cost!r} is not a number >= 0 (seconds)")
                names.add(name)
                indices.add(index)
                parts.append(PlannedPartition(name=name, weight=float(weight), index=index,
                                              cost=None if cost is None else float(cost)))
            slots.append(
                WorkerSlot(id=s["id"], host=s["host"], capacity=float(capacity), partitions=parts)
            )
        return cls(
            app=d["app"],
            fingerprint=d["fingerprint"],
            args=d["args"],
            workers=dict(d["workers"]),
            scheduler=d["scheduler"],
            slots=slots,
            created_at=float(created_at),
            edited=edited,
            schema_version=version,
            workers_from=str(d.get("workers_from") or "settings"),
            note=d.get("note") if isinstance(d.get("note"), str) else None,
            costs=costs,
        )

    def to_json(self) -> str:
        """The plan document, indented, with one line per partition.

        A 100,000-partition plan is ~5 MB written in ~0.3 s this way; indenting every key of
        every partition made it 9 MB, three times slower, and doubled the writer's memory.
        """
        head = json.dumps(self._head(), indent=2)[:-2]  # without the closing "\n}"
        text = [head, ',\n  "slots": [']
        for i, s in enumerate(self.slots):
            slot = json.dumps({"id": s.id, "host": s.host, "capacity": s.capacity}, separators=(", ", ": "))
            text.append(f'{"," if i else ""}\n    {slot[:-1]}, "partitions": [')
            text.append(",".join([_partition_line(p) for p in s.partitions]))
            text.append("\n    ]}" if s.partitions else "]}")
        text.append("\n  ]\n}\n")
        return "".join(text)

    @classmethod
    def from_json(cls, text: str, source: str | Path | None = None) -> WorkPlan:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            where = f"work plan {source}" if source else "work plan"
            raise PlanError(
                f"{where}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}): {_FIX}"
            ) from None
        return cls.from_dict(doc, source=source)

    def save(self, path: str | Path) -> Path:
        """Write the plan to ``path`` atomically."""
        return workspace.atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> WorkPlan:
        """Read a plan file.

        Raises:
            PlanError: naming the file when it is missing, unreadable or invalid.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PlanError(f"no work plan at {path}: run get_distrib to make one") from None
        except (OSError, UnicodeDecodeError) as e:
            raise PlanError(
                f"work plan {path} cannot be read ({e}): re-plan with get_distrib"
            ) from None
        return cls.from_json(text, source=path)

    # figures -----------------------------------------------------------------
    def loads(self) -> dict[str, float]:
        """Per slot id: the sum of its partitions' weights divided by its capacity."""
        return {s.id: s.load for s in self.slots}

    @property
    def makespan(self) -> float:
        return max((s.load for s in self.slots), default=0.0)

    @property
    def lower_bound(self) -> float:
        weights = [p.weight for s in self.slots for p in s.partitions]
        return planner.lower_bound(weights, [s.capacity for s in self.slots])

    @property
    def total_weight(self) -> float:
        return math.fsum(p.weight for s in self.slots for p in s.partitions)

    @property
    def partition_count(self) -> int:
        return sum(len(s.partitions) for s in self.slots)

    def load_percent(self) -> dict[str, float]:
        """Per slot id: its share of the total weight, in percent (0.0 when all weights are 0)."""
        total = self.total_weight
        return {s.id: (100.0 * s.weight / total if total > 0 else 0.0) for s in self.slots}

    def assignment(self) -> dict[str, str]:
        """Partition name -> slot id."""
        return {p.name: s.id for s in self.slots for p in s.partitions}

    def slot(self, slot_id: str) -> WorkerSlot:
        for s in self.slots:
            if s.id == slot_id:
                return s
        raise PlanError(
            f"unknown worker '{slot_id}': choose one of: {_choices(s.id for s in self.slots)}"
        )

    def matches(self, app: str, args: Mapping[str, Any], workers: Mapping[str, int]) -> bool:
        """True if the plan was made for this app, args and workers (the fingerprint matches)."""
        return self.fingerprint == plan_fingerprint(app, args, workers)

    @property
    def cost_source(self) -> str:
        """``"measured"`` or ``"weights"``: what the plan balanced."""
        return str((self.costs or {}).get("source") or "weights")

    @property
    def cost_note(self) -> str | None:
        return (self.costs or {}).get("note")

    def predicted_seconds(self) -> dict[str, float] | None:
        """Per slot id: the seconds its partitions should take (their costs over the slot's
        measured speed); None when the app has no run history (costs unknown)."""
        speeds = (self.costs or {}).get("speeds") or {}
        out = {}
        for s in self.slots:
            if any(p.cost is None for p in s.partitions):
                return None
            speed = float(speeds.get(s.id, s.capacity if self.cost_source == "measured" else 1.0))
            out[s.id] = math.fsum(p.cost for p in s.partitions) / speed
        return out if any(p.cost is not None for s in self.slots for p in s.partitions) else None

    @property
    def predicted_makespan_seconds(self) -> float | None:
        loads = self.predicted_seconds()
        return max(loads.values(), default=0.0) if loads is not None else None

    def summary(self) -> dict:
        span, bound = self.makespan, self.lower_bound
        predicted = self.predicted_seconds()
        return {
            "app": self.app,
            "fingerprint": self.fingerprint,
            "partitions": self.partition_count,
            "workers": len(self.slots),
            "hosts": len({s.host for s in self.slots}),
            "total_weight": self.total_weight,
            "makespan": span,
            "lower_bound": bound,
            "ratio": span / bound if bound > 0 else 1.0,
            "loads": self.loads(),
            "edited": self.edited,
            "slots": [s.id for s in self.slots],
            "workers_from": self.workers_from,
            "note": self.note,
            "costs": self.cost_source,
            "cost_note": self.cost_note,
            "predicted_makespan_seconds": max(predicted.values(), default=0.0) if predicted else None,
            "predicted_seconds": predicted,
        }


def plan_fingerprint(app: str, args: Mapping[str, Any], workers: Mapping[str, int]) -> str:
    """A short hash of what a plan was computed for; the order of ``workers`` does not matter."""
    doc = {
        "app": app,
        "args": _plain_args(args),
        "workers": {str(h): int(c) for h, c in workers.items()},
    }
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def build_plan(
    app: str,
    args: Mapping[str, Any],
    workers: Mapping[str, int],
    scheduler: str,
    partitions: Iterable[Any],
    capacities: Mapping[str, float] | None = None,
    now: float | None = None,
    costs: "PlanCosts | None" = None,
) -> WorkPlan:
    """Plan the app's partitions over the worker slots.

    Args:
        app: The app's name.
        args: The run arguments the partitions were made from (a dict or an args model).
        workers: Host -> number of worker processes; slots are made in this order,
            ids ``f"{host}-{i}"`` with ``i`` counting from 0 per host.
        scheduler: The scheduler address the plan is for.
        partitions: Objects with ``.name`` and ``.weight`` (``switchyard.app.Partition``).
        capacities: Optional slot id -> relative speed (default 1.0; a plan from measured
            costs takes the measured speeds).
        now: The creation time (seconds since the epoch); defaults to the current time.
        costs: What to plan on (``plan.costs.plan_costs``): the partitions' values (their
            weights, or measured seconds), slot speeds and predicted costs; default the weights.

    Raises:
        PlanError: Duplicate partition names, no worker slots, an unknown slot id in
            ``capacities``, or an invalid weight or capacity.
    """
    args = _plain_args(args)
    hosts: list[str] = []
    for host, count in workers.items():
        if type(count) is not int or count < 0:
            raise PlanError(f"workers: host '{host}' has count {count!r}: give a whole number >= 1")
        hosts.extend([str(host)] * count)
    if not hosts:
        raise PlanError("workers: no worker slots: give at least one host with a count >= 1")
    per_host: dict[str, int] = {}
    slots: list[WorkerSlot] = []
    for host in hosts:
        i = per_host.get(host, 0)
        per_host[host] = i + 1
        slots.append(WorkerSlot(id=slot_name(host, i), host=host))
    if costs is not None and costs.capacities and not capacities:
        capacities = {s.id: costs.capacities[s.id] for s in slots if s.id in costs.capacities}
    if capacities:
        by_id = {s.id: s for s in slots}
        for slot_id, cap in capacities.items():
            if slot_id not in by_id:
                raise PlanError(
                    f"capacities: unknown worker '{slot_id}': choose one of: {_choices(by_id)}"
                )
            if not _is_number(cap) or not math.isfinite(cap) or cap <= 0:
                raise PlanError(
                    f"capacities: worker '{slot_id}' has capacity {cap!r}: give a number > 0"
                )
            by_id[slot_id].capacity = float(cap)

    parts = list(partitions)
    seen: set[str] = set()
    for p in parts:
        if p.name in seen:
            raise PlanError(
                f"app '{app}': partition name '{p.name}' appears twice: "
                "give each partition a unique name"
            )
        seen.add(p.name)
    weights = [p.weight for p in parts] if costs is None else list(costs.values)
    if len(weights) != len(parts):
        raise PlanError(f"app '{app}': {len(weights)} costs for {len(parts)} partitions: re-plan")
    predicted = [None] * len(parts) if costs is None else list(costs.costs)
    try:
        assign = planner.plan_partitions(weights, [s.capacity for s in slots])
    except PlanError as e:
        raise PlanError(f"app '{app}': {e}") from None
    for index, (p, j) in enumerate(zip(parts, assign)):
        slots[j].partitions.append(
            PlannedPartition(name=str(p.name), weight=float(weights[index]), index=index,
                             cost=predicted[index])
        )
    return WorkPlan(
        app=app,
        fingerprint=plan_fingerprint(app, args, workers),
        args=args,
        workers={str(h): c for h, c in workers.items()},
        scheduler=scheduler,
        slots=slots,
        created_at=time.time() if now is None else float(now),
        costs=costs.to_doc() if costs is not None else None,
    )


def reassign(plan: WorkPlan, partition: str, worker: str) -> WorkPlan:
    """A copy of ``plan`` with ``partition`` moved to the slot ``worker``, marked edited.

    Raises:
        PlanError: Unknown partition or worker, naming it and listing valid choices.
    """
    return reassign_many(plan, {partition: worker})


def reassign_many(plan: WorkPlan, moves: Mapping[str, str]) -> WorkPlan:
    """A copy of ``plan`` with each partition name in ``moves`` moved to its slot id, marked edited.

    All moves are checked before any is applied.

    Raises:
        PlanError: Unknown partition or worker, naming it and listing valid choices.
    """
    where = plan.assignment()
    slot_ids = [s.id for s in plan.slots]
    known_slots = set(slot_ids)
    for name, target in moves.items():
        if name not in where:
            raise PlanError(f"unknown partition '{name}': choose one of: {_choices(where)}")
        if target not in known_slots:
            raise PlanError(
                f"cannot move partition '{name}' to unknown worker '{target}': "
                f"choose one of: {_choices(slot_ids)}"
            )
    slots = []
    for s in plan.slots:
        kept = [
            PlannedPartition(p.name, p.weight, p.index, p.cost)
            for p in s.partitions
            if moves.get(p.name, s.id) == s.id
        ]
        slots.append(WorkerSlot(id=s.id, host=s.host, capacity=s.capacity, partitions=kept))
    by_id = {s.id: s for s in slots}
    for s in plan.slots:
        for p in s.partitions:
            target = moves.get(p.name, s.id)
            if target != s.id:
                by_id[target].partitions.append(PlannedPartition(p.name, p.weight, p.index, p.cost))
    for s in slots:
        # Keep the app's partition order within a slot so edited and fresh plans run alike.
        s.partitions.sort(key=lambda p: p.index)
    return WorkPlan(
        app=plan.app,
        fingerprint=plan.fingerprint,
        args=dict(plan.args),
        workers=dict(plan.workers),
        scheduler=plan.scheduler,
        slots=slots,
        created_at=plan.created_at,
        edited=True,
        schema_version=plan.schema_version,
        workers_from=plan.workers_from,
        note=plan.note,
        costs=dict(plan.costs) if plan.costs is not None else None,
    )


def slot_host(slot_id: str) -> str:
    """The host part of a slot id (``"::1-0"`` -> ``"::1"``)."""
    return slot_id.rsplit("-", 1)[0]


# helpers ----------------------------------------------------------------------


def _plain_args(args: Any) -> dict:
    # Args models and values like Path become plain JSON, so the fingerprint is the same
    # whether a caller passes the model or the dict it was read from.
    if hasattr(args, "model_dump"):
        args = args.model_dump(mode="json")
    return json.loads(json.dumps(dict(args), default=str))


def _partition_line(p: PlannedPartition) -> str:
    # What json.dumps(p.to_dict(), separators=(", ", ": ")) writes, 3x faster: the weight and
    # cost are finite floats (repr is JSON's float form), the index an int; only the name is escaped.
    cost = "" if p.cost is None else f', "cost": {float(p.cost)!r}'
    return f'\n      {{"name": {json.dumps(p.name)}, "weight": {float(p.weight)!r}, "index": {int(p.index)}{cost}}}'


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _kind(kind: type) -> str:
    return {str: "a string", dict: "an object", list: "a list"}.get(kind, kind.__name__)


def _choices(values: Iterable[str], limit: int = 5) -> str:
    values = list(values)
    shown = ", ".join(f"'{v}'" for v in values[:limit])
    if len(values) > limit:
        shown += f", … ({len(values) - limit} more)"
    return shown or "none"
