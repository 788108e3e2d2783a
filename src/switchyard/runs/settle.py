"""Settling the batches of an app run and its end: a finished batch is checkpointed before
the store records it, failed ones are retried with the one backoff policy
(:func:`switchyard.runs.retry.backoff`) or dead-lettered, each completion line carries the
ETA (:mod:`switchyard.runs.eta`); before reducing, batches whose checkpoint cannot be read
back run again; the checkpoints are reduced in partition order into the output (read from
disk as ``reduce`` iterates them), with its lineage and ``timing.json``.

A mixin of :class:`switchyard.runs.partitions.AppPartitions`: it reads the source's driver
(``store``, ``oid``, ``owner``, ``log``, ``run_dir``) and its ``writer``, ``devices``,
``settled_seconds``, ``_where`` and ``_total``.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from switchyard.app import app_class_of
from switchyard.runs import checkpoints
from switchyard.runs.job import Job, StoredPartitions
from switchyard.runs.retry import backoff
from switchyard.runs.state import BatchStatus
from switchyard.runs.task import BatchOutcome
from switchyard.workspace import atomic_write_bytes


class Settle:
    """What the batch loop does with a finished batch, and the run's end."""

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

    def _write_lineage(self, job: Job, output: Path) -> None:
        """Where the output came from, in a sidecar; never fails the run."""
        try:
            from switchyard.lineage import inputs_from_items, write_run_lineage

            write_run_lineage(output, self.store.get(self.oid),
                              inputs=inputs_from_items(job.spec.data_dir, job.partitions))
        except Exception as e:
            self.log.write(f"driver: lineage not written: {type(e).__name__}: {e}")

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
