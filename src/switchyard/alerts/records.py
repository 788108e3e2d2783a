"""Alerts and their deliveries in the run store (tables ``alerts`` and ``alert_deliveries``).

An alert is recorded once per key ``(rule, subject)`` (``UNIQUE``), together with one
delivery row per channel it goes to, in one transaction; whichever process inserts it
delivers it. A delivery is claimed (its ``next_attempt_at`` pushed ahead) in a write
transaction before it is attempted, so two checks running at once never send it twice.
A failed attempt is retried after :data:`RETRY_DELAYS` until :data:`MAX_ATTEMPTS`
attempts, then left failed with its last error.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable

from switchyard.alerts.config import Channel
from switchyard.alerts.rules import NewAlert
from switchyard.runs.state import Orchestration
from switchyard.runs.store import RunStore

MAX_ATTEMPTS = 3
RETRY_DELAYS = (15.0, 60.0)  # seconds after the 1st and the 2nd failed attempt
CLAIM_SECONDS = 300.0  # a claimed delivery whose process died is tried again after this
LOOKBACK = 24 * 3600.0  # runs that ended longer ago than this never alert (no flood on first use)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    rule TEXT NOT NULL,
    app TEXT,
    subject TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    payload TEXT NOT NULL,
    resolved_at REAL,
    UNIQUE (rule, subject)
);
CREATE INDEX IF NOT EXISTS alerts_by_at ON alerts (at);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (rule, resolved_at);
CREATE TABLE IF NOT EXISTS alert_deliveries (
    alert_id INTEGER NOT NULL,
    channel TEXT NOT NULL,
    kind TEXT NOT NULL,
    target TEXT,
    delivered INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    note TEXT,
    at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    PRIMARY KEY (alert_id, channel)
);
CREATE INDEX IF NOT EXISTS alert_deliveries_due ON alert_deliveries (delivered, next_attempt_at);
"""

_ready: set[tuple[int, str]] = set()


def ensure_schema(store: RunStore) -> None:
    """Create the alert tables if missing (idempotent; once per store object)."""
    key = (id(store), str(store.path))
    if key in _ready:
        return
    with store.transaction() as c:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                c.execute(statement)
    _ready.add(key)


# -- what to judge -----------------------------------------------------------------------------

def candidates(store: RunStore, now: float, *, failures: bool = True, slow: bool = True,
               ended_since: float | None = None, lookback: float = LOOKBACK) -> list[Orchestration]:
    """Runs the rules may alert on: with ``failures``, failed ones that ended within
    ``lookback`` without a failure alert; with ``slow``, running ones, and completed or failed
    ones that ended after ``ended_since`` (default: within ``lookback``) without a slow alert."""
    since = now - lookback
    parts, params = [], []
    if slow:
        parts += ["o.status IN ('running', 'pausing')",
                  "(o.status IN ('failed', 'completed') AND o.ended_at >= ? AND NOT EXISTS "
                  "(SELECT 1 FROM alerts a WHERE a.rule = 'slow' AND a.subject = o.id))"]
        params.append(since if ended_since is None else max(since, ended_since))
    if failures:
        parts.append("(o.status = 'failed' AND o.ended_at >= ? AND NOT EXISTS "
                     "(SELECT 1 FROM alerts a WHERE a.rule = 'failure' AND a.subject = o.id))")
        params.append(since)
    if not parts:
        return []
    rows = store._read(f"SELECT o.* FROM orchestrations o WHERE {' OR '.join(parts)}", params)
    return [Orchestration.from_row(r) for r in rows]


def history(store: RunStore, keys: Iterable[tuple[str, str]], per_key: int = 21) -> list[Orchestration]:
    """The latest ``per_key`` completed runs of each ``(app, kind)`` (one more than the rules use,
    so a run judged against its own app's history can be left out)."""
    keys = sorted(set(keys))
    if not keys:
        return []
    where = " OR ".join("(app = ? AND kind = ?)" for _ in keys)
    rows = store._read(
        "SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY app, kind ORDER BY ended_at DESC) AS rn "
        f"FROM orchestrations WHERE status = 'completed' AND started_at IS NOT NULL AND ended_at IS NOT NULL "
        f"AND ({where})) WHERE rn <= ?",
        [*(v for k in keys for v in k), int(per_key)])
    return [Orchestration.from_row(r) for r in rows]


def already(store: RunStore, subjects: Iterable[str]) -> set[tuple[str, str]]:
    """Recorded keys among ``subjects`` (any rule), plus ``("health_gate", app)`` per open episode."""
    subjects = sorted(set(subjects))
    out: set[tuple[str, str]] = set()
    for i in range(0, len(subjects), 500):
        chunk = subjects[i:i + 500]
        marks = ",".join("?" for _ in chunk)
        out.update((r[0], r[1]) for r in store._read(
            f"SELECT rule, subject FROM alerts WHERE subject IN ({marks})", chunk))
    out.update(("health_gate", r[0]) for r in store._read(
        "SELECT DISTINCT app FROM alerts WHERE rule = 'health_gate' AND resolved_at IS NULL"))
    return out


# -- recording ---------------------------------------------------------------------------------

def record(store: RunStore, alert: NewAlert, channels: Iterable[Channel], now: float,
           home: Any = None) -> int | None:
    """Record ``alert`` and a pending delivery per channel that accepts its app; return its id,
    or None when its key was already recorded (another check got there first)."""
    chosen = [c for c in channels if c.accepts(alert.app)]
    with store.transaction() as c:
        if alert.rule == "health_gate" and c.execute(
                "SELECT 1 FROM alerts WHERE rule = 'health_gate' AND app = ? AND resolved_at IS NULL",
                (alert.app,)).fetchone():
            return None  # another check opened this episode a moment ago
        try:
            cur = c.execute(
                "INSERT INTO alerts (at, rule, app, subject, severity, message, payload) "
                "VALUES (?, ?, ?, ?, ?, ?, '{}')",
                (now, alert.rule, alert.app, alert.subject, alert.severity, alert.message))
        except sqlite3.IntegrityError:
            return None
        alert_id = int(cur.lastrowid)
        c.execute("UPDATE alerts SET payload = ? WHERE id = ?",
                  (json.dumps(alert.payload(alert_id, now), default=str), alert_id))
        c.executemany(
            "INSERT INTO alert_deliveries (alert_id, channel, kind, target, next_attempt_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [(alert_id, ch.name, ch.kind, ch.target(home), now) for ch in chosen])
    return alert_id


def close_episodes(store: RunStore, apps: Iterable[str], now: float) -> int:
    """End the open health episodes of ``apps`` (their gate passed again)."""
    apps = list(apps)
    if not apps:
        return 0
    with store.transaction() as c:
        return c.execute(
            f"UPDATE alerts SET resolved_at = ? WHERE rule = 'health_gate' AND resolved_at IS NULL "
            f"AND app IN ({','.join('?' for _ in apps)})", (now, *apps)).rowcount


# -- delivering --------------------------------------------------------------------------------

def has_due(store: RunStore, now: float) -> bool:
    """Whether any delivery waits for an attempt (one cheap read)."""
    return bool(store._read("SELECT 1 FROM alert_deliveries WHERE delivered = 0 AND next_attempt_at IS NOT NULL "
                            "AND next_attempt_at <= ? LIMIT 1", (now,)))


def claim_due(store: RunStore, now: float, alert_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Claim the deliveries due now (optionally only of ``alert_ids``): each with its alert's
    payload. A claimed delivery is not due again for :data:`CLAIM_SECONDS`."""
    sql = ("UPDATE alert_deliveries SET next_attempt_at = ? WHERE delivered = 0 AND next_attempt_at IS NOT NULL "
           "AND next_attempt_at <= ?")
    params: list[Any] = [now + CLAIM_SECONDS, now]
    if alert_ids is not None:
        ids = [int(i) for i in alert_ids]
        if not ids:
            return []
        sql += f" AND alert_id IN ({','.join('?' for _ in ids)})"
        params += ids
    with store.transaction() as c:
        claimed = c.execute(sql + " RETURNING alert_id, channel, kind, attempts", params).fetchall()
        out = []
        for alert_id, channel, kind, attempts in claimed:
            payload = c.execute("SELECT payload FROM alerts WHERE id = ?", (alert_id,)).fetchone()[0]
            out.append({"alert_id": alert_id, "channel": channel, "kind": kind, "attempts": attempts,
                        "payload": json.loads(payload)})
    out.sort(key=lambda d: (d["alert_id"], d["channel"]))
    return out


def finish(store: RunStore, alert_id: int, channel: str, now: float, error: str | None = None,
           note: str | None = None, final: bool = False) -> dict[str, Any]:
    """Record one attempt: delivered (no ``error``) or failed, and when to try again.

    ``final`` ends the retries at once (e.g. the channel was removed)."""
    with store.transaction() as c:
        attempts = c.execute(
            "UPDATE alert_deliveries SET attempts = attempts + 1 WHERE alert_id = ? AND channel = ? "
            "RETURNING attempts", (alert_id, channel)).fetchone()[0]
        if error is None:
            next_at = None
        elif final or attempts >= MAX_ATTEMPTS:
            next_at = None
        else:
            next_at = now + RETRY_DELAYS[min(attempts, len(RETRY_DELAYS)) - 1]
        c.execute("UPDATE alert_deliveries SET delivered = ?, error = ?, note = ?, at = ?, next_attempt_at = ? "
                  "WHERE alert_id = ? AND channel = ?",
                  (1 if error is None else 0, error, note, now, next_at, alert_id, channel))
    return {"alert_id": alert_id, "channel": channel, "delivered": error is None, "error": error,
            "attempts": attempts, "next_attempt_at": next_at}


# -- reading -----------------------------------------------------------------------------------

def _deliveries(store: RunStore, ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        rows = store._read(
            "SELECT alert_id, channel, kind, target, delivered, error, note, at, attempts, next_attempt_at "
            f"FROM alert_deliveries WHERE alert_id IN ({','.join('?' for _ in chunk)}) "
            "ORDER BY alert_id, channel",
            chunk)
        for r in rows:
            d = dict(r)
            d["delivered"] = bool(d["delivered"])
            d["state"] = ("delivered" if d["delivered"] else "retrying" if d["next_attempt_at"] is not None
                          and d["attempts"] else "pending" if d["next_attempt_at"] is not None else "failed")
            out[d.pop("alert_id")].append(d)
    return out


def get_alerts(store: RunStore, ids: Iterable[int]) -> list[dict[str, Any]]:
    """The alerts ``ids`` (newest first), shaped as :func:`list_alerts`."""
    ids = [int(i) for i in ids]
    if not ids:
        return []
    marks = ",".join("?" for _ in ids)
    rows = store._read(f"SELECT id, at, payload, resolved_at FROM alerts WHERE id IN ({marks}) "
                       "ORDER BY at DESC, id DESC", ids)
    return _shape(store, rows)


def list_alerts(store: RunStore, limit: int = 100, app: str | None = None) -> list[dict[str, Any]]:
    """Recent alerts, newest first: the payload plus ``at_epoch``, ``resolved_at``,
    ``deliveries`` (one per channel: ``channel``, ``kind``, ``target``, ``delivered``,
    ``state`` delivered / pending / retrying / failed, ``error``, ``note``, ``attempts``, ``at``,
    ``next_attempt_at``) and ``delivered`` (every channel delivered)."""
    ensure_schema(store)
    sql, params = "SELECT id, at, payload, resolved_at FROM alerts", []
    if app:
        sql += " WHERE app = ?"
        params.append(app)
    rows = store._read(sql + " ORDER BY at DESC, id DESC LIMIT ?", [*params, max(1, int(limit))])
    return _shape(store, rows)


def _shape(store: RunStore, rows: list) -> list[dict[str, Any]]:
    deliveries = _deliveries(store, [r["id"] for r in rows])
    out = []
    for r in rows:
        d = json.loads(r["payload"])
        d.update(id=r["id"], at_epoch=r["at"], resolved_at=r["resolved_at"], deliveries=deliveries[r["id"]])
        d["delivered"] = bool(d["deliveries"]) and all(x["delivered"] for x in d["deliveries"])
        out.append(d)
    return out


def delivery_text(d: dict[str, Any]) -> str:
    """One delivery in words: ``log OK``, ``ops-hook FAILED (2 attempts, retrying): <error>``."""
    if d["delivered"]:
        return f"{d['channel']} OK"
    if d["state"] == "pending":
        return f"{d['channel']} pending"
    text = f"{d['channel']} FAILED ({d['attempts']} attempt{'s' if d['attempts'] != 1 else ''}"
    text += ", retrying)" if d["state"] == "retrying" else ")"
    return text + (f": {d['error']}" if d.get("error") else "")
