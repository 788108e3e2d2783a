"""Backfills: one run of an app per value of one of its args, at most N at a time.

:func:`plan_backfill` decides, per value, whether to launch it or skip it, from the
orchestrations of the app already in the run store (matched on ``args[key]`` by
JSON text, so a date stored as ``'YYYY-MM-DD'`` matches). :func:`run_backfill`
records a backfill in the store's ``backfills`` table, launches the runs through
:func:`switchyard.agi.start_run` (each with ``origin = {"by": "backfill", ...}``),
keeps at most ``concurrency`` of them unfinished at once (pending ones count), and
records every launch as it happens, so a controller that dies loses nothing: the
runs go on in their own driver processes, and a new backfill with ``only="missing"``
launches exactly what is left.

Selection (``only``): ``all`` launches every value; ``missing`` the values with no
completed run; ``failed`` the values whose newest run ended failed, cancelled or
interrupted. A value with a run still in progress (pending, running, paused ...) is
never launched again, whatever ``only`` says.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

from switchyard.app import AppEnv
from switchyard.exceptions import ScheduleError, SwitchyardError
from switchyard.runs import control
from switchyard.runs.state import Status
from switchyard.runs.store import RunStore
from switchyard.schedule.backfill_keys import check_concurrency, preflight

ONLY = ("all", "missing", "failed")
ENDED_BADLY = frozenset({Status.FAILED, Status.CANCELLED, Status.INTERRUPTED})
#: Backfill statuses. ``interrupted``: its controller process is gone (read-time verdict).
RUNNING, COMPLETED, FAILED, STOPPED, INTERRUPTED = "running", "completed", "failed", "stopped", "interrupted"
#: A controller on another host that has not written for this long is taken as gone.
STALE_SECONDS = 600.0
HEARTBEAT_EVERY = 2.0
Launch = Callable[[Any, dict], str]

_SCHEMA = """CREATE TABLE IF NOT EXISTS backfills (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    key TEXT NOT NULL,
    key_values TEXT NOT NULL,
    only TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    mode INTEGER,
    args TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    ended_at REAL,
    heartbeat_at REAL,
    host TEXT,
    pid INTEGER,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    launched TEXT NOT NULL DEFAULT '{}',
    skipped INTEGER NOT NULL DEFAULT 0,
    peak_concurrency INTEGER NOT NULL DEFAULT 0,
    error TEXT
)"""
_ready: set[str] = set()


@dataclass
class BackfillItem:
    """What a backfill does with one value: ``launch`` or ``skip``, and why."""

    value: Any
    action: str
    reason: str
    orchestration: str | None = None  # the run the reason names, if any

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def label(value: Any) -> str:
    """A value as operators write it (``7``, ``2026-01-31``, ``north``)."""
    return value if isinstance(value, str) else json.dumps(value)


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def parse_only(only: str | Iterable[str]) -> frozenset[str]:
    """``"all"``, ``"missing"``, ``"failed"`` or ``"missing,failed"`` as a set.

    Raises:
        ScheduleError: an unknown choice.
    """
    parts = [p.strip() for p in (only.split(",") if isinstance(only, str) else only)]
    parts = [p for p in parts if p]
    bad = [p for p in parts if p not in ONLY]
    if bad or not parts or ("all" in parts and len(parts) > 1):
        raise ScheduleError(f"--only {','.join(parts) or repr('')}: choose all, missing, failed or missing,failed")
    return frozenset(parts)


# -- planning -----------------------------------------------------------------------------------

def _history(store: RunStore, app: str, key: str) -> dict[str, list[tuple[str, Status]]]:
    """Per value (JSON text) of ``args[key]``: the app's runs (id, status), oldest first."""
    rows = store._read("SELECT id, status, args FROM orchestrations WHERE app = ? AND kind = 'app' "
                       "ORDER BY created_at, id", (app,))
    found: dict[str, list[tuple[str, Status]]] = {}
    for oid, status, args in rows:
        try:
            value = json.loads(args or "{}").get(key)
        except (ValueError, AttributeError):
            continue  # not a dict of args: not a run of this key
        found.setdefault(_text(value), []).append((oid, Status(status)))
    return found


def decide(value: Any, runs: list[tuple[str, Status]], only: frozenset[str]) -> BackfillItem:
    """Launch or skip ``value``, given its runs (id, status; oldest first). Pure."""
    active = [(oid, s) for oid, s in runs if not s.is_finished]
    if active:
        oid, s = active[-1]
        return BackfillItem(value, "skip", f"in progress: {oid} is {s.value}", oid)
    if not runs:
        return BackfillItem(value, "launch" if only & {"all", "missing"} else "skip", "no run yet")
    newest, status = runs[-1]
    done = [oid for oid, s in runs if s is Status.COMPLETED]
    if status in ENDED_BADLY:
        reason = f"newest run {newest} ended {status.value}"
        if done:
            reason += f" (completed earlier by {done[-1]})"
        wanted = "all" in only or "failed" in only or ("missing" in only and not done)
        return BackfillItem(value, "launch" if wanted else "skip", reason, newest)
    if "all" in only:
        return BackfillItem(value, "launch", f"again: completed by {done[-1]}", done[-1])
    return BackfillItem(value, "skip", f"completed by {done[-1]}", done[-1])


def plan_backfill(app_env: AppEnv, key: str, values: Iterable[Any], only: str | Iterable[str],
                  store: RunStore | None = None) -> list[BackfillItem]:
    """What a backfill would do with each value (the dry run prints exactly this).

    Args:
        app_env: The app (its orchestrations of kind ``app`` are looked at).
        key: The arg the backfill varies.
        values: Its values in JSON form (see :func:`switchyard.schedule.backfill_keys.backfill_values`).
        only: ``all``, ``missing``, ``failed`` or ``missing,failed``.
        store: The run store (default: the app's workspace store).
    """
    wanted = parse_only(only)
    store = store or RunStore(app_env.home / "switchyard.db")
    history = _history(store, app_env.app, key)
    return [decide(v, history.get(_text(v), []), wanted) for v in values]


# -- the backfills table ------------------------------------------------------------------------

def ensure_schema(store: RunStore) -> None:
    """Create the ``backfills`` table if missing (idempotent; once per store per process)."""
    if str(store.path) in _ready:
        return
    with store.transaction() as c:
        c.execute(_SCHEMA)
        c.execute("CREATE INDEX IF NOT EXISTS backfills_by_created ON backfills (created_at)")
    _ready.add(str(store.path))


def new_backfill_id(now: float | None = None) -> str:
    """A short id that sorts by creation time, e.g. ``bf-20261122-180512-ab12``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return f"bf-{stamp}-{secrets.token_hex(2)}"


def create_backfill(store: RunStore, app: str, key: str, values: list[Any], only: str, concurrency: int,
                    *, mode: int | None = None, args: dict | None = None, skipped: int = 0,
                    now: float | None = None) -> str:
    """Record a running backfill (controlled by this process); return its id."""
    ensure_schema(store)
    now = time.time() if now is None else now
    with store.transaction() as c:
        while True:
            bid = new_backfill_id(now)
            if not c.execute("SELECT 1 FROM backfills WHERE id = ?", (bid,)).fetchone():
                break
        c.execute("INSERT INTO backfills (id, app, key, key_values, only, concurrency, mode, args, status, "
                  "created_at, heartbeat_at, host, pid, skipped) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (bid, app, key, json.dumps(values), only, int(concurrency), mode, json.dumps(args or {}),
                   RUNNING, now, now, socket.gethostname(), os.getpid(), int(skipped)))
    return bid


def record_launch(store: RunStore, bid: str, value: Any, oid: str, peak: int, now: float | None = None) -> None:
    """Add ``value -> oid`` to the backfill's launched runs (in one transaction)."""
    now = time.time() if now is None else now
    with store.transaction() as c:
        row = c.execute("SELECT launched FROM backfills WHERE id = ?", (bid,)).fetchone()
        launched = json.loads(row[0]) if row else {}
        launched[label(value)] = oid
        c.execute("UPDATE backfills SET launched = ?, heartbeat_at = ?, peak_concurrency = MAX(peak_concurrency, ?) "
                  "WHERE id = ?", (json.dumps(launched), now, int(peak), bid))


def _heartbeat(store: RunStore, bid: str, peak: int, now: float | None = None) -> None:
    """Record that the controller is alive, and its peak so far."""
    now = time.time() if now is None else now
    with store.transaction() as c:
        c.execute("UPDATE backfills SET heartbeat_at = ?, peak_concurrency = MAX(peak_concurrency, ?) "
                  "WHERE id = ?", (now, int(peak), bid))


def _stop_requested(store: RunStore, bid: str) -> bool:
    rows = store._read("SELECT stop_requested FROM backfills WHERE id = ?", (bid,))
    return bool(rows and rows[0][0])


def _finish(store: RunStore, bid: str, status: str, peak: int, error: str | None,
            now: float | None = None) -> None:
    now = time.time() if now is None else now
    with store.transaction() as c:
        # Runs launched just before a crash or Ctrl-C but not yet recorded carry our origin.
        row = c.execute("SELECT launched, key FROM backfills WHERE id = ?", (bid,)).fetchone()
        launched = json.loads(row[0])
        for oid, args in c.execute("SELECT id, args FROM orchestrations WHERE "
                                   "json_extract(options, '$.origin.backfill') = ?", (bid,)):
            launched.setdefault(label(json.loads(args).get(row[1])), oid)
        c.execute("UPDATE backfills SET status = ?, ended_at = ?, heartbeat_at = ?, error = ?, launched = ?, "
                  "peak_concurrency = MAX(peak_concurrency, ?) WHERE id = ?",
                  (status, now, now, error, json.dumps(launched), int(peak), bid))


def stop_backfill(store: RunStore, bid: str) -> dict[str, Any]:
    """Ask a running backfill's controller to stop launching (its runs go on); return it.

    Raises:
        ScheduleError: no backfill ``bid``.
    """
    get_backfill(store, bid)
    with store.transaction() as c:
        c.execute("UPDATE backfills SET stop_requested = 1 WHERE id = ?", (bid,))
    return get_backfill(store, bid)


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs here (a zombie has exited: it only waits to be reaped)."""
    import psutil

    try:
        return psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # exists, but not ours to inspect


def _row_dict(store: RunStore, row: Any, now: float) -> dict[str, Any]:
    d = dict(row)
    d["values"] = json.loads(d.pop("key_values"))
    d["args"] = json.loads(d["args"] or "{}")
    d["launched"] = json.loads(d["launched"] or "{}")
    d["stop_requested"] = bool(d["stop_requested"])
    if d["status"] == RUNNING:
        here = d["host"] == socket.gethostname()
        gone = (not _pid_alive(d["pid"])) if here and d["pid"] else now - (d["heartbeat_at"] or 0) > STALE_SECONDS
        if gone:
            d["status"] = INTERRUPTED
    counts = {"completed": 0, "failed": 0, "active": 0}
    oids = list(d["launched"].values())
    for i in range(0, len(oids), 500):
        chunk = oids[i:i + 500]
        for (status,) in store._read(f"SELECT status FROM orchestrations WHERE id IN ({','.join('?' * len(chunk))})",
                                     chunk):
            s = Status(status)
            counts["completed" if s is Status.COMPLETED else "failed" if s.is_finished else "active"] += 1
    d.update(counts)
    total = max(0, len(d["values"]) - d["skipped"])
    d["to_launch"] = total
    d["progress"] = 1.0 if total == 0 else (counts["completed"] + counts["failed"]) / total
    return d


def get_backfill(store: RunStore, bid: str, now: float | None = None) -> dict[str, Any]:
    """One backfill with its progress (``completed``/``failed``/``active`` counts of its runs).

    Raises:
        ScheduleError: no backfill ``bid``.
    """
    ensure_schema(store)
    rows = store._read("SELECT * FROM backfills WHERE id = ?", (bid,))
    if not rows:
        raise ScheduleError(f"no backfill '{bid}' in {store.path}: see switchyard backfill list")
    return _row_dict(store, rows[0], time.time() if now is None else now)


def list_backfills(store: RunStore, app: str | None = None, limit: int = 50,
                   now: float | None = None) -> list[dict[str, Any]]:
    """Backfills, newest first, with their progress."""
    ensure_schema(store)
    sql, params = "SELECT * FROM backfills", []
    if app:
        sql, params = sql + " WHERE app = ?", [app]
    rows = store._read(sql + " ORDER BY created_at DESC, id DESC LIMIT ?", [*params, int(limit)])
    now = time.time() if now is None else now
    return [_row_dict(store, r, now) for r in rows]


# -- the controller -----------------------------------------------------------------------------

def _unfinished(store: RunStore, oids: Iterable[str]) -> dict[str, Status]:
    """Status of each given orchestration; finished ones are left out."""
    oids = list(oids)
    if not oids:
        return {}
    rows = store._read(f"SELECT id, status FROM orchestrations WHERE id IN ({','.join('?' * len(oids))})", oids)
    return {oid: Status(s) for oid, s in rows if not Status(s).is_finished}


def _default_launch(app_env: AppEnv, key: str, mode: int | str | None, args: dict, workers: dict | None,
                    scheduler: str | None, say: Callable[[str], None]) -> Launch:
    def launch(value: Any, origin: dict) -> str:
        from switchyard.runs.submit import start_run

        oid, _ = start_run(app_env, mode=mode, scheduler=scheduler, workers=workers,
                           on_line=lambda line: say(f"  [{key}={label(value)}] {line}"),
                           origin=origin, **{**args, key: value})
        return oid
    return launch


class _Stop:
    """Why launching stops (Ctrl-C, SIGTERM, a stop request), set from a signal handler too."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        self.reason = self.reason or f"signal {signal.Signals(signum).name}"


def run_backfill(app_env: AppEnv, key: str, values: list[Any], *, concurrency: int, only: str = "all",
                 mode: int | str | None = None, args: dict[str, Any] | None = None,
                 workers: dict[str, int] | None = None, scheduler: str | None = None,
                 on_line: Callable[[str], None] | None = None, poll: float = 0.5, launch: Launch | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Launch one run per selected value, at most ``concurrency`` unfinished at once; wait for them.

    A run counts against the cap from its launch until the store says it finished
    (pending ones included). Ctrl-C, SIGTERM (when called from the main thread) or
    :func:`stop_backfill` stop the launching and return at once: runs already launched
    go on in their driver processes and are not touched.

    Args:
        app_env: The app.
        key: The arg the backfill varies.
        values: Its values in JSON form (from ``backfill_values``).
        concurrency: The most runs unfinished at once (>= 1).
        only: ``all``, ``missing``, ``failed`` or ``missing,failed``.
        mode, workers, scheduler: Passed to every ``start_run`` (default: the app's settings).
        args: Overrides of the app's other args for every run.
        on_line: Receives progress lines.
        poll: Seconds between looks at the store.
        launch: ``launch(value, origin) -> orchestration id`` (default: ``agi.start_run``).
        sleep: How to wait ``poll`` seconds (tests drive time with it).

    Returns:
        ``{id, status, launched, completed, failed, running, skipped, peak_concurrency,
        seconds, orchestrations: {value: id}, error}``.

    Raises:
        ScheduleError: ``concurrency`` below 1 or a bad ``only``.
    """
    concurrency = check_concurrency(concurrency)
    resolved = preflight(app_env, key, values, concurrency, mode=mode, args=args, workers=workers,
                         scheduler=scheduler)
    say = on_line or (lambda line: print(line, flush=True))
    store = RunStore(app_env.home / "switchyard.db")
    control.sweep(store)
    items = plan_backfill(app_env, key, values, only, store)
    todo = [i for i in items if i.action == "launch"]
    only_text = ",".join(sorted(parse_only(only)))
    bid = create_backfill(store, app_env.app, key, list(values), only_text, concurrency, mode=resolved,
                          args=args, skipped=len(items) - len(todo))
    say(f"backfill {bid}: {len(todo)} of {len(items)} values of '{key}' to launch, at most {concurrency} at once")
    from switchyard.runs.launcher import max_running

    if max_running(store) < concurrency:
        say(f"note: at most {max_running(store)} orchestrations run at once in this workspace; the others wait "
            "as pending (and count against the backfill's cap)")
    launch = launch or _default_launch(app_env, key, mode, dict(args or {}), workers, scheduler, say)
    stop, started = _Stop(), time.time()
    # Signal handlers can only be set from the main thread (the UI runs backfills in a thread).
    handles = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if handles else None
    running: dict[str, Any] = {}
    peak, error, beat = 0, None, 0.0
    try:
        while True:
            control.sweep(store, min_interval=1.0)
            still = _unfinished(store, running)
            for oid in [o for o in running if o not in still]:
                say(f"{key}={label(running.pop(oid))}: {oid} {store.status(oid).value}")
            while todo and len(running) < concurrency and stop.reason is None and error is None:
                if _stop_requested(store, bid):
                    stop.reason = "a stop request"
                    break
                item = todo.pop(0)
                origin = {"by": "backfill", "backfill": bid, "key": key, "value": item.value}
                try:
                    oid = launch(item.value, origin)
                except SwitchyardError as e:
                    # Values were validated up front: what fails now (env, mode, cluster) fails for all.
                    error = f"launching {key}={label(item.value)} failed: {e}"
                    say(f"{error}: no more runs are launched")
                    break
                running[oid] = item.value
                peak = max(peak, len(_unfinished(store, running)))
                record_launch(store, bid, item.value, oid, peak)
                say(f"{key}={label(item.value)}: launched {oid} ({len(running)} unfinished)")
            if stop.reason or (not running and (not todo or error)):
                break
            if time.monotonic() - beat >= HEARTBEAT_EVERY:
                beat = time.monotonic()
                _heartbeat(store, bid, peak)
            if _stop_requested(store, bid):
                stop.reason = stop.reason or "a stop request"
                break
            sleep(poll)
    except KeyboardInterrupt:
        stop.reason = "Ctrl-C"
    except BaseException as e:
        _finish(store, bid, FAILED, peak, f"the backfill controller failed: {type(e).__name__}: {e}")
        raise
    finally:
        if handles:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    # COMPLETED is refined below from the runs' outcomes.
    status = STOPPED if stop.reason else FAILED if error else COMPLETED
    _finish(store, bid, status, peak, error)
    summary = get_backfill(store, bid)
    if status == COMPLETED and summary["failed"]:
        status = FAILED
        _finish(store, bid, status, peak, f"{summary['failed']} runs did not complete")
        summary = get_backfill(store, bid)
    if stop.reason:
        say(f"backfill {bid} stopped by {stop.reason}: {len(running)} launched runs go on by themselves")
    result = {"id": bid, "status": status, "launched": len(summary["launched"]), "completed": summary["completed"],
              "failed": summary["failed"], "running": summary["active"], "skipped": summary["skipped"],
              "peak_concurrency": peak, "seconds": round(time.time() - started, 3),
              "orchestrations": summary["launched"], "error": summary["error"]}
    say(f"backfill {bid} {status}: {result['launched']} launched, {result['completed']} completed, "
        f"{result['failed']} failed, {result['skipped']} skipped; peak {peak} at once")
    return result
