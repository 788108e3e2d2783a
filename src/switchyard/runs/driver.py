"""The driver: the process that executes one orchestration of an app run.

Started as ``python -m switchyard.runs.driver ORCHESTRATION_ID`` (by AGI.run,
the CLI or the UI) in the app's worker environment. It holds the
orchestration's lease, heartbeats into the store, submits batches to an
executor, checkpoints each completed batch (pickle under ``runs/<id>/batches``)
before recording it, retries failed batches with exponential backoff, and
finally reduces the checkpoints in partition order into the output.
"""

from __future__ import annotations

import importlib
import os
import pickle
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchyard.app import Partition, app_class_of
from switchyard.logs import LineSink
from switchyard.modes import Mode, mode_string
from switchyard.runs.state import BatchStatus, Status
from switchyard.runs.store import RunStore
from switchyard.runs.task import BatchOutcome, BatchSpec
from switchyard.workspace import atomic_write_bytes

HEARTBEAT_INTERVAL = 1.0
LEASE_TTL = 10.0
JOB_FILE = "job.pkl"


@dataclass
class Job:
    """Everything the driver needs besides the store row; written by AGI.run to runs/<id>/job.pkl."""

    spec: BatchSpec
    partitions: list[Partition]
    slot_of: list[str]  # planned worker slot per partition index
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
    extra: dict = field(default_factory=dict)

    def save(self, run_dir: Path) -> None:
        atomic_write_bytes(run_dir / JOB_FILE, pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))

    @staticmethod
    def load(run_dir: Path) -> "Job":
        with open(run_dir / JOB_FILE, "rb") as f:
            return pickle.load(f)


def backoff(attempt: int, base: float, cap: float) -> float:
    """Delay before attempt ``attempt + 1`` (attempt counts from 1)."""
    return min(cap, base * (2 ** max(0, attempt - 1)))


def checkpoint_path(run_dir: Path, idx: int) -> Path:
    return run_dir / "batches" / f"{idx:06d}.pkl"


class Driver:
    def __init__(self, oid: str, store: RunStore | None = None):
        self.oid = oid
        self.store = store or RunStore()
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        orch = self.store.get(oid)
        self.run_dir = Path(orch.run_dir)
        self.log = LineSink(self.run_dir / "run.log")
        self.requested = Status(orch.status)
        self._stop = threading.Event()
        self.cluster = None
        self.executor = None

    # heartbeat -------------------------------------------------------------
    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_INTERVAL):
            try:
                self.requested = Status(self.store.heartbeat(self.oid, self.owner, LEASE_TTL))
            except Exception as e:  # lost the lease or the store: stop submitting
                self.log.write(f"driver: heartbeat failed: {e}")
                self.requested = Status.CANCELLING

    # main ------------------------------------------------------------------
    def run(self) -> Status:
        self.store.acquire_lease(self.oid, self.owner, LEASE_TTL, pid=os.getpid())
        beat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        try:
            self.store.command(self.oid, "start")
            self.requested = Status.RUNNING
            beat.start()
            return self._execute()
        except Exception as e:
            self.log.write(f"driver: {type(e).__name__}: {e}")
            for line in traceback.format_exc().splitlines():
                self.log.write(f"driver: {line}")
            self._finish("fail", error=str(e))
            return Status.FAILED
        finally:
            self._stop.set()
            for closer in (self.executor, self.cluster):
                if closer is not None:
                    try:
                        closer.close()
                    except Exception as e:
                        self.log.write(f"driver: closing {type(closer).__name__}: {e}")
            self.store.release_lease(self.oid, self.owner)
            self.log.close()

    def _finish(self, command: str, error: str | None = None) -> None:
        try:
            self.store.command(self.oid, command, error=error)
        except Exception as e:
            self.log.write(f"driver: could not record '{command}': {e}")

    def _start_executor(self, job: Job) -> None:
        from switchyard.runs.executors import DaskExecutor, LocalExecutor

        if not job.mode & Mode.DASK:
            self.executor = LocalExecutor()
            return
        address = job.scheduler
        if job.cluster == "local":
            from switchyard.cluster.local import LocalCluster

            self.log.write(f"driver: starting a local Dask cluster: {sum(job.workers.values())} workers")
            self.cluster = LocalCluster(python=Path(sys.executable), workers=job.workers,
                                        scheduler_address=job.scheduler, env=dict(os.environ),
                                        on_line=self.log.write)
            address = self.cluster.start()
        self.log.write(f"driver: connecting to the Dask scheduler at {address}")
        self.executor = DaskExecutor(address, self.log.write, job.slot_names)

    def _execute(self) -> Status:
        job = Job.load(self.run_dir)
        t0 = time.time()
        self.log.write(f"driver: orchestration {self.oid}: app '{job.spec.app}', mode {job.mode} "
                       f"({mode_string(job.mode)}), {len(job.partitions)} batches, pid {os.getpid()}")
        if job.plan_note:
            self.log.write(f"driver: {job.plan_note}")
        self._start_executor(job)
        setup_seconds = time.time() - t0
        total = len(job.partitions)
        batches = {b.idx: b for b in self.store.batches(self.oid)}
        attempts = {i: b.attempts for i, b in batches.items()}
        todo = {i: 0.0 for i, b in batches.items() if b.status != BatchStatus.COMPLETED}
        done_count = total - len(todo)
        if done_count:
            self.log.write(f"driver: {done_count} batches already completed: not re-executed")
        inflight: dict[Any, int] = {}
        submitted_at: dict[int, float] = {}
        dead: list[str] = []
        cap = job.max_inflight or total or 1
        t_exec = time.time()
        while True:
            status = self.requested
            if status == Status.CANCELLING:
                self.executor.cancel(list(inflight))
                self.store.record_results(self.oid, owner=self.owner, results=[
                    {"idx": i, "status": BatchStatus.CANCELLED.value, "worker": None,
                     "started_at": submitted_at.get(i), "ended_at": time.time(), "error": "cancelled",
                     "output_path": None, "next_attempt_at": None} for i in inflight.values()])
                self.log.write("driver: cancelled: in-flight batches cancelled, no further batch starts")
                self._finish("cancelled")
                return Status.CANCELLED
            now = time.time()
            if status == Status.RUNNING:
                busy = set(inflight.values())
                due = [i for i, at in sorted(todo.items()) if at <= now and i not in busy]
                room = cap - len(inflight)
                if due and room > 0:
                    due = due[:room]
                    started = {}
                    for i in due:
                        attempt = attempts[i] + 1
                        fut = self.executor.submit(job.spec, i, job.partitions[i], job.slot_of[i],
                                                   key=f"{self.oid}-{i}-{attempt}")
                        inflight[fut] = i
                        submitted_at[i] = now
                        started[i] = job.slot_of[i]
                    self.store.batches_started(self.oid, list(started), started, owner=self.owner, now=now)
            elif status == Status.PAUSING and not inflight:
                self.log.write(f"driver: paused with {total - len(todo)}/{total} batches completed")
                self._finish("paused")
                return Status.PAUSED
            if not inflight and not todo:
                break
            if not inflight:
                time.sleep(min(0.2, max(0.01, min(todo.values()) - time.time())))
                continue
            finished = self.executor.wait(list(inflight), timeout=0.2)
            if not finished:
                continue
            records = []
            for fut in finished:
                i = inflight.pop(fut)
                records.append(self._settle(job, i, fut, attempts, todo, dead))
            self.store.record_results(self.oid, records, owner=self.owner)
        exec_seconds = time.time() - t_exec
        if dead:
            msg = f"{len(dead)} of {total} batches failed after {job.max_attempts} attempts: {dead[0]}"
            self.log.write(f"driver: {msg}")
            self._finish("fail", error=msg)
            return Status.FAILED
        output = self._reduce(job)
        seconds = time.time() - t0
        self.store.set_output(self.oid, str(output), seconds)
        self.log.write(f"driver: completed {total} batches in {seconds:.2f} s "
                       f"(setup {setup_seconds:.2f} s, execution {exec_seconds:.2f} s); output {output}")
        self._write_timing(setup_seconds, exec_seconds, seconds)
        self._finish("complete")
        return Status.COMPLETED

    def _settle(self, job: Job, i: int, fut: Any, attempts: dict, todo: dict, dead: list) -> dict:
        name = job.partitions[i].name
        try:
            out: BatchOutcome = self.executor.outcome(fut)
        except BaseException as e:  # the worker died, the task was cancelled, the cluster vanished
            out = BatchOutcome(idx=i, result=None, error=f"{type(e).__name__}: {e}", traceback=None,
                               worker="?", started_at=time.time(), ended_at=time.time(), output="")
        for line in out.output.splitlines():
            self.log.write(f"[{out.worker}] {line}")
        attempts[i] += 1
        rec = {"idx": i, "worker": out.worker, "started_at": out.started_at, "ended_at": out.ended_at,
               "error": out.error, "output_path": None, "next_attempt_at": None}
        if out.error is None:
            path = checkpoint_path(self.run_dir, i)
            atomic_write_bytes(path, pickle.dumps(out.result, protocol=pickle.HIGHEST_PROTOCOL))
            todo.pop(i, None)
            rec.update(status=BatchStatus.COMPLETED.value, output_path=str(path))
            self.log.write(f"batch {i + 1}/{len(job.partitions)} {name} completed on {out.worker} "
                           f"in {out.ended_at - out.started_at:.2f} s")
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
            dead.append(f"{name}: {out.error}")
            rec.update(status=BatchStatus.DEAD.value)
            self.log.write(f"batch {i + 1}/{len(job.partitions)} {name} failed for good after "
                           f"{attempts[i]} attempts: {out.error}")
        return rec

    def _reduce(self, job: Job) -> Path:
        results = []
        for i in range(len(job.partitions)):
            with open(checkpoint_path(self.run_dir, i), "rb") as f:
                results.append(pickle.load(f))
        spec = job.spec
        if spec.app_dir not in sys.path:
            sys.path.insert(0, spec.app_dir)
        cls = app_class_of(importlib.import_module(spec.app), spec.app, Path(spec.app_dir))
        app = cls(cls.Args.model_validate(spec.args), Path(spec.data_dir))
        out_dir = self.run_dir / "output"
        out_dir.mkdir(parents=True, exist_ok=True)
        self.log.write(f"driver: reducing {len(results)} results")
        return Path(app.reduce(results, out_dir))

    def _write_timing(self, setup: float, execution: float, total: float) -> None:
        import json

        atomic_write_bytes(self.run_dir / "timing.json", json.dumps(
            {"setup_seconds": setup, "execution_seconds": execution, "seconds": total}).encode())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m switchyard.runs.driver ORCHESTRATION_ID", file=sys.stderr)
        return 2
    status = Driver(argv[0]).run()
    return 0 if status in (Status.COMPLETED, Status.PAUSED, Status.CANCELLED) else 1


if __name__ == "__main__":
    sys.exit(main())
