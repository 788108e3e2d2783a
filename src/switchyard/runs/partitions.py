"""The batch source of app runs: an app's partitions executed on Dask or in the driver.

Submits batches to an executor (each to its planned worker slot) within a window of
batches in flight, reading their partitions from the store as they go out (a run of
100,000 partitions is never all in the driver's memory), checkpoints each completed
batch (appended to its group file, :mod:`switchyard.runs.checkpoints`) before
recording it, retries failed batches with the one backoff policy
(:func:`switchyard.runs.retry.backoff`), dead-letters those that exhaust their
attempts, and finally reduces the checkpoints in partition order into the output,
read from disk as ``reduce`` iterates them.

Pause: no new batch is submitted, queued ones are cancelled on the workers (they
go back to pending), executing ones finish and checkpoint, then ``paused``.
Cancel: queued batches are cancelled and the run waits until nothing of it
executes any more, then ``cancelled``.
"""

from __future__ import annotations

import heapq
import importlib
import json
import os
import pickle
import secrets
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from switchyard.app import Partition, app_class_of, data_dir
from switchyard.cluster.addresses import slot_names
from switchyard.modes import Mode, mode_string
from switchyard.runs import launcher
from switchyard.runs import checkpoints
from switchyard.runs.backups import Stragglers
from switchyard.runs.plan_window import PlanWindow
from switchyard.runs.leases import OBSERVE_INTERVAL, PAUSE_DRAIN_TIMEOUT, STATUS_POLL
from switchyard.runs.request import RunRequest, app_env_of
from switchyard.runs.retry import backoff
from switchyard.runs.state import BatchStatus, Status
from switchyard.runs.store import RunStore
from switchyard.runs.task import BatchOutcome, BatchSpec
from switchyard.workspace import atomic_write_bytes

JOB_FILE = "job.pkl"  # where the first engine kept a run's parameters (read for its old runs)
WINDOW_PER_SLOT = 500  # batches in flight per worker slot when the request sets no cap
WINDOW_MIN = 2000
# Completions within this of the first are settled with it (one gather, one commit): a gather
# per batch is a round trip through the scheduler to a worker, which costs the cluster's CPU.
GATHER_LINGER = 0.05
LINGER_BACKLOG = 4  # ... when this many batches per worker slot are in flight (so none idles)


class StoredPartitions(Sequence):
    """A run's partitions, read from the store as the driver needs them: :meth:`prefetch`
    before submitting, :meth:`release` once settled; iterating reads them in chunks."""

    def __init__(self, store: RunStore, oid: str, total: int):
        self.store, self.oid, self.total = store, oid, int(total)
        self._held: dict[int, tuple[Partition, str]] = {}

    @staticmethod
    def _row(row) -> tuple[Partition, str]:
        _, name, weight, payload, planned = row
        return Partition(name=name, weight=weight, items=pickle.loads(payload) if payload else ()), planned or ""

    def prefetch(self, idxs) -> None:
        missing = [i for i in idxs if i not in self._held]
        for row in self.store.payloads(self.oid, missing) if missing else ():
            self._held[row[0]] = self._row(row)

    def release(self, idx: int) -> None:
        self._held.pop(idx, None)

    def _get(self, i: int) -> tuple[Partition, str]:
        if i not in self._held:
            self.prefetch([i])
        return self._held[i]

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.total))]
        return self._get(int(i))[0]

    def slot(self, i: int) -> str:
        return self._get(int(i))[1]

    def __iter__(self) -> Iterator[Partition]:
        for at in range(0, self.total, 1000):
            for row in self.store.payloads(self.oid, range(at, min(self.total, at + 1000))):
                yield self._row(row)[0]


class _Slots(Sequence):
    def __init__(self, partitions: StoredPartitions):
        self.partitions = partitions

    def __len__(self) -> int:
        return len(self.partitions)

    def __getitem__(self, i):
        return self.partitions.slot(i)


class Due(dict):
    """Batch index -> when it may be submitted next (0: now), with a heap so that taking the
    due ones costs what is taken, not the run's size."""

    def __init__(self, items=()):
        super().__init__()
        self._heap: list[tuple[float, int]] = []
        for i, at in items:
            self[i] = at

    def __setitem__(self, idx: int, at: float) -> None:
        super().__setitem__(idx, at)
        heapq.heappush(self._heap, (at, idx))

    def take(self, now: float, n: int, busy) -> list[int]:
        """Up to ``n`` indices due by ``now`` and not in ``busy``, earliest first (then by index)."""
        out: list[int] = []
        heap = self._heap
        while heap and len(out) < n and heap[0][0] <= now:
            at, idx = heapq.heappop(heap)
            if self.get(idx) == at and idx not in busy and idx not in out:
                out.append(idx)
        return out


@dataclass
class Job:
    """What the driver executes, read back from the store: the run request, the batches'
    partitions (their items are the batches' payloads) and each batch's planned worker."""

    spec: BatchSpec
    partitions: Sequence  # of Partition: StoredPartitions (read as needed), a list for old runs
    slot_of: Sequence  # planned worker slot per partition index
    slot_names: list[str]
    workers: dict[str, int]
    scheduler: str
    cluster: str  # "local": start one for this run; "existing": use the scheduler address as is
    mode: int
    max_attempts: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_inflight: int = 0  # 0: no cap
    plan_note: str = ""  # which plan this run uses, and why
    backups: bool = False  # straggler backups (switchyard.runs.backups)
    extra: dict = field(default_factory=dict)

    @staticmethod
    def from_store(store: RunStore, oid: str) -> "Job":
        o = store.get(oid)
        if not o.request:  # recorded by an engine before the run request (schema 1): its job file
            with open(Path(o.run_dir) / JOB_FILE, "rb") as f:
                return pickle.load(f)
        req = RunRequest.from_dict(o.request)
        app_env = app_env_of(req, store.path.parent)
        opts = dict(req.options)
        partitions = StoredPartitions(store, oid, o.total_batches)
        return Job(
            spec=BatchSpec(app=req.app, app_dir=str(app_env.app_dir), args=dict(req.args),
                           data_dir=str(data_dir(app_env)), pool_size=req.pool_size,
                           rapids=bool(int(req.mode or 0) & 8)),
            partitions=partitions, slot_of=_Slots(partitions),
            slot_names=slot_names(dict(req.workers or {})),
            workers=dict(req.workers or {}), scheduler=req.scheduler or "", cluster=req.cluster,
            mode=int(req.mode or 0), max_attempts=req.max_attempts, max_inflight=req.max_inflight,
            backoff_base=float(opts.get("backoff_base", 0.5)), backoff_cap=float(opts.get("backoff_cap", 30.0)),
            plan_note=str(opts.get("plan_note") or ""),
            backups=bool(opts.get("backups")) and Mode(int(req.mode or 0)).uses_dask,
        )


checkpoint_path = checkpoints.legacy_path  # the first engine's per-batch files (still read)


def write_checkpoint(path: Path, result: Any) -> None:
    """Write a batch's result as the first engine did (one file, temp file + rename), without
    fsync. Runs now append to group files (:class:`switchyard.runs.checkpoints.Writer`).

    A process crash never loses it (the page cache survives); a power loss may, like the
    store's last commits (WAL, synchronous=NORMAL): a checkpoint that cannot be read back
    at the end is not fatal, its batch runs again. An fsync per batch would cost
    milliseconds on a busy disk, more than everything else the driver does per batch.
    """
    data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except FileNotFoundError:  # first checkpoint of the run: make the folder, then again
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)


class AppPartitions:
    """The batches of an app run; :meth:`execute` drives them to an end status for ``driver``."""

    kind = "app"

    def __init__(self) -> None:
        self.driver = None
        self._token = secrets.token_hex(2)  # keeps this driver's task keys apart from a dead one's
        self.cluster = None
        self.executor = None
        self.writer: checkpoints.Writer | None = None
        self._where: dict[int, tuple[str, int, int]] | None = None  # the checkpoints found before reducing
        self._total = 0
        self._observer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="observe")
        self._observing: Any = None
        self.settled_seconds: list[float] = [0.0, 0]  # completed batches: seconds in all, count (the ETA)
        self.devices: dict[int, str] = {}  # batch -> the device it completed on (worker-side probe)
        self.stragglers: Stragglers | None = None  # straggler backups, when the run asks for them
        self.window: PlanWindow | None = None  # a plan from measured costs is followed, worker by worker

    # what the source reads from its driver
    store = property(lambda self: self.driver.store)
    oid = property(lambda self: self.driver.oid)
    owner = property(lambda self: self.driver.owner)
    log = property(lambda self: self.driver.log)
    run_dir = property(lambda self: self.driver.run_dir)
    signalled = property(lambda self: self.driver.signalled)
    lost = property(lambda self: self.driver.lost)

    def _check(self) -> Status:
        return self.driver.check()

    def _finish(self, command: str, error: str | None = None) -> None:
        self.driver.finish(command, error=error)

    def execute(self, driver) -> Status:
        self.driver = driver
        return self._execute()

    def close(self) -> None:
        self._observer.shutdown(wait=False, cancel_futures=True)
        for closer in (self.writer, self.executor, self.cluster):
            if closer is not None:
                try:
                    closer.close()
                except Exception as e:
                    self.log.write(f"driver: closing {type(closer).__name__}: {e}")
        if self.cluster is not None:
            launcher.forget_cluster(self.run_dir)

    def _start_executor(self, job: Job) -> None:
        from switchyard.runs.executors import DaskExecutor, LocalExecutor

        if not Mode(job.mode).uses_dask:
            self.executor = LocalExecutor()
            return
        address = job.scheduler
        if job.cluster == "local":
            from switchyard.cluster.local import LocalCluster
            from switchyard.environ import child_environ, declared_names
            from switchyard.settings import split_address

            self.log.write(f"driver: starting a local Dask cluster: {sum(job.workers.values())} workers")
            # A free port, never the configured address: this cluster is the run's own, and a
            # run started meanwhile must not take it for a shared scheduler (it ends with this run).
            private = f"{split_address(job.scheduler)[0]}:0" if job.scheduler else None
            self.cluster = LocalCluster(python=Path(sys.executable), workers=job.workers,
                                        scheduler_address=private,
                                        env=child_environ(os.environ, declared_names(
                                            Path(job.spec.app_dir) / "app_settings.toml")),
                                        on_line=self.driver.cluster_line, preload=(job.spec.app,),
                                        rapids=job.spec.rapids)
            address = self.cluster.start()
            launcher.record_cluster(self.run_dir, self.cluster.pids, address)
        self.log.write(f"driver: connecting to the Dask scheduler at {address}")
        # A cluster started for this run is Switchyard's to restart workers of on cancel; an
        # existing one only when it is a warm cluster of the workspace (its record says so).
        self.executor = DaskExecutor(address, self.log.write, job.slot_names,
                                     controlled=True if job.cluster == "local" else None)

    def _adopt_checkpoints(self, job: Job, todo: dict[int, float]) -> None:
        """A batch checkpointed by a driver that died before recording it counts as done."""
        where = checkpoints.index(self.run_dir)
        found = [i for i in sorted(todo) if i in where]
        if not found:
            return
        self.store.record_results(self.oid, owner=self.owner, results=[
            {"idx": i, "status": BatchStatus.COMPLETED.value,
             "output_path": checkpoints.location(where[i][0], where[i][1]), "error": None} for i in found])
        for i in found:
            todo.pop(i)
        self.log.write(f"driver: {len(found)} batches were checkpointed but not recorded: "
                       "recorded as completed, not re-executed")

    def _execute(self) -> Status:
        job = Job.from_store(self.store, self.oid)
        t0 = time.time()
        killed = launcher.reap_cluster(self.run_dir)
        if killed:
            self.log.write(f"driver: stopped the cluster of a previous driver (pids {killed})")
        self.log.write(f"driver: orchestration {self.oid}: app '{job.spec.app}', mode {job.mode} "
                       f"({mode_string(job.mode)}), {len(job.partitions)} batches, pid {os.getpid()}")
        if job.plan_note:
            self.log.write(f"driver: {job.plan_note}")
        self._start_executor(job)
        if job.backups and hasattr(self.executor, "observe"):
            self.stragglers = Stragglers(self, job)
            self.log.write("driver: straggler backups on: near the end, a batch running far past its "
                           "expected time gets a copy on a free worker; the first copy to complete wins")
        self.writer = checkpoints.Writer(self.run_dir)
        setup_seconds = time.time() - t0
        total = self._total = len(job.partitions)
        if Mode(job.mode).uses_dask:
            self.window = PlanWindow.from_plan(self.run_dir, total)
            if self.window is not None:
                self.log.write(f"driver: following the plan from measured costs: at most {self.window.window} "
                               "batches in flight per worker, biggest first; a worker done with its own "
                               "takes the smallest left of the busiest")
        states = self.store.batch_states(self.oid)
        attempts = {i: n for i, _, n in states}
        finished = (BatchStatus.COMPLETED.value, BatchStatus.SKIPPED.value)
        todo = Due((i, 0.0) for i, status, _ in states if status not in finished)
        del states
        self._adopt_checkpoints(job, todo)
        if total - len(todo):
            self.log.write(f"driver: {total - len(todo)} batches already completed: not re-executed")
        inflight: dict[Any, int] = {}
        shown_running: set[int] = set()
        dead: dict[int, str] = {}
        # A window, not the whole run: what is in flight (futures, partitions) bounds the memory.
        cap = job.max_inflight or min(total, max(WINDOW_MIN, WINDOW_PER_SLOT * len(job.slot_names))) or 1
        holding = False  # pausing: queued batches were cancelled, executing ones finish
        observed = time.monotonic()
        t_exec = time.time()
        while True:
            if self.signalled:
                return self._interrupt_by_signal(inflight)
            status = self._check()
            if status is Status.CANCELLING:
                return self._cancel(inflight)
            now = time.time()
            if status is Status.PAUSING:
                if not holding:
                    holding = self._hold(inflight, todo)
                if holding and not inflight and todo:  # (with nothing left to do, it completes instead)
                    if self.stragglers is not None:
                        self.stragglers.finish()  # a losing copy being stopped is stopped first
                    self._wait_workers_idle()
                    self.log.write(f"driver: paused with {total - len(todo)}/{total} batches completed")
                    self._finish("paused")
                    return Status.PAUSED
            else:
                room = cap - len(inflight)
                if room > 0 and len(todo) > len(inflight):  # some batch waits (cheap test first)
                    slot_of = job.slot_of
                    if self.window is not None and not self.window.is_empty:
                        slot_of = dict(self.window.take(now, todo, set(inflight.values())))
                        due = list(slot_of)
                    else:
                        due = todo.take(now, room, set(inflight.values()))
                    if due:
                        if isinstance(job.partitions, StoredPartitions):
                            job.partitions.prefetch(due)
                        # One message per worker slot for all due batches, not one per batch.
                        futs = self.executor.submit_many(job.spec, [
                            (i, job.partitions[i], slot_of[i], f"{self.oid}-{i}-{attempts[i] + 1}-{self._token}")
                            for i in due])
                        inflight.update(zip(futs, due))
            if not inflight and not todo:
                if self._requeued(attempts, todo, dead) or (not dead and self._lost_outputs(todo)):
                    continue
                break
            if not inflight:
                time.sleep(min(STATUS_POLL, max(0.01, min(todo.values()) - time.time())))
                continue
            # While the workers hold a backlog (or nothing waits to go out), completions that
            # come within GATHER_LINGER of one another are gathered and committed together.
            linger = GATHER_LINGER if (len(inflight) >= LINGER_BACKLOG * len(job.slot_names)
                                       or len(todo) <= len(inflight)) else 0.0
            done = self.executor.wait(inflight, timeout=STATUS_POLL, linger=linger)
            looks = Stragglers.INTERVAL if self.stragglers is not None else OBSERVE_INTERVAL
            if time.monotonic() - observed >= looks:
                seen = self._show_running(inflight, shown_running, done)
                if seen is not None:
                    observed = time.monotonic()
                    if self.stragglers is not None:
                        try:
                            self.stragglers.look(inflight, todo, done, *seen)
                        except Exception as e:  # a backup is an extra: it never fails the run
                            self.log.write(f"driver: no backup this time: {type(e).__name__}: {e}")
            if not done:
                continue
            records = []
            got = self.executor.outcomes(done)  # one round trip for all of them
            for fut in done:
                i = inflight.pop(fut, None)
                if i is None:  # the losing copy of a batch with a backup: its result is dropped
                    continue
                if self.stragglers is not None and not self.stragglers.settles(fut, i, got[fut], inflight):
                    continue
                shown_running.discard(i)
                records.append(self._settle(job, i, got[fut], attempts, todo, dead))
                if self.window is not None:
                    self.window.settled(i, again=records[-1]["status"] == BatchStatus.FAILED.value)
            self.store.record_results(self.oid, records, owner=self.owner)
            if self.stragglers is not None and len(todo) <= len(inflight):
                observed = float("-inf")  # the run's end: a worker may be free now, look at once
        if self.stragglers is not None:
            self.stragglers.finish()
        exec_seconds = time.time() - t_exec
        if dead:
            first = dead[min(dead)]
            msg = f"{len(dead)} of {total} batches failed after {job.max_attempts} attempts: {first}"
            self.log.write(f"driver: {msg}")
            self._finish("fail", error=msg)
            return Status.FAILED
        self._check()
        output = self._reduce(job)
        seconds = time.time() - t0
        self.store.set_output(self.oid, str(output), seconds)
        self._write_lineage(job, output)
        self.log.write(f"driver: completed {total} batches in {seconds:.2f} s "
                       f"(setup {setup_seconds:.2f} s, execution {exec_seconds:.2f} s); output {output}")
        self._write_timing(setup_seconds, exec_seconds, seconds)
        self._finish("complete")
        return Status.COMPLETED

    def _write_lineage(self, job: Job, output: Path) -> None:
        """Where the output came from, in a sidecar; never fails the run."""
        try:
            from switchyard.lineage import inputs_from_items, write_run_lineage

            write_run_lineage(output, self.store.get(self.oid),
                              inputs=inputs_from_items(job.spec.data_dir, job.partitions))
        except Exception as e:
            self.log.write(f"driver: lineage not written: {type(e).__name__}: {e}")

    def _show_running(self, inflight: dict, shown: set[int], done: list) -> tuple | None:
        """Mark the batches that really execute as running (queued ones stay pending).

        Asking the workers takes a round trip to each (long when they are busy), so it is
        asked in a thread and its answer applied on a later turn of the loop: the submit
        and settle loop never waits for it. When an answer was applied: (future -> worker
        of the executing ones, worker -> free threads; {} unless backups are on), else None."""
        if self._observing is None:
            look = self.executor.observe if self.stragglers is not None else self.executor.running
            self._observing = self._observer.submit(look, list(inflight))
            return None
        if not self._observing.done():
            return None
        try:
            got = self._observing.result()
        except Exception:
            got = {}
        running, free = got if isinstance(got, tuple) else (got, {})
        self._observing = None
        finished = set(done)
        started = {inflight[f]: w for f, w in running.items()
                   if f in inflight and f not in finished and inflight[f] not in shown}
        if started:
            self.store.batches_started(self.oid, list(started), started, owner=self.owner)
            shown.update(started)
        return running, free

    def _hold(self, inflight: dict, todo: dict) -> bool:
        """Pausing: cancel the batches that have not started; the executing ones finish.
        False when the workers could not be asked what they execute (try again later)."""
        from switchyard.runs.executors import ExecutingUnknown

        try:
            executing = self.executor.running(list(inflight), strict=True)
        except ExecutingUnknown as e:
            self.log.write(f"driver: pausing: cannot tell which batches execute ({e}): asking again")
            return False
        queued = [f for f in inflight if f not in executing]
        kept = set(self.executor.cancel(queued))  # those that started meanwhile
        for f in queued:
            if f not in kept:
                i = inflight.pop(f)
                todo[i] = 0.0
                if self.window is not None:
                    self.window.settled(i, again=True)
        self.log.write(f"driver: pausing: {len(inflight)} executing batches finish first; "
                       f"{len(queued) - len(kept)} queued batches stay pending")
        return True

    def _wait_workers_idle(self) -> None:
        """Wait until no worker still runs a cancelled batch of this orchestration (its thread
        goes on until it returns), so ``paused`` means nothing of it executes."""
        from switchyard.runs.executors import ExecutingUnknown

        deadline = time.monotonic() + PAUSE_DRAIN_TIMEOUT
        prefix = f"{self.oid}-"
        while True:
            try:
                if not any(k.startswith(prefix) for k in self.executor.busy_keys(strict=True)):
                    return
            except ExecutingUnknown:
                pass  # cannot tell: stay pausing and ask again
            if time.monotonic() > deadline or self.lost:
                self.log.write("driver: a cancelled batch may still execute on a worker; pausing anyway")
                return
            time.sleep(0.2)

    def _cancel(self, inflight: dict) -> Status:
        # Stays `cancelling` until nothing of this run executes on any worker.
        if self.stragglers is not None:
            self.stragglers.finish()
        left = self.executor.stop(list(inflight), prefix=f"{self.oid}-")
        still: dict[int, str] = {}  # idx -> worker of the batches that may still execute
        for key, worker in left.items():  # keys are "<oid>-<idx>-<attempt>-<token>"
            head = key[len(self.oid) + 1:].split("-")[0]
            if head.isdigit():
                still[int(head)] = worker
        now = time.time()
        if inflight:
            self.store.record_results(self.oid, owner=self.owner, results=[
                {"idx": i, "status": BatchStatus.CANCELLED.value, "ended_at": now,
                 "error": f"cancelled, but may still execute on {still[i]}" if i in still else "cancelled"}
                for i in sorted(set(inflight.values()))])
        self.log.write(f"driver: cancelled: {len(inflight)} in-flight batches cancelled, "
                       "no further batch starts")
        error = None
        if left:
            names = {b.idx: b.name for b in self.store.batches(self.oid)}
            which = [f"{names.get(i, i)} on {w}" for i, w in sorted(still.items())] or sorted(left)
            where = getattr(self.executor, "address", None)
            error = (f"cancelled, but {len(which)} batches may still execute ({', '.join(which)}): "
                     f"{f'the scheduler at {where}' if where else 'the driver'} did not stop them; "
                     "their results are dropped")
        self._finish("cancelled", error=error)
        return Status.CANCELLED

    def _interrupt_by_signal(self, inflight: dict) -> Status:
        self.executor.cancel(list(inflight))
        msg = f"driver stopped by {self.signalled}: resume it to continue"
        self.log.write(f"driver: {msg}")
        self._finish("interrupt", error=msg)
        return Status.INTERRUPTED

    def _requeued(self, attempts: dict, todo: dict, dead: dict) -> bool:
        """Pick up batches put back to pending while this driver ran (dead letters reprocessed)."""
        again = self.store.pending_batches(self.oid)  # at the end, nothing else is pending
        for b in again:
            dead.pop(b.idx, None)
            attempts[b.idx] = b.attempts
            todo[b.idx] = 0.0
        if again:
            self.log.write(f"driver: {len(again)} batches were requeued meanwhile: running them")
        return bool(again)

    def _settle(self, job: Job, i: int, got: Any, attempts: dict, todo: dict, dead: dict) -> dict:
        name = job.partitions[i].name
        out: BatchOutcome = got
        if isinstance(got, BaseException):  # the worker died, the task was cancelled, the cluster vanished
            e = got
            out = BatchOutcome(idx=i, result=None, error=f"{type(e).__name__}: {e}", traceback=None,
                               worker="?", started_at=time.time(), ended_at=time.time(), output="")
        for line in out.output.splitlines():
            self.log.write(f"[{out.worker}] {line}")
        attempts[i] += 1
        rec = {"idx": i, "worker": out.worker, "started_at": out.started_at, "ended_at": out.ended_at,
               "error": out.error, "output_path": None, "next_attempt_at": None}
        if isinstance(job.partitions, StoredPartitions):
            job.partitions.release(i)  # read again from the store if it is retried
        if out.error is None:
            where = self.writer.write(i, out.result)  # on disk before the store says completed
            todo.pop(i, None)
            rec.update(status=BatchStatus.COMPLETED.value, output_path=where)
            device = getattr(out, "device", "")
            if device:
                self.devices[i] = device
            self.log.write(f"batch {i + 1}/{len(job.partitions)} {name} completed on {out.worker} "
                           f"in {out.ended_at - out.started_at:.2f} s" + (f" ({device})" if device else "")
                           + self._eta(job, out.ended_at - out.started_at, len(todo)))
            return rec
        for line in (out.traceback or "").rstrip().splitlines():
            self.log.write(f"[{out.worker}] {line}")
        if attempts[i] < job.max_attempts:
            delay = backoff(attempts[i], job.backoff_base, job.backoff_cap)
            todo[i] = time.time() + delay
            rec.update(status=BatchStatus.FAILED.value, next_attempt_at=todo[i])
            self.log.write(f"batch {i + 1}/{len(job.partitions)} {name} failed on {out.worker} "
                           f"(attempt {attempts[i]}/{job.max_attempts}): {out.error}; retry in {delay:.1f} s")
        else:
            todo.pop(i, None)
            dead[i] = f"{name}: {out.error}"
            rec.update(status=BatchStatus.DEAD.value)
            self.log.write(f"batch {i + 1}/{len(job.partitions)} {name} failed for good after "
                           f"{attempts[i]} attempts: {out.error}")
        return rec

    def _eta(self, job: Job, seconds: float, left: int) -> str:
        """The "; ETA ..." tail of a batch line while batches are left: the page's estimate (the
        mean completed duration over the worker slots), from what this driver has settled."""
        from switchyard.runs.eta import eta_slots, eta_text, remaining_seconds

        total = self.settled_seconds
        total[0] += max(seconds, 0.0)
        total[1] += 1
        if not left:
            return ""
        return "; " + eta_text(remaining_seconds(total[0] / total[1], left, eta_slots(job.mode, job.workers)))

    def _lost_outputs(self, todo: dict) -> bool:
        """Before reducing: batches whose checkpoint cannot be read back run again."""
        if self.writer is not None:
            self.writer.close()  # every record is in its file (and the next write reopens it)
        self._where = checkpoints.index(self.run_dir)
        bad = [i for i in range(self._total) if i not in self._where]
        if not bad:
            return False
        reopened = self.store.reopen_batches(self.oid, bad, "checkpoint missing or unreadable",
                                             owner=self.owner)
        for i in reopened:
            todo[i] = 0.0
        self.log.write(f"driver: {len(reopened)} completed batches lost their checkpoint: running "
                       f"them again ({', '.join(map(str, reopened[:10]))})")
        return bool(reopened)

    def _reduce(self, job: Job) -> Path:
        if self._where is None:
            self._where = checkpoints.index(self.run_dir)
        results = checkpoints.Results(self._where, len(job.partitions))  # read as reduce iterates
        spec = job.spec
        if spec.app_dir not in sys.path:
            sys.path.insert(0, spec.app_dir)
        cls = app_class_of(importlib.import_module(spec.app), spec.app, Path(spec.app_dir))
        app = cls(cls.Args.model_validate(spec.args), Path(spec.data_dir))
        out_dir = self.run_dir / "output"
        out_dir.mkdir(parents=True, exist_ok=True)
        self.log.write(f"driver: reducing {len(results)} results")
        try:
            return Path(app.reduce(results if getattr(cls, "stream_results", False) else list(results),
                                   out_dir))
        finally:
            results.close()

    def _write_timing(self, setup: float, execution: float, total: float) -> None:
        atomic_write_bytes(self.run_dir / "timing.json", json.dumps(
            {"setup_seconds": setup, "execution_seconds": execution, "seconds": total,
             "devices": dict(Counter(self.devices.values())), "peak_rss_bytes": _peak_rss()}).encode())


def _peak_rss() -> int | None:
    """This process's peak RSS in bytes: exact, where sampling from outside misses spikes.
    VmHWM, not ru_maxrss: Linux counts in the latter the forking parent's memory before exec."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None


