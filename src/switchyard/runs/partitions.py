"""The batch source of app runs: an app's partitions executed on Dask or in the driver.

:class:`AppPartitions` is the batch loop: it submits batches to an executor (each to its
planned worker slot) within a window of batches in flight, reading their partitions from
the store as they go out (:mod:`switchyard.runs.job`), follows a plan from measured costs
worker by worker (:mod:`switchyard.runs.plan_window`), launches straggler backups when the
run asks for them (:mod:`switchyard.runs.backups`), gathers the finished batches and
settles them (:mod:`switchyard.runs.settle`: checkpoint before recording, retries, dead
letters, the ETA, and at the end the reduce in partition order), and acts on pause, cancel
and signals (:mod:`switchyard.runs.halts`).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from switchyard.modes import Mode, mode_string
from switchyard.runs import checkpoints, launcher
from switchyard.runs.backups import Stragglers
from switchyard.runs.halts import Halts
from switchyard.runs.job import Due, Job, StoredPartitions
from switchyard.runs.leases import OBSERVE_INTERVAL, STATUS_POLL
from switchyard.runs.plan_window import PlanWindow
from switchyard.runs.settle import Settle
from switchyard.runs.state import BatchStatus, Status

WINDOW_PER_SLOT = 500  # batches in flight per worker slot when the request sets no cap
WINDOW_MIN = 2000
# When batches complete faster than the loop turns (its last wait returned LINGER_BURST or
# more), completions within GATHER_LINGER of the first are settled with it: one gather (a
# round trip through the scheduler to the workers) and one store commit for all of them.
# Batches of tens of ms complete about one per turn and are gathered as they come.
GATHER_LINGER = 0.05
LINGER_BURST = 4
LINGER_BACKLOG = 4  # ... and while this many batches per worker slot are in flight (none idles)


class AppPartitions(Halts, Settle):
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
        burst = 0  # batches the last wait returned
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
            linger = GATHER_LINGER if burst >= LINGER_BURST and (
                len(inflight) >= LINGER_BACKLOG * len(job.slot_names) or len(todo) <= len(inflight)) else 0.0
            done = self.executor.wait(inflight, timeout=STATUS_POLL, linger=linger)
            burst = len(done)
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
