"""Schedules, their triggers and the scheduler's lease, in the run store's SQLite file.

Each fire of a schedule leaves one trigger record: when it was due, when it was handled,
what happened (``launched``, ``skipped``, ``queued``, ``missed``, ``condition false``,
``failed``) and the orchestration it launched. The scheduler process holds a lease row so
only one scheduler runs per store.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any, Iterable

from switchyard.exceptions import NotFound
from switchyard.runs.leases import _marks, _now
from switchyard.runs.state import Status
from switchyard.runs.store import RunStore
from switchyard.schedule.model import Schedule, to_row

_DDL = """
CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    spec TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    checked_at REAL NOT NULL,
    next_fire_at REAL,
    last_fire_at REAL,
    state TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS triggers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule_id TEXT NOT NULL,
    due_at REAL NOT NULL,
    at REAL NOT NULL,
    outcome TEXT NOT NULL,
    orchestration_id TEXT,
    files TEXT NOT NULL DEFAULT '[]',
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS triggers_by_schedule ON triggers (schedule_id, id);
CREATE TABLE IF NOT EXISTS scheduler_lease (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    owner TEXT NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
"""
OUTCOMES = ("launched", "skipped", "queued", "missed", "condition false", "failed")
_ACTIVE = tuple(s.value for s in Status if s.is_active) + (Status.PENDING.value,)
_COLUMNS = ("id", "app", "kind", "target", "name", "spec", "paused", "created_at", "updated_at",
            "checked_at", "next_fire_at", "last_fire_at")


class Book:
    """The schedules of one run store (one SQLite file shared with orchestrations)."""

    def __init__(self, store: RunStore):
        self.store = store
        with store.transaction() as c:
            for statement in _DDL.split(";"):
                if statement.strip():
                    c.execute(statement)

    # -- schedules ----------------------------------------------------------------------------

    def add(self, s: Schedule, state: dict | None = None) -> Schedule:
        row = to_row(s)
        with self.store.transaction() as c:
            c.execute(f"INSERT INTO schedules ({', '.join(_COLUMNS)}, state) VALUES "
                      f"({_marks(_COLUMNS)}, ?)", (*[row[k] for k in _COLUMNS], json.dumps(state or {})))
        return s

    def get(self, sid: str) -> Schedule:
        rows = self.store._read("SELECT * FROM schedules WHERE id = ?", (sid,))
        if not rows:
            known = [r[0] for r in self.store._read("SELECT id FROM schedules ORDER BY created_at")]
            raise NotFound(f"schedule '{sid}' does not exist in {self.store.path}: "
                           + (f"known ones: {', '.join(known)}" if known else "there are no schedules")
                           + " (switchyard schedule list)")
        return Schedule.from_row(rows[0])

    def list(self, app: str | None = None) -> list[Schedule]:
        sql, params = "SELECT * FROM schedules", ()
        if app:
            sql, params = sql + " WHERE app = ?", (app,)
        return [Schedule.from_row(r) for r in self.store._read(sql + " ORDER BY created_at, id", params)]

    def count(self) -> int:
        return int(self.store._read("SELECT COUNT(*) FROM schedules")[0][0])

    def save(self, s: Schedule, *, state: dict | None = None, c=None) -> None:
        """Write the changing columns of ``s`` (and its state when given)."""
        row = to_row(s)
        sets = "paused = ?, updated_at = ?, checked_at = ?, next_fire_at = ?, last_fire_at = ?"
        params: list[Any] = [row["paused"], row["updated_at"], row["checked_at"], row["next_fire_at"],
                             row["last_fire_at"]]
        if state is not None:
            sets += ", state = ?"
            params.append(json.dumps(state))
        with self.store.transaction() as conn:
            conn.execute(f"UPDATE schedules SET {sets} WHERE id = ?", (*params, s.id))

    def set_paused(self, sid: str, paused: bool, now: float | None = None) -> Schedule:
        """Pause or resume; resuming does not replay the fires that fell while it was paused."""
        now = _now(now)
        s = self.get(sid)
        if s.paused == paused:
            return s
        nxt = s.when.next_after(now) if (s.when and not paused) else s.next_fire_at
        s = s.with_(paused=paused, updated_at=now, checked_at=now if not paused else s.checked_at,
                    next_fire_at=nxt)
        self.save(s)
        return s

    def delete(self, sid: str) -> Schedule:
        """Remove a schedule and its trigger records; its runs stay in the store."""
        s = self.get(sid)
        with self.store.transaction() as c:
            c.execute("DELETE FROM schedules WHERE id = ?", (sid,))
            c.execute("DELETE FROM triggers WHERE schedule_id = ?", (sid,))
        return s

    def state(self, sid: str) -> dict[str, Any]:
        rows = self.store._read("SELECT state FROM schedules WHERE id = ?", (sid,))
        return json.loads(rows[0][0]) if rows else {}

    # -- triggers -----------------------------------------------------------------------------

    def record(self, sid: str, due_at: float, outcome: str, *, oid: str | None = None,
               files: Iterable[str] = (), message: str = "", now: float | None = None) -> int:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown trigger outcome {outcome!r}")
        with self.store.transaction() as c:
            cur = c.execute(
                "INSERT INTO triggers (schedule_id, due_at, at, outcome, orchestration_id, files, message) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sid, due_at, _now(now), outcome, oid, json.dumps(list(files)), message))
            return int(cur.lastrowid)

    def update_trigger(self, tid: int, outcome: str, *, oid: str | None = None, message: str = "",
                       now: float | None = None) -> None:
        with self.store.transaction() as c:
            c.execute("UPDATE triggers SET outcome = ?, orchestration_id = COALESCE(?, orchestration_id), "
                      "message = ?, at = ? WHERE id = ?", (outcome, oid, message, _now(now), tid))

    def triggers(self, sid: str | None = None, limit: int = 50, outcome: str | None = None) -> list[dict]:
        where, params = [], []
        if sid:
            where.append("schedule_id = ?")
            params.append(sid)
        if outcome:
            where.append("outcome = ?")
            params.append(outcome)
        sql = "SELECT * FROM triggers" + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = self.store._read(sql + " ORDER BY id DESC LIMIT ?", (*params, int(limit)))
        return [{**dict(r), "files": json.loads(r["files"])} for r in rows]

    def queued(self, sid: str) -> list[dict]:
        """Queued triggers of ``sid``, oldest first."""
        return list(reversed(self.triggers(sid, limit=10_000, outcome="queued")))

    # -- the schedule's runs ------------------------------------------------------------------

    def active_runs(self, sid: str) -> list[str]:
        """Ids of the schedule's orchestrations that are pending or active."""
        rows = self.store._read(
            f"SELECT id FROM orchestrations WHERE status IN ({_marks(_ACTIVE)}) "
            "AND json_extract(options, '$.origin.schedule') = ? ORDER BY created_at", (*_ACTIVE, sid))
        return [r[0] for r in rows]

    def last_run(self, sid: str) -> dict | None:
        rows = self.store._read(
            "SELECT id, status, seconds FROM orchestrations WHERE json_extract(options, '$.origin.schedule') = ? "
            "ORDER BY created_at DESC, id DESC LIMIT 1", (sid,))
        return dict(rows[0]) if rows else None

    # -- the scheduler's lease ----------------------------------------------------------------

    def take_lease(self, owner: str, ttl: float, now: float | None = None) -> dict | None:
        """Take or renew the scheduler lease for ``owner``; return the other live holder when it
        cannot be taken (None when taken)."""
        now = _now(now)
        with self.store.transaction() as c:
            row = c.execute("SELECT * FROM scheduler_lease WHERE one = 1").fetchone()
            if row is not None and row["owner"] != owner and row["expires_at"] > now:
                return dict(row)
            if row is not None and row["owner"] == owner:
                c.execute("UPDATE scheduler_lease SET heartbeat_at = ?, expires_at = ? WHERE one = 1",
                          (now, now + ttl))
            else:
                c.execute("INSERT OR REPLACE INTO scheduler_lease (one, owner, host, pid, started_at, "
                          "heartbeat_at, expires_at) VALUES (1, ?, ?, ?, ?, ?, ?)",
                          (owner, socket.gethostname(), os.getpid(), now, now, now + ttl))
        return None

    def release_lease(self, owner: str) -> None:
        with self.store.transaction() as c:
            c.execute("DELETE FROM scheduler_lease WHERE one = 1 AND owner = ?", (owner,))

    def lease(self, now: float | None = None) -> dict | None:
        """The live scheduler lease (owner, host, pid, started_at, heartbeat_at), or None."""
        rows = self.store._read("SELECT * FROM scheduler_lease WHERE one = 1")
        if not rows or rows[0]["expires_at"] <= _now(now):
            return None
        return dict(rows[0])


_books: dict[str, Book] = {}


def open_book(home: Path | str | None = None) -> Book:
    """The schedules of a workspace's store: one store connection and one schema check per
    process, however often the page's 2 s refresh or the CLI asks."""
    from switchyard import workspace

    path = str((Path(home) if home is not None else workspace.home()).resolve() / "switchyard.db")
    book = _books.get(path)
    if book is None:
        book = _books[path] = Book(RunStore(path))
    return book

