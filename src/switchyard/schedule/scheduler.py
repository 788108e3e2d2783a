"""The scheduler: fires due schedules, file triggers and queued triggers, once per tick.

:meth:`Scheduler.tick` takes the time as a parameter and does one pass; the process
(:func:`serve`, ``switchyard scheduler``) calls it every second under a lease, so one
scheduler runs per store. The lease is renewed by a thread of its own over a connection of
its own, so a tick whose launch is slow (an environment to install) never lets it lapse. A fire is handled at most once: the schedule's ``checked_at``
moves past a due time before its run is launched, so a scheduler killed mid-launch loses
that fire (its trigger record says so if the launch raised) rather than launching it twice.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable

from switchyard.exceptions import InvalidTransition, ScheduleError, SwitchyardError
from switchyard.runs.store import RunStore
from switchyard.schedule import watch as watching
from switchyard.schedule.book import Book, open_book
from switchyard.schedule.condition import evaluate
from switchyard.schedule.model import Schedule
from switchyard.schedule.timing import decide_overlap, plan_fires

log = logging.getLogger("switchyard.scheduler")

# (schedule, args for the run, origin) -> orchestration id
Launch = Callable[[Schedule, dict[str, Any], dict[str, Any]], str]
GRACE = 60.0        # a fire handled this late is still on time, not missed
LEASE_TTL = 15.0
ALERT_EVERY = 5.0   # seconds between alert checks


class Scheduler:
    """Fires the schedules of one run store.

    Args:
        store: the run store holding the schedules.
        launch: starts a run; default :func:`launch_run` (the same call as ``AGI.run`` or the
            pipeline's Run button, with ``origin`` naming the schedule and trigger).
        grace: seconds after its time that a fire still counts as on time.
    """

    def __init__(self, store: RunStore, launch: Launch | None = None, grace: float = GRACE):
        self.store = store
        self.book = Book(store)
        self.launch = launch or (lambda s, args, origin: launch_run(store, s, args, origin))
        self.grace = float(grace)

    def tick(self, now: float | None = None) -> list[dict[str, Any]]:
        """One pass over every schedule; return the trigger records written (as dicts)."""
        now = time.time() if now is None else float(now)
        written: list[dict[str, Any]] = []
        for s in self.book.list():
            if s.paused:
                continue
            try:
                if s.kind == "files":
                    written += self._files(s, now)
                else:
                    written += self._timed(s, now)
                written += self._drain_queue(s, now)
            except SwitchyardError as e:
                log.error("schedule %s: %s", s.id, e)
        return written

    # -- firing -------------------------------------------------------------------------------

    def _timed(self, s: Schedule, now: float) -> list[dict]:
        if s.next_fire_at is None or s.next_fire_at > now:
            return []
        due = s.when.between(s.checked_at, now)
        plan = plan_fires(due, now, s.catch_up, s.catch_up_window, self.grace)
        self.book.save(s.with_(checked_at=now, next_fire_at=s.when.next_after(now),
                               last_fire_at=max(due) if due else s.last_fire_at))
        out = []
        for t in plan.missed:
            out.append(self._record(s, t, "missed", now, message=(
                f"due at {_clock(t)} while no scheduler ran; catch-up policy '{s.catch_up}'"
                + (f" within {s.catch_up_window:g} s" if s.catch_up_window else ""))))
        for t in plan.launch:
            out.append(self._fire(s, t, now))
        return out

    def _files(self, s: Schedule, now: float) -> list[dict]:
        folder = Path(s.watch.folder)
        listing = watching.scan(folder, s.watch.pattern)
        state = self.book.state(s.id)
        new_state, fired = watching.step(state, listing, now, s.watch.debounce)
        if new_state != state or fired:
            self.book.save(s.with_(last_fire_at=now if fired else s.last_fire_at), state=new_state)
        if not fired:
            return []
        return [self._fire(s, now, now, files=fired, size=watching.total_bytes(listing, fired))]

    def _fire(self, s: Schedule, due: float, now: float, files: list[str] | None = None, size: int = 0) -> dict:
        files = files or []
        if s.condition:
            last = self.book.last_run(s.id) or {}
            try:
                ok = evaluate(s.condition, files=files, n_files=len(files), total_bytes=size,
                              last_status=last.get("status") or "none", last_seconds=last.get("seconds"))
            except ScheduleError as e:
                return self._record(s, due, "failed", now, files=files, message=str(e))
            if not ok:
                return self._record(s, due, "condition false", now, files=files,
                                    message=f"condition {s.condition!r} is false")
        decision = decide_overlap(s.overlap, self.book.active_runs(s.id))
        if decision.action == "skip":
            return self._record(s, due, "skipped", now, files=files, message=decision.reason)
        if decision.action == "queue":
            return self._record(s, due, "queued", now, files=files, message=decision.reason)
        cancelled = []
        for oid in decision.cancel:
            try:
                from switchyard.runs import control

                control.cancel(self.store, oid)
                cancelled.append(oid)
            except InvalidTransition:
                pass  # it ended meanwhile
        tid = self.book.record(s.id, due, "launched", files=files, now=now,
                               message=f"cancelled {', '.join(cancelled)} first" if cancelled else "")
        return self._launch(s, tid, due, files, now, note=decision.reason if cancelled else "")

    def _launch(self, s: Schedule, tid: int, due: float, files: list[str], now: float, note: str = "") -> dict:
        args = dict(s.args)
        if files:
            from switchyard.app import AppEnv, data_dir

            env = AppEnv(s.app, apps_dir=s.apps_dir, workspace=self.store.path.parent)
            args[s.watch.arg] = watching.run_paths(Path(s.watch.folder), files, data_dir(env))
        origin = {"by": "schedule", "schedule": s.id, "trigger": tid, "due_at": due}
        try:
            oid = self.launch(s, args, origin)
        except Exception as e:  # noqa: BLE001 - any launch error is recorded, the loop goes on
            msg = str(e) if isinstance(e, SwitchyardError) else f"{type(e).__name__}: {e}"
            self.book.update_trigger(tid, "failed", message=msg, now=now)
            log.error("schedule %s: launch failed: %s", s.id, msg)
        else:
            self.book.update_trigger(tid, "launched", oid=oid, message=note, now=now)
            log.info("schedule %s (%s): launched %s", s.id, s.label, oid)
        return self._trigger(tid)

    def _drain_queue(self, s: Schedule, now: float) -> list[dict]:
        queued = self.book.queued(s.id)
        if not queued or self.book.active_runs(s.id):
            return []
        t = queued[0]
        return [self._launch(s, t["id"], t["due_at"], t["files"], now,
                             note=f"queued at {_clock(t['at'])} behind a running run")]

    def _record(self, s: Schedule, due: float, outcome: str, now: float, files: list[str] = (),
                message: str = "") -> dict:
        tid = self.book.record(s.id, due, outcome, files=files, message=message, now=now)
        log.info("schedule %s (%s): %s %s", s.id, s.label, outcome, message)
        return self._trigger(tid)

    def _trigger(self, tid: int) -> dict:
        row = self.store._read("SELECT * FROM triggers WHERE id = ?", (tid,))[0]
        return {**dict(row), "files": json.loads(row["files"])}


def launch_run(store: RunStore, s: Schedule, args: dict[str, Any], origin: dict[str, Any]) -> str:
    """Start the run a schedule asks for, through the same calls as the CLI and the UI."""
    from switchyard.app import AppEnv

    env = AppEnv(s.app, apps_dir=s.apps_dir, workspace=store.path.parent).check()
    say = lambda line: log.info("%s: %s", s.app, line)  # noqa: E731
    if s.target == "pipeline":
        from switchyard.pipeline import runs as pipeline_runs

        return pipeline_runs.start_run(env, on_line=say, origin=origin)
    from switchyard.runs.submit import start_run

    oid, _proc = start_run(env, mode=s.mode, on_line=say, origin=origin, **args)
    return oid


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


# -- the scheduler process --------------------------------------------------------------------

class _Renewal(threading.Thread):
    """Renews the scheduler lease every ``ttl / 5`` s, whatever the tick is doing; sets
    ``stop`` and says who took it when the lease is lost."""

    def __init__(self, path: Path, owner: str, ttl: float, stop: threading.Event):
        super().__init__(name="scheduler-lease", daemon=True)
        self.path, self.owner, self.ttl, self.stop = path, owner, ttl, stop
        self.done = threading.Event()
        self.lost: dict | None = None

    def run(self) -> None:
        store = RunStore(self.path)
        book = Book(store)
        try:
            while not self.done.wait(self.ttl / 5):
                try:
                    holder = book.take_lease(self.owner, self.ttl)
                except SwitchyardError as e:  # a write lock held elsewhere: the next turn retries
                    log.warning("scheduler lease not renewed: %s", e)
                    continue
                if holder:
                    self.lost = holder
                    log.error("scheduler lease taken by pid %s: stopping", holder["pid"])
                    self.stop.set()
                    return
        finally:
            store.close()


def serve(store: RunStore, *, tick: float = 1.0, stop: threading.Event | None = None,
          scheduler: Scheduler | None = None, alerts: bool = True, lease_ttl: float = LEASE_TTL) -> None:
    """Run the scheduler until ``stop`` is set, SIGTERM/SIGINT arrives or the store file goes away.

    Raises:
        ScheduleError: another scheduler holds the lease on this store.
    """
    stop = stop or threading.Event()
    sched = scheduler or Scheduler(store)
    owner = f"scheduler@{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    holder = sched.book.take_lease(owner, lease_ttl)
    if holder:
        raise ScheduleError(
            f"a scheduler already runs for {store.path} (pid {holder['pid']} on {holder['host']}, "
            f"since {_clock(holder['started_at'])}): stop it with `switchyard scheduler stop`")
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    log.info("scheduler %s started on %s (%d schedules)", owner, store.path, sched.book.count())
    renewal = _Renewal(store.path, owner, lease_ttl, stop)
    renewal.start()
    last_alerts = 0.0
    try:
        while not stop.is_set():
            if not store.path.exists():
                log.warning("the run store %s is gone: stopping", store.path)
                break
            now = time.time()
            _sweep(store)
            sched.tick(now)
            if alerts and now - last_alerts >= ALERT_EVERY:
                last_alerts = now
                _check_alerts(store, now)
            stop.wait(max(0.05, tick - (time.time() - now)))
    finally:
        renewal.done.set()
        renewal.join(lease_ttl)
        try:
            sched.book.release_lease(owner)
        except SwitchyardError:
            pass
        log.info("scheduler %s stopped", owner)


def _sweep(store: RunStore) -> None:
    from switchyard.runs import control

    try:
        control.sweep(store, min_interval=5.0)
    except SwitchyardError as e:
        log.warning("sweep: %s", e)


def _check_alerts(store: RunStore, now: float) -> None:
    try:
        from switchyard import alerts
    except ImportError:
        return
    try:
        alerts.check(store, home=store.path.parent, now=now)
    except Exception as e:  # noqa: BLE001 - alerting must never stop scheduling
        log.warning("alerts: %s", e)


def log_path(home: Path) -> Path:
    return Path(home) / "scheduler.log"


def start_detached(home: Path | str, apps_dir: Path | str | None = None, wait: float = 15.0) -> dict:
    """Start ``switchyard scheduler`` in the background (log in ``<home>/scheduler.log``);
    return its lease once it holds it.

    Raises:
        ScheduleError: it did not take the lease within ``wait`` seconds (its log says why).
    """
    import sys

    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    book = open_book(home)
    running = book.lease()
    if running:
        return running
    env = dict(os.environ, SWITCHYARD_HOME=str(home))
    if apps_dir:
        env["SWITCHYARD_APPS"] = str(Path(apps_dir).resolve())
    with open(log_path(home), "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "switchyard.schedule.scheduler"], env=env, cwd=home,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        lease = book.lease()
        if lease:
            return lease
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise ScheduleError(f"the scheduler did not start (exit {proc.poll()}): see {log_path(home)}")


def stop_running(home: Path | str, wait: float = 15.0) -> dict | None:
    """Stop the scheduler of ``home`` (SIGTERM to the lease holder on this host); return its
    lease, or None when none ran."""
    import psutil

    book = open_book(home)
    lease = book.lease()
    if not lease:
        return None
    if lease["host"] != socket.gethostname():
        raise ScheduleError(f"the scheduler runs on host {lease['host']} (pid {lease['pid']}): stop it there")
    try:
        proc = psutil.Process(int(lease["pid"]))
        if "switchyard" not in " ".join(proc.cmdline()):
            raise ScheduleError(f"pid {lease['pid']} of the scheduler lease is not a scheduler any more: "
                                "wait 15 s for the lease to expire")
        proc.terminate()
        proc.wait(wait)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        proc.kill()
    return lease


def ensure_running(home: Path | str, apps_dir: Path | str | None = None) -> dict | None:
    """Start the scheduler when schedules exist and none runs (what the workbench does)."""
    home = Path(home)
    if not (home / "switchyard.db").exists():
        return None
    book = open_book(home)
    if not book.count():
        return book.lease()
    return book.lease() or start_detached(home, apps_dir)


def main() -> int:
    from switchyard import workspace

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        serve(RunStore(workspace.home() / "switchyard.db"))
    except SwitchyardError as e:
        log.error("%s", e)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
