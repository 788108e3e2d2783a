"""Following a plan made from measured costs: each worker gets its own batches, biggest first.

A plan from weights is a guess, so the driver hands Dask all of a worker's batches at
once and lets work stealing even things out. A plan from measured costs knows what each
batch costs, and there that hurts: Dask estimates every batch at its task prefix's
average (all batches of a run share one), so the worker planned for one big batch and a
few small ones looks idle next to one holding many small ones, steals some of them, and
they wait behind the big one (1.16 x the lower bound in ``bench_adaptive``). Submission
order is index order too, so a big batch planned last on its worker starts last.

So for a plan whose ``costs.source`` is ``measured`` the driver keeps at most
:data:`WINDOW` batches in flight per worker slot (one executing, one queued: nothing
worth stealing; none queued behind a batch predicted longer than :data:`QUEUE_BEHIND`,
where the round trip to hand out the next one costs nothing and a batch queued behind
a straggler would wait for it), in the plan's order of predicted seconds, biggest first; a slot whose
own list is done takes the smallest batch left of the slot with the most predicted
seconds still to hand out (the driver steals, with known costs, instead of Dask with
averages). Failed batches go back to the front of their slot's list for their retry.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from pathlib import Path

WINDOW = 2  # batches in flight per worker slot: one executing, one queued behind it
QUEUE_BEHIND = 1.0  # predicted seconds: nothing is queued behind a batch longer than this


class PlanWindow:
    """Which batches to submit next, and for which slot (pure bookkeeping: no I/O)."""

    def __init__(self, slots: dict[str, list[int]], cost: dict[int, float], window: int = WINDOW):
        self.cost = cost
        self.window = int(window)
        self.queues = {s: deque(sorted(idxs, key=lambda i: (-cost.get(i, 0.0), i))) for s, idxs in slots.items()}
        self.left = {s: sum(cost.get(i, 0.0) for i in q) for s, q in self.queues.items()}
        self.holding: dict[int, str] = {}  # batch in flight -> the slot it was handed to
        self.count: Counter = Counter()
        self.busy_for: Counter = Counter()  # slot -> predicted seconds of its batches in flight

    @classmethod
    def from_plan(cls, run_dir: Path, total: int) -> "PlanWindow | None":
        """The window of a run whose plan file is a plan from measured costs, else None."""
        try:
            doc = json.loads((Path(run_dir) / "plan.json").read_text())
            if (doc.get("costs") or {}).get("source") != "measured":
                return None
            slots = {str(s["id"]): [int(p["index"]) for p in s.get("partitions", ())] for s in doc["slots"]}
            cost = {int(p["index"]): float(p.get("cost") if p.get("cost") is not None else p["weight"])
                    for s in doc["slots"] for p in s.get("partitions", ())}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None
        if sorted(cost) != list(range(total)):
            return None  # not this run's partitions one to one: leave it to Dask
        return cls(slots, cost)

    @property
    def is_empty(self) -> bool:
        return not any(self.queues.values())

    def take(self, now: float, todo: dict, busy) -> list[tuple[int, str]]:
        """(batch, slot) pairs to submit now: each slot filled up to the window."""
        out = []
        for slot in self.queues:
            while self.count[slot] < self.window and (not self.count[slot] or self.busy_for[slot] < QUEUE_BEHIND):
                i = self._next(slot, now, todo, busy)
                if i is None:
                    i = self._steal(slot, now, todo, busy)
                if i is None:
                    break
                self.holding[i] = slot
                self.count[slot] += 1
                self.busy_for[slot] += self.cost.get(i, 0.0)
                out.append((i, slot))
        return out

    def _next(self, slot: str, now: float, todo: dict, busy) -> int | None:
        queue = self.queues[slot]
        while queue and queue[0] not in todo:  # completed meanwhile (adopted checkpoint) or dead
            self.left[slot] -= self.cost.get(queue.popleft(), 0.0)
        for pos, i in enumerate(queue):  # the head, nearly always: no copy of a long list
            if i in todo and i not in busy and todo[i] <= now:
                del queue[pos]
                self.left[slot] -= self.cost.get(i, 0.0)
                return i
        return None

    def _steal(self, thief: str, now: float, todo: dict, busy) -> int | None:
        for victim in sorted((s for s in self.queues if s != thief and self.queues[s]),
                             key=lambda s: -self.left[s]):
            queue = self.queues[victim]
            for back, i in enumerate(reversed(queue)):  # the smallest first
                if i in todo and i not in busy and todo[i] <= now:
                    del queue[len(queue) - 1 - back]
                    self.left[victim] -= self.cost.get(i, 0.0)
                    return i
        return None

    def settled(self, i: int, again: bool) -> None:
        """Batch ``i`` left the flight; ``again``: it goes back to its slot's list (a retry, a pause)."""
        slot = self.holding.pop(i, None)
        if slot is None:
            return
        self.count[slot] -= 1
        self.busy_for[slot] -= self.cost.get(i, 0.0)
        if again:
            self.queues[slot].appendleft(i)
            self.left[slot] += self.cost.get(i, 0.0)
