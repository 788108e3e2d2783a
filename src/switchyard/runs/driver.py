"""The driver: the process that executes one orchestration, app run or pipeline run alike.

Started by the queue (:mod:`switchyard.runs.launcher`), as a fork of the app
environment's run agent or as ``python -m switchyard.runs.driver ORCHESTRATION_ID``
(``switchyard.pipeline.driver`` for pipeline runs: the same :class:`Driver` with
the pipeline's batch source). The driver takes the orchestration's lease,
heartbeats into the store from a thread of its own, over a connection of its own
(so a batch source's slow store write, or a lock another process holds, never
delays the renewal past the lease; it also reads the status the operator asked for:
pausing, cancelling), lets its *batch source* execute the batches
(:class:`~switchyard.runs.partitions.AppPartitions`, or the pipeline's steps),
records the end, and pumps the queue. A driver that lost its lease (the sweep
declared it dead, another driver took over) stops without recording anything.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Protocol

from switchyard.exceptions import InvalidTransition, LeaseHeld
from switchyard.logs import EngineSplit, LineSink
from switchyard.runs import launcher
from switchyard.runs.leases import (BEAT_BUSY_TIMEOUT, HEARTBEAT_INTERVAL, LEASE_TTL,  # noqa: F401 (re-exported)
                                    OBSERVE_INTERVAL, PAUSE_DRAIN_TIMEOUT, STATUS_POLL, DriverLost)
from switchyard.runs.job import Job, checkpoint_path, write_checkpoint  # noqa: F401 (re-exported)
from switchyard.runs.partitions import AppPartitions
from switchyard.runs.retry import backoff  # noqa: F401 (re-exported)
from switchyard.runs.state import Status
from switchyard.runs.store import RunStore


class BatchSource(Protocol):
    """What a driver executes: app partitions, or pipeline steps."""

    kind: str

    def execute(self, driver: "Driver") -> Status:
        """Run the batches until an end status, recorded through ``driver.finish``; return it.

        Call ``driver.check()`` often: it raises DriverLost when this driver must stop
        silently, and returns the status the operator asked for."""

    def close(self) -> None:
        """Release what ``execute`` started (executor, cluster). Idempotent."""


class Driver:
    """Executes one orchestration with its batch source; :meth:`run` returns the status it ended in."""

    def __init__(self, oid: str, store: RunStore | None = None, owner: str | None = None,
                 source: BatchSource | None = None):
        self.oid = oid
        self.store = store or RunStore()
        self.owner = owner or os.environ.get(launcher.OWNER_ENV) or launcher.new_owner()
        orch = self.store.get(oid)
        self.orch = orch
        self.run_dir = Path(orch.run_dir)
        self.log = LineSink(self.run_dir / "run.log")
        self.engine_log = LineSink(self.run_dir / "engine.log")  # everything the cluster printed
        self._split = EngineSplit()
        self.requested = Status(orch.status)
        self.lost: str | None = None
        self.signalled: str | None = None
        self._stop = threading.Event()
        self.source: BatchSource = source if source is not None else AppPartitions()

    # main ------------------------------------------------------------------
    def run(self) -> Status:
        try:
            self.store.acquire_lease(self.oid, self.owner, LEASE_TTL, pid=os.getpid())
        except LeaseHeld as e:
            self.log.write(f"driver: not started: {e}")
            self.log.close()
            self.engine_log.close()
            return self.store.status(self.oid)
        # Its own store: the source's writes hold the main store's lock while they wait for
        # SQLite's, and the renewal must not queue behind them.
        self._beat_store = RunStore(self.store.path, busy_timeout=BEAT_BUSY_TIMEOUT)
        beat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        try:
            try:
                self.store.command(self.oid, "start", owner=self.owner)
            except InvalidTransition as e:  # cancelled while queued, or started by someone else
                self.log.write(f"driver: not started: {e}")
                return self.store.status(self.oid)
            self.requested = Status.RUNNING
            beat.start()  # only now: a status read before `start` would say pending
            return self.source.execute(self)
        except (DriverLost, LeaseHeld) as e:  # another driver owns it now: leave it alone
            self.log.write(f"driver: stopping without recording anything: {e}")
            return self.store.status(self.oid)
        except Exception as e:
            self.log.write(f"driver: {type(e).__name__}: {e}")
            for line in traceback.format_exc().splitlines():
                self.log.write(f"driver: {line}")
            self.finish("fail", error=str(e))
            return self.store.status(self.oid)
        finally:
            self._stop.set()
            if beat.is_alive():
                beat.join(BEAT_BUSY_TIMEOUT + 1)
            self._beat_store.close()
            try:
                self.source.close()
            except Exception as e:
                self.log.write(f"driver: closing the {self.source.kind} source: {type(e).__name__}: {e}")
            self.store.release_lease(self.oid, self.owner)
            try:
                launcher.pump(self.store)  # this slot is free now: start the next queued run
            except Exception as e:
                self.log.write(f"driver: could not start the queued orchestrations: {e}")
            self.log.close()
            self.engine_log.close()

    def check(self) -> Status:
        """The status to act on; raises DriverLost when this driver must stop silently."""
        if self.lost:
            raise DriverLost(self.lost)
        status = self.requested
        if status not in (Status.RUNNING, Status.PAUSING, Status.CANCELLING):
            raise DriverLost(f"the orchestration is {status.value} (declared gone by the sweep?)")
        return status

    def finish(self, command: str, error: str | None = None) -> None:
        """Record the orchestration's end (``complete``, ``fail``, ``paused``, ``cancelled``, ``interrupt``)."""
        try:
            self.store.command(self.oid, command, error=error, owner=self.owner)
        except Exception as e:
            self.log.write(f"driver: could not record '{command}': {e}")

    def cluster_line(self, line: str) -> None:
        """A line of a cluster the source started: all of it to engine.log, what people read to run.log."""
        self.engine_log.write(line)
        if self._split.for_people(line):
            self.log.write(line)

    # heartbeat and signals ----------------------------------------------------
    def _beat(self) -> None:
        store = self._beat_store
        last = time.monotonic()
        while not self._stop.wait(STATUS_POLL):
            try:
                if time.monotonic() - last >= HEARTBEAT_INTERVAL - 0.05:  # (the wait may end early)
                    self.requested = store.heartbeat(self.oid, self.owner, LEASE_TTL)
                    last = time.monotonic()
                else:
                    self.requested = store.status(self.oid)
            except LeaseHeld as e:
                self.lost = str(e)
            except Exception as e:  # the store is busy or gone: the lease expires if it lasts
                self.log.write(f"driver: heartbeat failed: {type(e).__name__}: {e}")

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.signalled = signal.Signals(signum).name


def run_process(make_source, module: str, argv: list[str] | None = None) -> int:
    """The body of a driver process: ``python -m <module> ORCHESTRATION_ID``."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m {module} ORCHESTRATION_ID", file=sys.stderr)
        return 2
    driver = Driver(argv[0], source=make_source())
    # A stopping machine sends SIGTERM: record `interrupted` and close the cluster on the way out.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, driver._on_signal)
    status = driver.run()
    return 0 if status in (Status.COMPLETED, Status.PAUSED, Status.CANCELLED) else 1


def main(argv: list[str] | None = None) -> int:
    return run_process(AppPartitions, "switchyard.runs.driver", argv)


if __name__ == "__main__":
    sys.exit(main())
