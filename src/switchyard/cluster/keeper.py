"""The scheduler-side keeper of a batch-system cluster: a ``dask scheduler`` preload.

Loaded by the scheduler of a ``kind = "slurm"`` warm cluster (see
:mod:`switchyard.cluster.jobqueue`), it lives as long as that scheduler. Every second it
reads its config (``$SWITCHYARD_KEEPER``, written by ``cluster up``), counts the tag's
jobs in ``squeue`` and the work waiting on the scheduler, and:

- submits the job script dask-jobqueue wrote (``sbatch``) while fewer jobs than wanted are
  active: the minimum always (a job that ended at its walltime is replaced), more with the
  work waiting, up to the maximum (adaptive);
- above the minimum, cancels pending jobs no longer needed and retires the workers of a
  running job idle for ``idle_seconds`` before cancelling it.

Stdlib and the scheduler only: it runs in the scheduler's process.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import math
import os
import time

logger = logging.getLogger("switchyard.keeper")
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "RESIZING", "REQUEUED", "SUSPENDED")
WAITING_STATES = ("processing", "queued", "no-worker", "waiting")


def wanted_jobs(demand_slots: int, slots_per_job: int, minimum: int, maximum: int) -> int:
    """Jobs for the work waiting (``demand_slots`` tasks not done), within [minimum, maximum]."""
    need = math.ceil(demand_slots / max(1, slots_per_job))
    return max(minimum, min(maximum, need))


async def _call(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT,
                                                stdin=asyncio.subprocess.DEVNULL)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


class Keeper:
    def __init__(self, scheduler, path: str):
        self.scheduler = scheduler
        self.path = path
        self.idle_since: dict[str, float] = {}
        self.task: asyncio.Task | None = None

    def config(self) -> dict | None:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def demand(self) -> int:
        return sum(1 for ts in self.scheduler.tasks.values() if ts.state in WAITING_STATES)

    def workers_by_job(self, tag: str) -> dict[str, list]:
        out: dict[str, list] = {}
        for ws in self.scheduler.workers.values():
            name = str(ws.name)
            if name.startswith(tag + "-"):
                out.setdefault(name[len(tag) + 1:].split("-", 1)[0], []).append(ws)
        return out

    async def tick(self) -> None:
        cfg = self.config()
        if not cfg:
            return
        tag, folder = cfg["tag"], os.path.dirname(self.path)
        with open(os.path.join(folder, "submit.lock"), "a") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return  # `cluster up` is submitting
            rc, out = await _call("squeue", "-h", "--name", tag, "--user", str(cfg["uid"]), "-o", "%i|%T")
            if rc != 0:
                logger.warning("keeper: squeue failed: %s", out.strip())
                return
            jobs = [line.split("|") for line in out.splitlines() if line.count("|") == 1]
            active = [(i, s) for i, s in jobs if s in ACTIVE]
            want = wanted_jobs(self.demand(), cfg["slots_per_job"], cfg["minimum"], cfg["maximum"])
            if len(active) < want:
                for _ in range(want - len(active)):
                    rc, out = await _call("sbatch", "--parsable", cfg["script"])
                    if rc != 0:
                        logger.warning("keeper: sbatch failed: %s", out.strip())
                        return
                    logger.info("keeper: submitted job %s (%d active, %d wanted)", out.strip(), len(active), want)
            elif len(active) > want:
                await self.shrink(tag, active, len(active) - want, cfg)

    async def shrink(self, tag: str, active: list, extra: int, cfg: dict) -> None:
        now = time.monotonic()
        by_job = self.workers_by_job(tag)
        pending = [i for i, s in active if s == "PENDING"]
        victims = pending[:extra]
        for job, s in active:
            if len(victims) >= extra or s != "RUNNING":
                continue
            workers = by_job.get(job, [])
            if workers and all(not ws.processing for ws in workers):
                since = self.idle_since.setdefault(job, now)
                if now - since >= cfg.get("idle_seconds", 20):
                    await self.scheduler.retire_workers(workers=[ws.address for ws in workers],
                                                        stimulus_id=f"keeper-shrink-{time.time()}")
                    victims.append(job)
            else:
                self.idle_since.pop(job, None)
        for job in victims:
            self.idle_since.pop(job, None)
            await _call("scancel", job)
            logger.info("keeper: cancelled job %s (not needed)", job)

    async def loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # never take the scheduler down
                logger.exception("keeper: tick failed")
            await asyncio.sleep(1.0)


async def dask_setup(scheduler) -> None:
    """The preload's entry point: start the keeper's loop in the scheduler's event loop."""
    path = os.environ.get("SWITCHYARD_KEEPER")
    if not path:
        return
    keeper = Keeper(scheduler, path)
    keeper.task = asyncio.ensure_future(keeper.loop())
    scheduler.switchyard_keeper = keeper


async def dask_teardown(scheduler) -> None:
    keeper = getattr(scheduler, "switchyard_keeper", None)
    if keeper and keeper.task:
        keeper.task.cancel()
