"""The batch source of pipeline runs: a pipeline's steps on a Dask cluster.

A pipeline run is executed by the same :class:`~switchyard.runs.driver.Driver` as
an app run (lease, heartbeat, control polling, finish, queue pump); this module
gives it :class:`PipelineSteps`, which lets
:class:`~switchyard.pipeline.runner.StepScheduler` run the steps on a Dask
cluster: the scheduler address recorded in the orchestration, or a local
cluster it starts for the run and closes at the end. Started by the queue as
``python -m switchyard.pipeline.driver ORCHESTRATION_ID`` (the module named in
the orchestration's ``options["driver"]``), or forked by the run agent.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import time
from pathlib import Path
from typing import Any

from switchyard.exceptions import LeaseHeld
from switchyard.pipeline.breaker import Breakers, breakers_path
from switchyard.pipeline.model import Pipeline
from switchyard.pipeline.runner import StepScheduler, run_step, stop_steps
from switchyard.runs import launcher
from switchyard.runs.driver import Driver, run_process
from switchyard.runs.state import Status

SNAPSHOT = "pipeline.json"
OWNER_ENV = "SWITCHYARD_DRIVER_OWNER"


class PipelineSteps:
    """The steps of a pipeline run; :meth:`execute` drives them to an end status for ``driver``.

    Args:
        scheduler: a Dask scheduler address to use instead of the recorded one.
    """

    kind = "pipeline"

    def __init__(self, scheduler: str | None = None):
        self.scheduler = scheduler
        self.driver: Driver | None = None
        self.cluster = None
        self.client = None

    def _status(self) -> Status:
        d = self.driver
        if d.lost:
            raise LeaseHeld(d.oid, d.lost)
        if d.signalled:
            return Status.CANCELLING
        return d.requested

    def execute(self, driver: Driver) -> Status:
        self.driver = d = driver
        orch = d.orch
        pipeline = Pipeline.from_dict(json.loads((d.run_dir / SNAPSHOT).read_text()))
        from switchyard.cluster.connect import connect

        address = self.scheduler or orch.options.get("scheduler")
        if not address:
            from switchyard.cluster.local import LocalCluster

            d.log.write(f"driver: starting a local Dask cluster: {pipeline.workers} workers")
            self.cluster = LocalCluster(python=Path(sys.executable), workers={"127.0.0.1": pipeline.workers},
                                        env=cluster_env(), on_line=d.cluster_line)
            address = self.cluster.start()
            launcher.record_cluster(d.run_dir, self.cluster.pids, address)  # reaped if this driver dies
        d.log.write(f"driver: pipeline run {d.oid} of app '{orch.app}' "
                    f"(workflow {orch.options.get('workflow_id')}), scheduler {address}")
        client = self.client = connect(address, set_as_default=True)
        finished: queue.Queue = queue.Queue()

        def submit(spec: dict, worker: str) -> Any:
            fut = client.submit(run_step, spec, pure=False, workers=[worker], allow_other_workers=False,
                                key=f"step-{d.oid}-{spec['id']}-{spec['attempt']}-{os.getpid()}")
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

        o = orch.options
        scheduler = StepScheduler(
            pipeline, d.store, d.oid, d.owner, d.run_dir, submit=submit, wait=waiter,
            breakers=Breakers(breakers_path(d.store.path.parent), orch.app, pipeline.breaker),
            slots=slots, python=o.get("python") or sys.executable, env=_step_env(o, orch.app), requested=self._status,
            log=d.log.write, stop=lambda: client.run(stop_steps, d.oid, on_error="return"))
        status, error = scheduler.run()
        if d.signalled:
            d.finish("interrupt", error=f"driver stopped by {d.signalled}: resume it to continue")
        else:
            event = {Status.COMPLETED: "complete", Status.FAILED: "fail", Status.PAUSED: "paused",
                     Status.CANCELLED: "cancelled"}[status]
            if status is Status.COMPLETED:
                d.store.set_output(d.oid, str(d.run_dir / "steps"),
                                   time.time() - (d.store.get(d.oid).started_at or time.time()))
            d.finish(event, error=error)
        return d.store.status(d.oid)

    def close(self) -> None:
        for closer in (self.client, self.cluster):
            if closer is not None:
                try:
                    closer.close()
                except Exception as e:
                    if self.driver is not None:
                        self.driver.log.write(f"driver: closing {type(closer).__name__}: {e}")
        if self.cluster is not None and self.driver is not None:
            launcher.forget_cluster(self.driver.run_dir)
        self.client = self.cluster = None


def PipelineDriver(oid: str, store=None, owner: str | None = None, scheduler: str | None = None) -> Driver:
    """The driver of a pipeline run: :class:`Driver` with the pipeline's steps as its source."""
    return Driver(oid, store, owner, source=PipelineSteps(scheduler))


def cluster_env() -> dict[str, str]:
    """Environment of a local cluster for steps: a step occupies its worker's one thread, and a
    saturation of 1.0 keeps the scheduler from queueing a second step behind it while
    another worker idles. The allow-list of :mod:`switchyard.environ`, as for every process
    that runs step code."""
    from switchyard.environ import child_environ

    env = child_environ(os.environ)
    env["DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION"] = "1.0"
    env.pop(OWNER_ENV, None)
    return env


def _step_env(options: dict, app: str) -> dict[str, str]:
    """What a step process gets: the allow-list of :mod:`switchyard.environ` over this driver's
    environment with the names the app declares, plus the run's ``step_env``."""
    from switchyard.app import AppEnv
    from switchyard.environ import child_environ, declared_names

    declared = declared_names(AppEnv(app, apps_dir=options.get("apps_dir")).settings_path)
    env = child_environ(os.environ, declared)
    env.pop(OWNER_ENV, None)
    env.update({k: str(v) for k, v in (options.get("step_env") or {}).items()})
    return env


def main(argv: list[str] | None = None) -> int:
    return run_process(PipelineSteps, "switchyard.pipeline.driver", argv)


if __name__ == "__main__":
    sys.exit(main())
