"""Partition planning: assign weighted partitions to worker slots, minimising the makespan.

The makespan of an assignment is the largest per-worker load relative to the
worker's capacity: ``max_j (sum of weights on j) / capacity_j``. Small inputs
are solved exactly (branch and bound seeded with the heuristic's answer); larger
ones use LPT (longest processing time first) followed by local improvement
(moves and swaps off the most-loaded worker). Pure functions, no I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from switchyard.exceptions import PlanError

#: Inputs with at most this many partitions are searched exactly.
EXACT_MAX_PARTITIONS = 12
#: Branch-and-bound budget in worker visits (nodes x workers, ~0.15 s of Python); past it the
#: best plan found so far is kept.
EXACT_WORK_BUDGET = 300_000
#: Rounds of local improvement; each round moves or swaps one partition.
IMPROVE_MAX_ROUNDS = 400
#: Partitions of the most-loaded worker examined per round (an evenly spaced sample beyond it).
IMPROVE_MAX_CANDIDATES = 4096
#: Workers tried as the other side of a move or swap per round (those with the most room).
IMPROVE_MAX_PARTNERS = 16
#: Improvement stops once the makespan is this close to the lower bound (relative): weights
#: are estimates, so a closer fit would only cost time.
IMPROVE_GOOD_ENOUGH = 1e-9

# Relative tolerance: a change must lower a load by more than this to count, so float
# noise cannot make the improvement loop cycle.
_EPS = 1e-12


def plan_partitions(weights: Sequence[float], capacities: Sequence[float]) -> list[int]:
    """Assign each partition to a worker so that the makespan is as small as possible.

    Args:
        weights: The cost estimate of each partition (finite, >= 0).
        capacities: The relative speed of each worker slot (finite, > 0).

    Returns:
        The worker index of each partition, in partition order. Exact for up to
        ``EXACT_MAX_PARTITIONS`` partitions (within a node budget), otherwise LPT
        plus local improvement (never worse than LPT).

    Raises:
        PlanError: No workers, a capacity <= 0, or a negative/NaN weight.
    """
    w, caps = _validated(weights, capacities)
    n, m = len(w), len(caps)
    if n == 0:
        return []
    if m == 1:
        return [0] * n
    assign = _lpt(w, caps)
    assign = _improve(w, caps, assign)
    if n <= EXACT_MAX_PARTITIONS:
        assign = _branch_and_bound(w, caps, assign)
    return assign.tolist()


def lpt(weights: Sequence[float], capacities: Sequence[float]) -> list[int]:
    """Longest processing time first: each partition, heaviest first, goes to the worker
    whose load relative to its capacity would be lowest afterwards.

    Args:
        weights: The cost estimate of each partition (finite, >= 0).
        capacities: The relative speed of each worker slot (finite, > 0).

    Returns:
        The worker index of each partition, in partition order.
    """
    w, caps = _validated(weights, capacities)
    if len(w) == 0:
        return []
    return _lpt(w, caps).tolist()


def makespan(
    weights: Sequence[float], capacities: Sequence[float], assignment: Sequence[int]
) -> float:
    """The largest per-worker load divided by the worker's capacity (0.0 without partitions)."""
    w, caps = _validated(weights, capacities)
    a = np.asarray(assignment, dtype=np.int64).reshape(-1)
    if len(a) != len(w):
        raise PlanError(
            f"assignment has {len(a)} entries for {len(w)} partitions: "
            "give one worker index per partition"
        )
    if len(a) == 0:
        return 0.0
    bad = np.flatnonzero((a < 0) | (a >= len(caps)))
    if len(bad):
        i = int(bad[0])
        raise PlanError(
            f"assignment[{i}] = {int(a[i])} is not a worker index: use 0..{len(caps) - 1}"
        )
    loads = np.bincount(a, weights=w, minlength=len(caps))
    return float(np.max(loads / caps))


def lower_bound(weights: Sequence[float], capacities: Sequence[float]) -> float:
    """No assignment beats ``max(total / sum(capacities), max(weights) / max(capacities))``."""
    w, caps = _validated(weights, capacities)
    if len(w) == 0:
        return 0.0
    return max(float(w.sum()) / float(caps.sum()), float(w.max()) / float(caps.max()))


# validation -------------------------------------------------------------------


def _validated(
    weights: Sequence[float], capacities: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    caps = _as_floats(capacities, "capacity")
    if len(caps) == 0:
        raise PlanError(
            "no workers to plan for: give at least one worker slot in [cluster.workers]"
        )
    bad = np.flatnonzero(~np.isfinite(caps) | (caps <= 0))
    if len(bad):
        i = int(bad[0])
        raise PlanError(
            f"capacity[{i}] = {float(caps[i])!r} is invalid: a capacity must be a finite number > 0"
        )
    w = _as_floats(weights, "weight")
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if len(bad):
        i = int(bad[0])
        raise PlanError(
            f"weight[{i}] = {float(w[i])!r} is invalid: "
            "a partition weight must be a finite number >= 0"
        )
    return w, caps


def _as_floats(values: Sequence[float], what: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise PlanError(f"{what}s must be numbers: {e}") from None
    if arr.ndim != 1:
        raise PlanError(f"{what}s must be a flat list of numbers, got shape {arr.shape}")
    return arr


# LPT --------------------------------------------------------------------------


def _lpt(w: np.ndarray, caps: np.ndarray) -> np.ndarray:
    order = np.argsort(-w, kind="stable")
    assign = np.empty(len(w), dtype=np.int64)
    # Workers of equal capacity are interchangeable: within a group the least-loaded one is
    # always the best choice, so one heap per distinct capacity keeps each step O(groups + log m).
    # Ties go to the worker holding fewer partitions, so zero-weight partitions spread out.
    groups: dict[float, list[tuple[float, int, int]]] = {}
    for j, c in enumerate(caps.tolist()):
        groups.setdefault(c, []).append((0.0, 0, j))
    ordered_w = w[order].tolist()
    ordered_i = order.tolist()
    if len(groups) == 1:
        heap = next(iter(groups.values()))
        replace = heapq.heapreplace
        for i, wi in zip(ordered_i, ordered_w):
            load, count, j = heap[0]
            assign[i] = j
            replace(heap, (load + wi, count + 1, j))
        return assign
    heaps = list(groups.items())
    replace = heapq.heapreplace
    for i, wi in zip(ordered_i, ordered_w):
        best_heap = heaps[0][1]
        best_top = best_heap[0]
        best = (best_top[0] + wi) / heaps[0][0]
        for c, h in heaps:
            t = h[0]
            v = (t[0] + wi) / c
            if v < best or (v == best and t[1] < best_top[1]):
                best, best_heap, best_top = v, h, t
        load, count, j = best_top
        assign[i] = j
        replace(best_heap, (load + wi, count + 1, j))
    return assign


# local improvement -------------------------------------------------------------


class _Worker:
    """A worker's partitions kept sorted by weight, for binary searches."""

    __slots__ = ("idx", "w")

    def __init__(self, idx: np.ndarray, w: np.ndarray):
        order = np.argsort(w, kind="stable")
        self.idx = idx[order]
        self.w = w[order]

    def remove(self, pos: int) -> None:
        self.idx = np.delete(self.idx, pos)
        self.w = np.delete(self.w, pos)

    def add(self, i: int, wi: float) -> None:
        pos = int(np.searchsorted(self.w, wi))
        self.idx = np.insert(self.idx, pos, i)
        self.w = np.insert(self.w, pos, wi)


def _improve(w: np.ndarray, caps: np.ndarray, assign: np.ndarray) -> np.ndarray:
    """Move or swap partitions off the most-loaded worker while that lowers its load
    without pushing the other worker to or above it."""
    m = len(caps)
    assign = assign.copy()
    loads = np.bincount(assign, weights=w, minlength=m)
    bound = lower_bound(w, caps)
    if float(np.max(loads / caps)) <= bound * (1 + IMPROVE_GOOD_ENOUGH):
        return assign  # skip the sorting below: nothing left to gain
    by_worker = np.argsort(assign, kind="stable")
    bounds = np.searchsorted(assign[by_worker], np.arange(m + 1))
    workers = [
        _Worker(by_worker[bounds[j] : bounds[j + 1]], w[by_worker[bounds[j] : bounds[j + 1]]])
        for j in range(m)
    ]
    for _ in range(IMPROVE_MAX_ROUNDS):
        norm = loads / caps
        top = int(np.argmax(norm))
        peak = float(norm[top])
        if peak <= bound * (1 + IMPROVE_GOOD_ENOUGH):
            break
        move = _best_move(workers, loads, caps, top, peak)
        if move is None:
            break
        j, pos_top, pos_j = move
        src, dst = workers[top], workers[j]
        i_out, w_out = int(src.idx[pos_top]), float(src.w[pos_top])
        if pos_j is None:
            src.remove(pos_top)
            dst.add(i_out, w_out)
            loads[top] -= w_out
            loads[j] += w_out
            assign[i_out] = j
        else:
            i_in, w_in = int(dst.idx[pos_j]), float(dst.w[pos_j])
            src.remove(pos_top)
            dst.remove(pos_j)
            src.add(i_in, w_in)
            dst.add(i_out, w_out)
            loads[top] += w_in - w_out
            loads[j] += w_out - w_in
            assign[i_out], assign[i_in] = j, top
    return assign


def _best_move(workers: list[_Worker], loads: np.ndarray, caps: np.ndarray, top: int, peak: float):
    """The move (partition off ``top``) or swap that lowers the pair's higher load the most.

    Returns ``(worker, position on top, position on worker or None for a move)`` or None.
    """
    src = workers[top]
    if len(src.w) == 0:
        return None
    if len(src.w) > IMPROVE_MAX_CANDIDATES:
        cand = np.linspace(0, len(src.w) - 1, IMPROVE_MAX_CANDIDATES).astype(np.int64)
    else:
        cand = np.arange(len(src.w))
    a = src.w[cand]
    load_t, cap_t = float(loads[top]), float(caps[top])
    best_score = peak * (1 - _EPS)
    best = None
    partners = range(len(workers))
    if len(workers) > IMPROVE_MAX_PARTNERS:
        room = peak * caps - loads
        partners = np.argpartition(-room, IMPROVE_MAX_PARTNERS)[:IMPROVE_MAX_PARTNERS].tolist()
    for j in partners:
        if j == top:
            continue
        load_j, cap_j = float(loads[j]), float(caps[j])
        if (load_j / cap_j) >= best_score:
            continue
        # d is the weight that leaves top and arrives on j; the pair is balanced at d_star.
        d_star = (load_t * cap_j - load_j * cap_t) / (cap_t + cap_j)
        if d_star <= 0:
            continue
        # Move: the partition of top closest to d_star.
        p = int(np.searchsorted(src.w, d_star))
        for q in (p - 1, p):
            if 0 <= q < len(src.w) and src.w[q] > 0:
                d = float(src.w[q])
                score = max((load_t - d) / cap_t, (load_j + d) / cap_j)
                if score < best_score:
                    best_score, best = score, (j, q, None)
        # Swap: for each candidate a on top, the partition b on j with a - b closest to d_star.
        dst = workers[j]
        if len(dst.w) == 0:
            continue
        pos = np.searchsorted(dst.w, a - d_star)
        for shift in (-1, 0):
            qj = np.clip(pos + shift, 0, len(dst.w) - 1)
            d = a - dst.w[qj]
            score = np.maximum((load_t - d) / cap_t, (load_j + d) / cap_j)
            score[d <= 0] = np.inf
            k = int(np.argmin(score))
            if score[k] < best_score:
                best_score, best = float(score[k]), (j, int(cand[k]), int(qj[k]))
    return best


# exact search -----------------------------------------------------------------


def _branch_and_bound(w: np.ndarray, caps: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Depth-first search over assignments of the heaviest partitions first, pruned by the
    incumbent makespan; stops after ``EXACT_WORK_BUDGET`` worker visits with the best plan found."""
    n, m = len(w), len(caps)
    order = np.argsort(-w, kind="stable").tolist()
    ws = [float(w[i]) for i in order]
    cs = caps.tolist()
    suffix = [0.0] * (n + 1)
    for k in range(n - 1, -1, -1):
        suffix[k] = suffix[k + 1] + ws[k]
    smallest = ws[-1]
    bound = lower_bound(w, caps)

    start_loads = [0.0] * m
    for i, j in enumerate(start.tolist()):
        start_loads[j] += float(w[i])
    best_span = max(start_loads[j] / cs[j] for j in range(m))
    best_assign = [int(start[i]) for i in order]
    if best_span <= bound * (1 + _EPS):
        return start

    loads = [0.0] * m
    current = [0] * n
    work = 0
    done = False

    def search(k: int, span: float) -> None:
        nonlocal best_span, best_assign, work, done
        if k == n:
            if span < best_span * (1 - _EPS):
                best_span, best_assign = span, current.copy()
                if best_span <= bound * (1 + _EPS):
                    done = True
            return
        work += m
        if work > EXACT_WORK_BUDGET:
            done = True
            return
        # The remaining partitions must fit under the incumbent; a worker whose room is
        # smaller than the smallest partition cannot take any of them.
        target = best_span * (1 - _EPS)
        room = 0.0
        for j in range(m):
            r = target * cs[j] - loads[j]
            if r >= smallest:
                room += r
        if room < suffix[k] * (1 - _EPS):
            return
        wk = ws[k]
        seen = set()
        options = []
        for j in range(m):
            # Workers with the same capacity and the same load are interchangeable.
            key = (cs[j], loads[j])
            if key in seen:
                continue
            seen.add(key)
            new = (loads[j] + wk) / cs[j]
            if new < target:
                options.append((new, j))
        options.sort()
        for new, j in options:
            if new >= best_span * (1 - _EPS):
                break
            # Restore the exact old value so float noise cannot break the symmetry test.
            old = loads[j]
            loads[j] = old + wk
            current[k] = j
            search(k + 1, max(span, new))
            loads[j] = old
            if done:
                return

    search(0, 0.0)
    result = np.empty(n, dtype=np.int64)
    for k, i in enumerate(order):
        result[i] = best_assign[k]
    return result
