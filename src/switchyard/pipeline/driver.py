"""The pipeline driver: the process that executes one pipeline orchestration.

Started as ``python -m switchyard.pipeline.driver ORCHESTRATION_ID`` by the queue
(:mod:`switchyard.runs.launcher`, which starts the module named in the
orchestration's ``options["driver"]``). Like the app driver it takes the lease,
heartbeats into the store and reads the status the operator asked for (pausing,
cancelling), then lets :class:`~switchyard.pipeline.runner.StepScheduler` run the
steps on a Dask cluster: the scheduler address recorded in the orchestration, or
a local cluster it starts for the run and closes at the end.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from switchyard.exceptions import InvalidTransition, LeaseHeld
from switchyard.logs import LineSink
from switchyard.pipeline.breaker import Breakers, breakers_path
from switchyard.pipeline.model import Pipeline
from switchyard.pipeline.runner import StepScheduler, run_step
from switchyard.runs.driver import LEASE_TTL, LeaseHolder
from switchyard.runs.state import Status
from switchyard.runs.store import RunStore

SNAPSHOT = "pipeline.json"
OWNER_ENV = "SWITCHYARD_DRIVER_OWNER"


class PipelineDriver(LeaseHolder):
    """Executes one pipeline orchestration; :meth:`run` returns the status it ended in.

    Args:
        oid: the orchestration id.
        store: the run store (default: the workspace's).
        owner: the lease owner name (default: the one the queue claimed for, else a new one).
        scheduler: a Dask scheduler address to use instead of the recorded one.
    """

    def __init__(self, oid: str, store: RunStore | None = None, owner: str | None = None,
                 scheduler: str | None = None):
        from switchyard.runs import launcher

        self.oid = oid
        self.store = store or RunStore()
        self.owner = owner or os.environ.get(OWNER_ENV) or launcher.new_owner()
        orch = self.store.get(oid)
        self.orch = orch
        self.run_dir = Path(orch.run_dir)
        self.scheduler = scheduler or orch.options.get("scheduler")
        self.log = LineSink(self.run_dir / "run.log")
        self.requested = Status(orch.status)
        self.lost: str | None = None
        self.signalled: str | None = None
        self._stop = threading.Event()


    def _status(self) -> Status:
        if self.lost:
            raise LeaseHeld(self.oid, self.lost)
        if self.signalled:
            return Status.CANCELLING
        return self.requested

    def _finish(self, command: str, error: str | None = None) -> None:
        try:
            self.store.command(self.oid, command, error=error, owner=self.owner)
        except Exception as e:
            self.log.write(f"driver: could not record '{command}': {e}")

    def run(self) -> Status:
        try:
            self.store.acquire_lease(self.oid, self.owner, LEASE_TTL, pid=os.getpid())
        except LeaseHeld as e:
            self.log.write(f"driver: not started: {e}")
            self.log.close()
            return self.store.status(self.oid)
        beat = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        cluster = client = None
        try:
            try:
                self.store.command(self.oid, "start", owner=self.owner)
            except InvalidTransition as e:
                self.log.write(f"driver: not started: {e}")
                return self.store.status(self.oid)
            self.requested = Status.RUNNING
            beat.start()
            pipeline = Pipeline.from_dict(json.loads((self.run_dir / SNAPSHOT).read_text()))
            from distributed import Client

            address = self.scheduler
            if not address:
                from switchyard.cluster.local import LocalCluster

                self.log.write(f"driver: starting a local Dask cluster: {pipeline.workers} workers")
                cluster = LocalCluster(python=Path(sys.executable), workers={"127.0.0.1": pipeline.workers},
                                       env=cluster_env(), on_line=self._cluster_line)
                address = cluster.start()
            self.log.write(f"driver: pipeline run {self.oid} of app '{self.orch.app}' "
                           f"(workflow {self.orch.options.get('workflow_id')}), scheduler {address}")
            client = Client(address, timeout=30)

            finished: queue.Queue = queue.Queue()

            def submit(spec: dict, worker: str) -> Any:
                fut = client.submit(run_step, spec, pure=False, workers=[worker], allow_other_workers=False,
                                    key=f"step-{self.oid}-{spec['id']}-{spec['attempt']}-{os.getpid()}")
                fut.add_done_callback(finished.put)
                return fut

            def waiter(futures: list, timeout: float) -> list:
                got = []
                try:
                    got.append(finished.get(timeout=timeout))
                    while True:
                        got.append(finished.get_nowait())
                except queue.Empty:
                    pass
                return [f for f in got if f in futures]

            def slots() -> list[str]:
                info = client.scheduler_info().get("workers", {})
                return [a for a, w in sorted(info.items()) for _ in range(int(w.get("nthreads", 1)))]

            o = self.orch.options
            scheduler = StepScheduler(
                pipeline, self.store, self.oid, self.owner, self.run_dir, submit=submit, wait=waiter,
                breakers=Breakers(breakers_path(self.store.path.parent), self.orch.app, pipeline.breaker),
                slots=slots, python=o.get("python") or sys.executable, env=_step_env(o), requested=self._status,
                log=self.log.write)
            status, error = scheduler.run()
            if self.signalled:
                msg = f"driver stopped by {self.signalled}: resume it to continue"
                self._finish("interrupt", error=msg)
            else:
                event = {Status.COMPLETED: "complete", Status.FAILED: "fail", Status.PAUSED: "paused",
                         Status.CANCELLED: "cancelled"}[status]
                if status is Status.COMPLETED:
                    self.store.set_output(self.oid, str(self.run_dir / "steps"),
                                          time.time() - (self.store.get(self.oid).started_at or time.time()))
                self._finish(event, error=error)
            return self.store.status(self.oid)
        except LeaseHeld as e:
            self.log.write(f"driver: stopping without recording anything: {e}")
            return self.store.status(self.oid)
        except Exception as e:
            self.log.write(f"driver: {type(e).__name__}: {e}")
            for line in traceback.format_exc().splitlines():
                self.log.write(f"driver: {line}")
            self._finish("fail", error=str(e))
            return self.store.status(self.oid)
        finally:
            self._stop.set()
            for closer in (client, cluster):
                if closer is not None:
                    try:
                        closer.close()
                    except Exception as e:
                        self.log.write(f"driver: closing {type(closer).__name__}: {e}")
            self.store.release_lease(self.oid, self.owner)
            try:
                from switchyard.runs import launcher

                launcher.pump(self.store)
            except Exception as e:
                self.log.write(f"driver: could not start the queued orchestrations: {e}")
            self.log.close()

    def _cluster_line(self, line: str) -> None:
        if "Run out-of-band function" not in line:
            self.log.write(line)


def cluster_env() -> dict[str, str]:
    """Environment of a local cluster for steps: a step occupies its worker's one thread, and a
    saturation of 1.0 keeps the scheduler from queueing a second step behind it while
    another worker idles."""
    env = dict(os.environ)
    env["DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION"] = "1.0"
    env.pop(OWNER_ENV, None)
    return env


def _step_env(options: dict) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(OWNER_ENV, None)
    env.update({k: str(v) for k, v in (options.get("step_env") or {}).items()})
    return env


def main(argv: list[str] | None = None) -> int:
    from switchyard.runs.driver import run_process

    return run_process(PipelineDriver, "switchyard.pipeline.driver", argv)


if __name__ == "__main__":
    sys.exit(main())
