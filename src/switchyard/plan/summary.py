"""A big plan in a few rows: per-worker figures and its largest partitions.

The Orchestrate page draws a plan of 100,000 partitions from these (one pass over the
partitions with numpy), never by listing every partition.
"""

from __future__ import annotations

import heapq

import numpy as np

from switchyard.plan.workplan import WorkPlan


def worker_summary(plan: WorkPlan) -> list[dict]:
    """Per worker slot, in plan order: its partition count, weight sum, the smallest, median
    and largest partition weight, and its predicted seconds (cost sum) when the plan has costs."""
    out = []
    for s in plan.slots:
        w = np.fromiter((p.weight for p in s.partitions), dtype=float, count=len(s.partitions))
        row = {"worker": s.id, "partitions": len(w), "weight": float(w.sum()),
               "min weight": float(w.min()) if len(w) else 0.0,
               "median weight": float(np.median(w)) if len(w) else 0.0,
               "max weight": float(w.max()) if len(w) else 0.0}
        if s.partitions and all(p.cost is not None for p in s.partitions):
            row["cost s"] = float(sum(p.cost for p in s.partitions))
        out.append(row)
    return out


def largest_partitions(plan: WorkPlan, k: int = 10) -> list[dict]:
    """The ``k`` heaviest partitions (ties: the app's order): partition, weight, share %, worker."""
    total = plan.total_weight
    top = heapq.nsmallest(k, ((-p.weight, p.index, p.name, s.id) for s in plan.slots for p in s.partitions))
    return [{"partition": name, "weight": -neg, "share %": round(100.0 * -neg / total, 4) if total > 0 else 0.0,
             "worker": slot} for neg, _, name, slot in top]
