"""Straggler backups: near a run's end, a second copy of a batch that runs far past its expected time.

When every batch of the run has started and a worker has a free thread, the batch
that has run longest against its expected seconds is also started on that worker;
the first copy to complete wins and is checkpointed, the other is stopped
(:meth:`switchyard.runs.executors.DaskExecutor.stop`: cancelled, and its worker
restarted when it still executes). The store, the checkpoints and the output keep
exactly one result per partition: the driver drops whatever the losing copy returns.

A batch's expected seconds are its weight times the median seconds per unit of
weight of the run's completed batches (so the estimate is in this run's units:
predicted seconds for a plan from measured costs, the app's weights otherwise). A
batch is a straggler when it has run :data:`FACTOR` times its expected seconds, or
when its worker is measured :data:`FACTOR` times slower than the run's median in
this very run and a copy on the free worker is expected to end first.

Backups are an option of the run request (``options["backups"]``, ``--backup-tasks``,
``AGI.run(..., backups=True)``), off by default: a backup executes a batch twice, and
stopping the losing copy restarts the worker process that executes it (on a warm
cluster shared with other runs, their tasks there go back to the scheduler). They
are allowed only for apps whose batches have no outside side effects (the App class
says so with ``pure_batches = True``) and only on Dask.
"""

from __future__ import annotations

import json
import re
import statistics
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchyard.exceptions import SwitchyardError
from switchyard.workspace import atomic_write_json

FACTOR = 1.3  # a batch is overdue at this many times its expected seconds
MIN_PEERS = 3  # completed batches of the run needed before any estimate is trusted
MIN_ELAPSED = 0.5  # seconds: a batch younger than this never gets a backup
PEERS_KEPT = 5000  # completed batches the estimates are made from (the newest)
BACKUPS_FILE = "backups.json"  # in the run folder: which batches had a backup, where, which copy won
_BACKUP_KEY = re.compile(r"-\d+-\d+b-[0-9a-f]+$")


def backup_key(key: str) -> str:
    """The task key of the backup copy of the batch whose task key is ``key``
    (``<run>-<idx>-<attempt>-<token>`` -> ``<run>-<idx>-<attempt>b-<token>``): neither key is
    a prefix of the other, so stopping one copy by its key never touches the other."""
    head, token = key.rsplit("-", 1)
    return f"{head}b-{token}"


def is_backup_key(key: str) -> bool:
    """Whether a task key is a backup copy's (a worker-side app may ask, e.g. in tests)."""
    return bool(_BACKUP_KEY.search(str(key)))


def check_backups(value: Any, app_cls: type, mode: int) -> bool:
    """The ``backups`` option of a run request, checked against the app and the mode.

    Raises:
        SwitchyardError: a value that is not a boolean, an app that does not declare its
            batches free of outside side effects, a mode without the dask bit.
    """
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "on", "off", "1", "0"):
        value = value.strip().lower() in ("true", "on", "1")
    if not isinstance(value, bool):
        raise SwitchyardError(f"backups {value!r}: give true or false (backup copies of straggling batches)")
    if not value:
        return False
    name = getattr(app_cls, "__name__", str(app_cls))
    if not getattr(app_cls, "pure_batches", False):
        raise SwitchyardError(f"backup tasks refused: app class {name} does not declare its batches free of "
                              "outside side effects (a backup executes a batch twice); set "
                              "`pure_batches = True` on it if that is harmless, or run without --backup-tasks")
    if not int(mode) & 4:
        raise SwitchyardError(f"backup tasks need the dask mode bit: mode {int(mode)} runs one batch at a "
                              "time in the driver; use a dask mode (4, 5, 6, 7) or run without --backup-tasks")
    return True


@dataclass(frozen=True)
class Running:
    """A batch executing now: its index, worker, seconds since it started, its weight."""

    idx: int
    worker: str
    elapsed: float
    weight: float


@dataclass(frozen=True)
class Backup:
    """A decision: start a copy of batch ``idx`` on ``worker``; ``why`` is the log's words."""

    idx: int
    worker: str
    original: str
    elapsed: float
    expected: float
    why: str


def _rate(weight: float, seconds: float) -> float:
    return seconds / weight if weight > 0 else seconds


def choose(running: list[Running], done: list[tuple[str, float, float]], free: dict[str, int],
           backed: set[int], factor: float = FACTOR, min_peers: int = MIN_PEERS) -> list[Backup]:
    """Which running batches get a backup now, and on which free worker (pure: no I/O).

    ``done``: (worker, weight, seconds) of the run's completed batches; ``free``: worker ->
    free threads; ``backed``: batches that had a backup already (one each, ever). The
    caller calls this only when every batch of the run has started. Stragglers go first
    by elapsed / expected, each to the free worker measured fastest in this run.
    """
    if len(done) < min_peers or not free:
        return []
    median = statistics.median(_rate(w, s) for _, w, s in done)
    if median <= 0:
        return []
    per_worker: dict[str, list[float]] = {}
    for worker, w, s in done:
        per_worker.setdefault(worker, []).append(_rate(w, s))
    rate = {worker: statistics.median(rs) for worker, rs in per_worker.items()}
    slots = [w for w, n in free.items() for _ in range(max(0, int(n)))]
    scored = []
    for r in running:
        if r.idx in backed or r.elapsed < MIN_ELAPSED:
            continue
        expected = (r.weight if r.weight > 0 else 1.0) * median
        ratio = r.elapsed / expected
        slow = rate.get(r.worker, median) / median
        if ratio >= factor:
            why = f"it has run {r.elapsed:.1f} s, {ratio:.1f}x its expected {expected:.2f} s"
        elif slow >= factor and expected * slow - r.elapsed > expected:
            why = (f"its worker runs {slow:.1f}x slower than the run's median: {expected * slow - r.elapsed:.1f} s "
                   f"left there against {expected:.2f} s on a free worker")
        else:
            continue
        scored.append((ratio * max(1.0, slow), r, expected, why))
    out = []
    for _, r, expected, why in sorted(scored, key=lambda t: -t[0]):
        options = [w for w in slots if w != r.worker]
        if not options:
            continue
        worker = min(options, key=lambda w: rate.get(w, median))
        slots.remove(worker)
        out.append(Backup(idx=r.idx, worker=worker, original=r.worker, elapsed=r.elapsed,
                          expected=expected, why=why))
    return out


def plan_costs(run_dir: Path) -> dict[str, float]:
    """Partition name -> predicted seconds from the run's plan file ({} without costs). Read
    as JSON: the driver's environment need not import the planner (nor graphviz)."""
    try:
        doc = json.loads((Path(run_dir) / "plan.json").read_text())
        return {str(p["name"]): float(p["cost"]) for s in doc.get("slots", ()) for p in s.get("partitions", ())
                if p.get("cost") is not None}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def stopped_copies(run_dir: Path | str) -> list[dict]:
    """The losing copies of a run's backups, for a timeline: worker, name, start, end (when the
    winner completed and the loser was stopped), and which copy it was ("original"/"backup")."""
    try:
        doc = json.loads((Path(run_dir) / BACKUPS_FILE).read_text())
    except (OSError, ValueError):
        return []
    out = []
    for b in doc.get("backups", ()):
        winner, end = b.get("winner"), b.get("winner_ended_at")
        if winner not in ("original", "backup") or end is None:
            continue
        if winner == "backup":  # the original ran from before the launch until the backup won
            worker, start = b["original_worker"], b["launched_at"] - b.get("elapsed_at_launch", 0.0)
        else:
            worker, start = b["backup_worker"], b["launched_at"]
        out.append({"worker": worker, "name": b["name"], "start": float(start), "end": float(end),
                    "copy": "original" if winner == "backup" else "backup"})
    return out


class Stragglers:
    """The backups of one app run, driven by :class:`switchyard.runs.partitions.AppPartitions`.

    :meth:`look` is given each look at the cluster once every batch has been submitted and
    starts backups; :meth:`settles` tells, for each finished copy, whether the driver settles
    it (the first completion of a batch) or drops it; :meth:`finish` waits for the losing
    copies to be stopped and writes ``backups.json`` in the run folder.
    """

    INTERVAL = 0.3  # seconds between looks at the cluster while backups are on

    def __init__(self, source, job) -> None:
        self.source, self.job = source, job
        self.costs = plan_costs(source.run_dir)
        self.started: dict[Any, float] = {}  # future -> when it was first seen executing
        # (worker, cost, seconds) of the run's newest completed batches: the estimates' peers
        self.done: deque[tuple[str, float, float]] = deque(maxlen=PEERS_KEPT)
        self.twins: dict[int, tuple[Any, Any]] = {}  # batch -> (original, backup) both in flight
        self.backed: set[int] = set()
        self.records: dict[int, dict] = {}
        self._stopper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-stop")
        self._stopping: list[Any] = []

    def _cost(self, idx: int) -> float:
        part = self.job.partitions[idx]
        return self.costs.get(part.name, float(part.weight))

    def look(self, inflight: dict, todo: dict, done: list, running: dict, free: dict) -> None:
        now = time.time()
        for f in running:
            self.started.setdefault(f, now)
        finished = set(done)
        backups = {b for _, b in self.twins.values()}
        originals = [f for f in inflight if f not in finished and f not in backups]
        if len(todo) > len({inflight[f] for f in originals}) or any(f not in running for f in originals):
            return  # a batch still waits to be submitted or for a worker: not the run's end yet
        candidates = [Running(idx=inflight[f], worker=running[f], elapsed=now - self.started[f],
                              weight=self._cost(inflight[f])) for f in originals]
        by_idx = {inflight[f]: f for f in originals}
        total = len(self.job.partitions)
        for b in choose(candidates, list(self.done), free, self.backed):
            original = by_idx[b.idx]
            fut = self.source.executor.submit_backup(self.job.spec, b.idx, self.job.partitions[b.idx],
                                                     b.worker, backup_key(original.key))
            inflight[fut] = b.idx
            self.twins[b.idx] = (original, fut)
            self.backed.add(b.idx)
            name = self.job.partitions[b.idx].name
            self.records[b.idx] = {"idx": b.idx, "name": name, "original_worker": b.original,
                                   "backup_worker": b.worker, "launched_at": now,
                                   "elapsed_at_launch": round(b.elapsed, 3),
                                   "expected_seconds": round(b.expected, 3), "winner": None}
            self.source.log.write(f"driver: backup of batch {b.idx + 1}/{total} {name} on {b.worker}: "
                                  f"{b.why} on {b.original}")

    def settles(self, fut: Any, idx: int, got: Any, inflight: dict) -> bool:
        """Whether the driver settles this finished copy of batch ``idx`` (False: drop it)."""
        ok = not isinstance(got, BaseException) and got.error is None
        self.started.pop(fut, None)
        if ok:
            self.done.append((got.worker, self._cost(idx), max(0.0, got.ended_at - got.started_at)))
        pair = self.twins.get(idx)
        if pair is None:
            return True
        copy = "backup" if fut is pair[1] else "original"
        other = pair[0] if copy == "backup" else pair[1]
        other_copy = "original" if copy == "backup" else "backup"
        name = f"batch {idx + 1}/{len(self.job.partitions)} {self.job.partitions[idx].name}"
        worker = getattr(got, "worker", "?")
        if not ok and other in inflight:
            error = got.error if not isinstance(got, BaseException) else f"{type(got).__name__}: {got}"
            self.source.log.write(f"driver: {name}: the {copy} on {worker} failed ({error}); "
                                  f"the {other_copy} goes on")
            del self.twins[idx]
            return False
        del self.twins[idx]
        if other in inflight:
            inflight.pop(other)
            self.started.pop(other, None)
            self._stopping.append(self._stopper.submit(self.source.executor.stop, [other], other.key))
        if ok:
            self.records[idx].update(winner=copy, winner_started_at=got.started_at, winner_ended_at=got.ended_at)
            self.source.log.write(f"driver: {name}: the {copy} on {worker} won "
                                  f"({got.ended_at - got.started_at:.2f} s); the {other_copy} is stopped")
        return True

    def finish(self) -> None:
        """Wait until the losing copies stopped executing; write ``backups.json``."""
        for f in self._stopping:
            try:
                f.result()
            except Exception as e:  # the cluster went away: nothing of it executes any more
                self.source.log.write(f"driver: stopping a losing copy: {type(e).__name__}: {e}")
        self._stopping.clear()
        self._stopper.shutdown(wait=True)
        if self.records:
            atomic_write_json(Path(self.source.run_dir) / BACKUPS_FILE,
                              {"backups": [self.records[i] for i in sorted(self.records)]})
