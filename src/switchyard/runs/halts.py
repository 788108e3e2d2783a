"""How an app run stops before its end: pause (queued batches go back to pending, executing
ones finish and checkpoint, then ``paused`` once nothing of the run executes), cancel (queued
batches are cancelled and the run stays ``cancelling`` until nothing of it executes on any
worker, or says what may still execute), and a signal to the driver (``interrupted``).

A mixin of :class:`switchyard.runs.partitions.AppPartitions`: it reads the source's driver
(``store``, ``oid``, ``owner``, ``log``, ``lost``, ``signalled``, ``_finish``), its
``executor``, and its plan ``window`` and ``stragglers`` when they are on.
"""

from __future__ import annotations

import time

from switchyard.runs.leases import PAUSE_DRAIN_TIMEOUT
from switchyard.runs.state import BatchStatus, Status


class Halts:
    """Pause, cancel and signal handling of an app run's batch loop."""

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
