"""Leases, heartbeats, the sweep and the queue: which driver owns which orchestration.

A mixin of :class:`switchyard.runs.store.RunStore` (it uses the store's transactions,
reads and audit trail). A driver holds its orchestration's lease and renews it with
each heartbeat; a lease that expired means the driver is gone, and the sweep marks its
orchestration. The queue hands pending orchestrations to new drivers while fewer than
a limit run. Time is a parameter here too (``now=None`` means ``time.time()``).
"""

from __future__ import annotations

import builtins
import time
from pathlib import Path
from typing import Any, Iterable

from switchyard.exceptions import LeaseHeld
from switchyard.runs.state import Status, next_status

# The driver's side of the lease contract (every driver, app or pipeline, keeps it).
STATUS_POLL = 0.2  # how often the driver reads the status the operator asked for
HEARTBEAT_INTERVAL = STATUS_POLL  # lease renewal: each status read renews (it returns the status)
# Writers wait at most this long for another process's write lock (the run store's busy
# timeout); the lease outlives that wait plus a renewal, so a driver stuck behind a lock that
# it survives is never declared gone, while a dead one is declared within 10.4 s.
BEAT_BUSY_TIMEOUT = 10.0
LEASE_TTL = BEAT_BUSY_TIMEOUT + 2 * HEARTBEAT_INTERVAL  # a driver silent this long is declared gone
OBSERVE_INTERVAL = 1.0  # how often executing batches are looked up (to show them running)
PAUSE_DRAIN_TIMEOUT = 600.0


class DriverLost(Exception):
    """This driver no longer owns the orchestration: stop without recording anything."""

_ACTIVE = tuple(s.value for s in Status if s.is_active)


def _now(now: float | None) -> float:
    return time.time() if now is None else float(now)


def _marks(values: Iterable[Any]) -> str:
    return ",".join("?" for _ in values)


def _clock(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


class Leases:
    """Lease, heartbeat, sweep and queue operations of the run store."""

    def acquire_lease(
        self, oid: str, owner: str, ttl: float, pid: int | None = None, now: float | None = None
    ) -> None:
        """Take the lease that lets ``owner`` drive ``oid`` for ``ttl`` seconds.

        Succeeds when the lease is free, expired, or already held by ``owner``.

        Raises:
            LeaseHeld: another owner holds a live lease.
        """
        now = _now(now)
        if ttl <= 0:
            raise ValueError(f"lease ttl must be positive, got {ttl}")
        with self.transaction() as c:
            row = c.execute(
                "SELECT lease_owner, lease_expires FROM orchestrations WHERE id = ?", (oid,)
            ).fetchone()
            if row is None:
                raise self._not_found(oid)
            holder, expires = row
            if holder is not None and holder != owner and expires is not None and expires > now:
                raise LeaseHeld(oid, holder)
            c.execute(
                "UPDATE orchestrations SET lease_owner = ?, lease_expires = ?, heartbeat_at = ?, "
                "driver_pid = COALESCE(?, driver_pid) WHERE id = ?",
                (owner, now + ttl, now, pid, oid),
            )
            if holder != owner:
                taken = f" from {holder} (expired)" if holder else ""
                self._event(c, oid, "lease", f"taken by {owner}{taken}"
                            + (f" pid {pid}" if pid is not None else ""), now)

    def heartbeat(self, oid: str, owner: str, ttl: float, now: float | None = None) -> Status:
        """Renew ``owner``'s lease and return the current status (so the driver sees pause/cancel).

        Raises:
            LeaseHeld: ``owner`` no longer holds the lease (another driver took it over).
        """
        now = _now(now)
        with self.transaction() as c:
            row = c.execute(
                "UPDATE orchestrations SET heartbeat_at = ?, lease_expires = ? "
                "WHERE id = ? AND lease_owner = ? RETURNING status",
                (now, now + ttl, oid, owner),
            ).fetchone()
            if row is None:
                held = c.execute(
                    "SELECT lease_owner FROM orchestrations WHERE id = ?", (oid,)
                ).fetchone()
                if held is None:
                    raise self._not_found(oid)
                raise LeaseHeld(oid, held[0] or "nobody (the lease was released)")
            return Status(row[0])

    def release_lease(self, oid: str, owner: str, now: float | None = None) -> bool:
        """Give the lease up if ``owner`` holds it; return whether it did."""
        now = _now(now)
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE orchestrations SET lease_owner = NULL, lease_expires = NULL "
                "WHERE id = ? AND lease_owner = ?",
                (oid, owner),
            )
            if cur.rowcount:
                self._event(c, oid, "lease", f"released by {owner}", now)
            return bool(cur.rowcount)

    def sweep(self, now: float | None = None, orphan_grace: float = 60.0) -> builtins.list[str]:
        """Mark orchestrations whose driver stopped heartbeating; return their ids.

        An active orchestration's driver is gone when its lease expired, or when it has no
        lease at all and nothing was heard from it for ``orphan_grace`` seconds. Running and
        pausing ones become ``interrupted`` (resumable); cancelling ones become ``cancelled``.
        A pending one whose lease expired was claimed by a driver that never started it: it
        becomes ``interrupted`` too, with the error saying so.

        Cheap when there is nothing to sweep (one read, no write lock), so every reader of
        the store (CLI, API, pages, follow_run) can call it.
        """
        now = _now(now)
        where = (
            f"(status IN ({_marks(_ACTIVE)}) AND ("
            "(lease_expires IS NOT NULL AND lease_expires <= ?) OR (lease_expires IS NULL AND "
            "COALESCE(heartbeat_at, started_at, created_at) <= ?)))"
            " OR (status = 'pending' AND lease_owner IS NOT NULL AND lease_expires <= ?)"
        )
        params = (*_ACTIVE, now, now - orphan_grace, now)
        if not self._read(f"SELECT 1 FROM orchestrations WHERE {where} LIMIT 1", params):
            return []
        swept = []
        with self.transaction() as c:
            rows = c.execute(
                "SELECT id, status, lease_owner, lease_expires, driver_pid, run_dir "
                f"FROM orchestrations WHERE {where}",
                params,
            ).fetchall()
            for oid, status, owner, expires, pid, run_dir in rows:
                current = Status(status)
                target = next_status(current, "interrupt", oid)
                who = f"driver {owner or '(no lease)'}" + (f" pid {pid}" if pid else "")
                if current is Status.PENDING:
                    out = Path(run_dir) / "driver.out" if run_dir else "its driver.out"
                    note = (f"{who} never started it (its claim expired at {_clock(expires)})")
                    error = f"{note}: see {out}, then resume it to try again"
                else:
                    when = (f"its lease expired at {_clock(expires)}" if expires
                            else "it never took a lease")
                    note = f"{who} stopped heartbeating ({when})"
                    error = (f"{note}: resume it to continue" if target is Status.INTERRUPTED
                             else None)
                self._apply(c, oid, current, target, "interrupt", error, now, note=note)
                swept.append(oid)
        return swept

    def claim_pending(
        self,
        limit_running: int,
        *,
        owner: str = "queue",
        ttl: float = 60.0,
        now: float | None = None,
    ) -> builtins.list[str]:
        """Claim the oldest pending orchestrations that may start under ``limit_running``.

        Busy slots are active orchestrations plus pending ones under a live lease (a driver
        is starting). Each claimed orchestration gets a lease for ``owner``; the driver started
        for it calls :meth:`acquire_lease` with the same owner to take over.
        """
        now = _now(now)
        with self.transaction() as c:
            busy = c.execute(
                f"SELECT COUNT(*) FROM orchestrations WHERE status IN ({_marks(_ACTIVE)})"
                " OR (status = 'pending' AND lease_owner IS NOT NULL AND lease_expires > ?)",
                (*_ACTIVE, now),
            ).fetchone()[0]
            free = int(limit_running) - busy
            if free <= 0:
                return []
            ids = [r[0] for r in c.execute(
                "SELECT id FROM orchestrations WHERE status = 'pending' AND (lease_owner IS NULL "
                "OR lease_expires IS NULL OR lease_expires <= ?) ORDER BY created_at, id LIMIT ?",
                (now, free),
            )]
            for oid in ids:
                c.execute(
                    "UPDATE orchestrations SET lease_owner = ?, lease_expires = ? WHERE id = ?",
                    (owner, now + ttl, oid),
                )
                self._event(c, oid, "lease", f"claimed by {owner}", now)
        return ids

    def claim_next(
        self, limit_running: int, owner: str, ttl: float = 60.0, now: float | None = None
    ) -> str | None:
        """Claim the oldest unclaimed pending orchestration if a slot is free under
        ``limit_running``; return its id (None when nothing waits or no slot is free).

        Like :meth:`claim_pending` for one orchestration, with ``owner`` being the name of the
        driver about to be started for it (which then takes the lease over with
        :meth:`acquire_lease`). Pending orchestrations under a claim, live or expired, are
        left alone: an expired claim is the sweep's to report.
        """
        now = _now(now)
        with self.transaction() as c:
            busy = c.execute(
                f"SELECT COUNT(*) FROM orchestrations WHERE status IN ({_marks(_ACTIVE)})"
                " OR (status = 'pending' AND lease_owner IS NOT NULL AND lease_expires > ?)",
                (*_ACTIVE, now),
            ).fetchone()[0]
            if busy >= int(limit_running):
                return None
            row = c.execute(
                "SELECT id FROM orchestrations WHERE status = 'pending' AND lease_owner IS NULL "
                "ORDER BY created_at, id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE orchestrations SET lease_owner = ?, lease_expires = ? WHERE id = ?",
                (owner, now + ttl, row[0]),
            )
            self._event(c, row[0], "lease", f"claimed by {owner}", now)
        return row[0]

    def queue_state(self, now: float | None = None) -> tuple[int, int]:
        """(busy slots, unclaimed pending orchestrations): one read, to skip claiming for nothing."""
        now = _now(now)
        busy, waiting = self._read(
            f"SELECT COALESCE(SUM(status IN ({_marks(_ACTIVE)}) OR (status = 'pending' AND "
            "lease_owner IS NOT NULL AND lease_expires > ?)), 0), "
            "COALESCE(SUM(status = 'pending' AND lease_owner IS NULL), 0) FROM orchestrations",
            (*_ACTIVE, now),
        )[0]
        return int(busy), int(waiting)
