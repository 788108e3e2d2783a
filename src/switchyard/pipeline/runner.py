"""Executing a pipeline's steps on Dask: one subprocess per step attempt, in DAG order.

:func:`run_step` runs on a Dask worker: it writes the step's code to its folder
and runs it with the app's worker python in a process of its own, stdout and
stderr appended to ``steps/<id>/step.log`` as they come, killing it at the
timeout, or when the driver cancels: :func:`stop_steps`, sent to every worker over
the cluster connection (``Client.run``), kills the process trees of the run's steps,
so a worker that does not share a file system with the driver is stopped too. Steps exchange data through
files: ``SWITCHYARD_STEP_DIR`` is the step's folder, ``SWITCHYARD_DEP_DIRS``
lists its dependencies' folders (``os.pathsep``-separated) and
``SWITCHYARD_DEP_DIR_<ID>`` names each one.

:class:`StepScheduler` is the driver side: it submits the steps whose
dependencies are done, retries failed attempts with exponential backoff, runs a
step's fallback once it finally failed, fails fast while a step kind's circuit
breaker is open, marks the steps downstream of a failure ``skipped``, and
records every outcome in the run store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from switchyard.environ import child_environ
from switchyard.pipeline.breaker import Breakers
from switchyard.pipeline.model import Pipeline, Step
from switchyard.runs.retry import backoff
from switchyard.runs.state import BatchStatus, Status

POLL = 0.1
CANCEL_TIMEOUT = 60.0  # how long a cancel makes sure before it says which steps may still run
_RESEND = 2.0  # a worker that missed the stop (it was busy joining) is told again

# The step processes running on this worker: task key -> [run id, Popen, cancelled]
_running: dict[str, list] = {}
_running_lock = threading.Lock()


def step_dir(run_dir: Path | str, sid: str) -> Path:
    return Path(run_dir) / "steps" / sid


def step_log(run_dir: Path | str, sid: str) -> Path:
    return step_dir(run_dir, sid) / "step.log"


def run_step(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one attempt of a step in a subprocess (on a Dask worker); return its outcome.

    ``spec`` keys: ``run_dir``, ``id``, ``code``, ``python``, ``env``, ``timeout``,
    ``attempt``, ``deps`` (dependency ids).
    """
    try:
        from distributed import get_worker

        worker = str(get_worker().name)
    except (ImportError, ValueError):
        worker = "driver"
    run_dir = Path(spec["run_dir"])
    folder = step_dir(run_dir, spec["id"])
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "step.py"
    script.write_text(spec["code"], encoding="utf-8")
    dep_dirs = [str(step_dir(run_dir, d)) for d in spec.get("deps", [])]
    env = dict(spec.get("env") or child_environ(os.environ))
    env.update(SWITCHYARD_STEP_DIR=str(folder), SWITCHYARD_DEP_DIRS=os.pathsep.join(dep_dirs),
               SWITCHYARD_RUN_DIR=str(run_dir), PYTHONUNBUFFERED="1")
    for d in spec.get("deps", []):
        env[f"SWITCHYARD_DEP_DIR_{d.upper().replace('-', '_')}"] = str(step_dir(run_dir, d))
    started = time.time()
    timeout = float(spec["timeout"])
    me = f"{spec.get('oid') or run_dir.name}/{spec['id']}/{spec['attempt']}/{os.getpid()}"
    with open(folder / "step.log", "a", encoding="utf-8") as log:
        log.write(f"--- attempt {spec['attempt']} on {worker} at {time.strftime('%H:%M:%S')} ---\n")
        log.flush()
        python = spec["python"]
        if not os.path.exists(python):  # a worker on a host without the driver's files: its own env
            log.write(f"--- {python} is not on this worker: the step runs with its own python "
                      f"{sys.executable} ---\n")
            python = sys.executable
        proc = subprocess.Popen([python, "-u", str(script)], cwd=folder, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        entry = [spec.get("oid") or run_dir.name, proc, False]
        with _running_lock:
            _running[me] = entry
        error = None
        try:
            while True:
                try:
                    rc = proc.wait(timeout=POLL)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if time.time() - started > timeout:
                    error = f"timed out after {timeout:g} s: the step's process was killed"
                    _kill(proc)
                    rc = proc.wait()
                    break
        finally:
            with _running_lock:
                _running.pop(me, None)
        if entry[2]:
            error = "cancelled: the step's process was killed"
        if error is None and rc != 0:
            error = f"exit code {rc}" + _last_line(folder / "step.log")
        log.write(f"--- attempt {spec['attempt']} {'ok' if error is None else 'failed: ' + error} ---\n")
    return {"id": spec["id"], "ok": error is None, "error": error, "worker": worker,
            "started_at": started, "ended_at": time.time(), "attempt": spec["attempt"]}


def stop_steps(oid: str) -> list[int]:
    """Run on each worker (``Client.run``): kill the process trees of run ``oid``'s steps
    executing there; return their pids. Their :func:`run_step` then returns "cancelled"."""
    with _running_lock:
        mine = [e for e in _running.values() if e[0] == oid]
        for e in mine:
            e[2] = True
    for e in mine:
        _kill(e[1])
    return [e[1].pid for e in mine]


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the step's own children too
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith("--- attempt")]
    except OSError:
        return ""
    return f": {lines[-1].strip()[:300]}" if lines else ""


class StepScheduler:
    """Drives the steps of one pipeline orchestration to an end status.

    Args:
        pipeline: the pipeline snapshot the run was started with.
        store, oid, owner: the run store, the orchestration and the lease owner.
        run_dir: the run folder (steps write under ``steps/<id>``).
        submit: ``submit(spec, worker) -> future``: :func:`run_step` pinned to that worker.
        slots: ``slots() -> worker addresses``, one entry per worker thread. Steps are
            submitted only to a free slot (the others wait here), so independent steps run
            side by side instead of queueing behind each other on one worker.
        wait: ``wait(futures, timeout) -> done futures``.
        stop: ``stop()`` kills the step processes of this run on every worker (cancel).
        breakers: the circuit breakers of the app's step kinds.
        python, env: the interpreter and environment of the step processes.
        requested: returns the status the operator asked for (running, pausing, cancelling).
        log: receives the run log lines.
    """

    def __init__(self, pipeline: Pipeline, store, oid: str, owner: str, run_dir: Path, *,
                 submit: Callable[[dict, str], Any], slots: Callable[[], list[str]],
                 wait: Callable[[list, float], list],
                 breakers: Breakers, python: str, env: dict[str, str],
                 requested: Callable[[], Status], log: Callable[[str], None],
                 stop: Callable[[], Any] | None = None):
        self.p, self.store, self.oid, self.owner = pipeline, store, oid, owner
        self.run_dir = Path(run_dir)
        self.submit, self.slots, self.wait, self.breakers = submit, slots, wait, breakers
        self.worker_of: dict[Any, str] = {}
        self.python, self.env, self.requested, self.log = python, env, requested, log
        self.stop = stop or (lambda: None)
        self.idx = {b.name: b.idx for b in store.batches(oid)}
        self.steps = {sid: pipeline.step(sid) for sid in self.idx}

    # -- helpers -----------------------------------------------------------------------------
    def _record(self, sid: str, status: BatchStatus, **extra: Any) -> None:
        self.store.record_results(self.oid, [{"idx": self.idx[sid], "status": status.value, **extra}],
                                  owner=self.owner)

    def _deps(self, s: Step) -> list[str]:
        # A dependency outside this run (a single step run) or disabled does not hold it back.
        return [d for d in s.depends_on if d in self.idx and self.steps[d].enabled]

    # -- main loop ---------------------------------------------------------------------------
    def run(self) -> tuple[Status, str | None]:
        """Execute until every step is settled, or paused/cancelled; return (event status, error)."""
        batches = {b.name: b for b in self.store.batches(self.oid)}
        done = {sid for sid, b in batches.items() if b.status is BatchStatus.COMPLETED}
        # A retried run starts each unfinished step with a fresh attempt budget.
        attempts = {sid: 0 for sid in batches}
        if done:
            self.log(f"pipeline: {len(done)} steps already completed: not re-executed ({', '.join(sorted(done))})")
        fallbacks = {s.fallback: sid for sid, s in self.steps.items() if s.fallback and s.fallback in self.idx}
        waiting = [sid for sid in self.idx if sid not in done and sid not in fallbacks]
        # fallback step -> primary it stands in for, once the primary finally failed
        standing_in: dict[str, str] = {}
        failed: dict[str, str] = {}  # finally failed (not covered by a fallback)
        covered: set[str] = set()  # finally failed but its fallback completed
        skipped: set[str] = set()
        due: dict[str, float] = {}
        inflight: dict[Any, str] = {}
        for sid in waiting:
            if not self.steps[sid].enabled:
                self._record(sid, BatchStatus.SKIPPED, error="disabled")
                skipped.add(sid)
        waiting = [w for w in waiting if w not in skipped]
        holding = False

        def satisfied(d: str) -> bool:
            return d in done or d in covered

        while True:
            status = self.requested()
            if status is Status.CANCELLING:
                return self._cancel(inflight)
            if status is Status.PAUSING and not holding:
                holding = True
                self.log(f"pipeline: pausing: {len(inflight)} running steps finish first")
            now = time.time()
            for sid in list(waiting):
                s = self.steps[sid]
                deps = self._deps(s) if sid not in standing_in else []
                blocked = [d for d in deps if d in failed or d in skipped]
                if blocked:
                    waiting.remove(sid)
                    skipped.add(sid)
                    self._record(sid, BatchStatus.SKIPPED, error=f"upstream step '{blocked[0]}' did not complete")
                    self.log(f"step {sid}: skipped: upstream step '{blocked[0]}' did not complete")
                    continue
                if holding or not all(satisfied(d) for d in deps) or due.get(sid, 0) > now:
                    continue
                free = self._free_slot()
                if free is None:
                    break  # every worker runs a step: the others wait for one to finish
                waiting.remove(sid)
                attempts[sid] += 1
                ok, why = self.breakers.allow(s.breaker_kind)
                if not ok:
                    self._settle(sid, {"ok": False, "error": why, "worker": None, "started_at": now,
                                       "ended_at": now, "attempt": attempts[sid]}, attempts, due, waiting,
                                 done, failed, covered, standing_in, fallbacks, record_breaker=False)
                    continue
                primary = standing_in.get(sid)
                dep_ids = self._deps(self.steps[primary]) if primary else deps
                spec = {"run_dir": str(self.run_dir), "oid": self.oid, "id": sid, "code": s.code, "python": self.python,
                        "env": self.env, "timeout": s.timeout, "attempt": attempts[sid],
                        "deps": [d for d in dep_ids if d in done]}
                self.store.batches_started(self.oid, [self.idx[sid]], owner=self.owner)
                self.log(f"step {sid}: attempt {attempts[sid]}/{s.retries + 1} started")
                fut = self.submit(spec, free)
                self.worker_of[fut] = free
                inflight[fut] = sid
            if not inflight and not waiting:
                break
            if holding and not inflight:
                self.log(f"pipeline: paused with {len(done)}/{len(self.idx)} steps completed")
                return Status.PAUSED, None
            if not inflight:
                next_due = min((due.get(w, now) for w in waiting), default=now)
                if not any(all(satisfied(d) for d in self._deps(self.steps[w])) or w in standing_in
                           for w in waiting):
                    break  # nothing can ever start (should not happen after validation)
                time.sleep(min(POLL * 2, max(0.01, next_due - time.time())))
                continue
            for fut in self.wait(list(inflight), POLL * 2):
                sid = inflight.pop(fut)
                self.worker_of.pop(fut, None)
                try:
                    out = fut.result()
                except BaseException as e:  # the worker died, or the task was cancelled
                    out = {"ok": False, "error": f"{type(e).__name__}: {e}", "worker": "?",
                           "started_at": time.time(), "ended_at": time.time(), "attempt": attempts[sid]}
                self._settle(sid, out, attempts, due, waiting, done, failed, covered, standing_in, fallbacks)
        for sid in waiting:  # e.g. it depends on a step that only runs as a fallback
            self._record(sid, BatchStatus.SKIPPED, error="its dependencies never ran")
            skipped.add(sid)
            failed[sid] = f"{sid}: its dependencies never ran (does it depend on a fallback step?)"
        # fallbacks that were never needed
        for fb in fallbacks:
            if fb not in done and fb not in standing_in and fb not in skipped:
                self._record(fb, BatchStatus.SKIPPED, error=f"fallback of '{fallbacks[fb]}': not needed")
        if failed:
            names = ", ".join(failed)
            first = next(iter(failed.values()))
            msg = f"{len(failed)} steps failed ({names}): {first}"
            if skipped:
                msg += f"; skipped downstream: {', '.join(sorted(skipped))}"
            self.log(f"pipeline: {msg}")
            return Status.FAILED, msg
        self.log(f"pipeline: completed {len(done)} steps")
        return Status.COMPLETED, None

    def _free_slot(self) -> str | None:
        slots = list(self.slots())
        for busy in self.worker_of.values():
            if busy in slots:
                slots.remove(busy)
        return slots[0] if slots else None

    def _settle(self, sid: str, out: dict, attempts: dict, due: dict, waiting: list, done: set,
                failed: dict, covered: set, standing_in: dict, fallbacks: dict,
                record_breaker: bool = True) -> None:
        s = self.steps[sid]
        rec = {"worker": out.get("worker"), "started_at": out["started_at"], "ended_at": out["ended_at"],
               "output_path": str(step_dir(self.run_dir, sid))}
        if record_breaker:
            state = self.breakers.record(s.breaker_kind, out["ok"])
            if state != "closed" and not out["ok"]:
                self.log(f"step {sid}: circuit breaker for kind '{s.breaker_kind}' is {state}")
        if out["ok"]:
            done.add(sid)
            due.pop(sid, None)
            self._record(sid, BatchStatus.COMPLETED, error=None, **rec)
            self.log(f"step {sid}: completed on {out.get('worker')} in {out['ended_at'] - out['started_at']:.2f} s")
            primary = standing_in.get(sid)
            if primary:
                covered.add(primary)
                self.log(f"step {primary}: its fallback '{sid}' completed instead")
            return
        if attempts[sid] <= s.retries:
            delay = backoff(attempts[sid], s.retry_delay)
            due[sid] = time.time() + delay
            waiting.append(sid)
            self._record(sid, BatchStatus.FAILED, error=out["error"], next_attempt_at=due[sid], **rec)
            self.log(f"step {sid}: attempt {attempts[sid]}/{s.retries + 1} failed: {out['error']}; "
                     f"retry in {delay:.1f} s")
            return
        self._record(sid, BatchStatus.DEAD, error=out["error"], **rec)
        self.log(f"step {sid}: failed for good after {attempts[sid]} attempts: {out['error']}")
        primary = standing_in.get(sid)
        if primary:  # the fallback failed too: the primary is failed for good
            failed[primary] = f"{primary}: its fallback '{sid}' failed too: {out['error']}"
            self.log(f"step {primary}: its fallback '{sid}' failed too")
            return
        fb = s.fallback
        if fb and fb in self.idx and fb not in standing_in and fb not in done:
            # Its dependants wait for the fallback's outcome instead of being skipped now.
            standing_in[fb] = sid
            waiting.append(fb)
            self.log(f"step {sid}: running its fallback '{fb}' instead")
        else:
            failed[sid] = f"{sid}: {out['error']}"

    def _cancel(self, inflight: dict) -> tuple[Status, str | None]:
        """Kill the running steps through their workers; ``cancelled`` once each returned."""
        deadline = time.monotonic() + CANCEL_TIMEOUT
        told = -_RESEND
        while inflight and time.monotonic() < deadline:
            if time.monotonic() - told >= _RESEND:
                told = time.monotonic()
                try:
                    self.stop()
                except Exception as e:  # the scheduler is gone: the steps die with their workers
                    self.log(f"pipeline: cancelling: could not reach the workers: {type(e).__name__}: {e}")
            for fut in self.wait(list(inflight), POLL * 2):
                sid = inflight.pop(fut, None)
                self.worker_of.pop(fut, None)
                self._record(sid, BatchStatus.CANCELLED, error="cancelled", ended_at=time.time())
        if inflight:
            left = ", ".join(f"{sid} on {self.worker_of.get(f, '?')}" for f, sid in inflight.items())
            self.log(f"pipeline: cancelled, but after {CANCEL_TIMEOUT:g} s these steps may still run: {left}")
        else:
            self.log("pipeline: cancelled: running steps were killed, no further step starts")
        return Status.CANCELLED, None
