"""The run store: orchestrations, their batches and an audit trail, in one SQLite file.

Several processes use the file at once (the driver, the UI, the CLI, the HTTP
API), so every change that touches more than one row runs in one
``BEGIN IMMEDIATE`` transaction, and status changes read the current status
inside that transaction before applying :data:`switchyard.runs.state.TRANSITIONS`.
Within a process one connection is shared by all threads behind a re-entrant
lock (the driver records results from one thread while another heartbeats).

Time is a parameter (``now=None`` means ``time.time()``), so tests never sleep.
"""

from __future__ import annotations

import builtins
import json
import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from switchyard import workspace
from switchyard.exceptions import LeaseHeld, NotFound, StoreError
from switchyard.runs.batch_reads import BatchReads, error_signature
from switchyard.runs.leases import Leases, _marks, _now
from switchyard.runs.schema import SCHEMA_VERSION, migrate  # noqa: F401  (SCHEMA_VERSION: re-exported)
from switchyard.runs.state import Batch, BatchStatus, Orchestration, Status, next_status

# Every batch column but the payload (read only by the driver, with :meth:`RunStore.payloads`).
_BATCH_COLUMNS = ("orchestration_id, idx, name, weight, items, planned_worker, worker, status, attempts, "
                  "started_at, ended_at, error, output_path, next_attempt_at")

# Batches whose attempt counts when its result is recorded.
_COUNTED = (BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.DEAD)


def new_orchestration_id(now: float | None = None) -> str:
    """A short id that sorts by creation time (UTC), e.g. ``20261122-180512-ab12cd``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(_now(now)))
    return f"{stamp}-{secrets.token_hex(3)}"


def _json(value: dict | None) -> str:
    return json.dumps(value or {}, default=str)  # e.g. a Path in args is stored as its text


class RunStore(Leases, BatchReads):
    """Orchestrations, batches and events in one SQLite file, safe across threads and processes.

    Leases, heartbeats, the sweep and the queue are in :class:`switchyard.runs.leases.Leases`;
    paged, filtered and aggregated batch reads in :class:`switchyard.runs.batch_reads.BatchReads`.

    Args:
        path: the database file; default ``<workspace home>/switchyard.db``.
        busy_timeout: seconds to wait for another process's write lock before giving up.
    """

    def __init__(self, path: Path | str | None = None, busy_timeout: float = 10.0):
        self.busy_timeout = float(busy_timeout)
        self.path = Path(path) if path is not None else workspace.home() / "switchyard.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._orphans: list[sqlite3.Connection] = []
        self.initialize_schema()

    # -- connection and transactions ---------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if self._conn is not None:
            # A forked child must not use (nor close) the parent's connection.
            self._orphans.append(self._conn)
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.DatabaseError as e:
            raise StoreError(
                self.path, f"cannot open it ({e})",
                "move the file away or point SWITCHYARD_HOME at another folder",
            ) from e
        self._conn, self._pid = conn, os.getpid()
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``); nested calls join the outer one."""
        with self._lock:
            conn = self._connection()
            if self._depth:
                self._depth += 1
                try:
                    yield conn
                finally:
                    self._depth -= 1
                return
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                if "locked" not in str(e):
                    raise
                raise StoreError(
                    self.path,
                    f"another process kept it locked for more than {self.busy_timeout:g} s",
                    "close whatever holds a write transaction on it (a sqlite3 shell?) and retry",
                ) from e
            self._depth = 1
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass  # the original error is the one worth reporting
                raise
            else:
                conn.execute("COMMIT")
            finally:
                self._depth = 0

    def _read(self, sql: str, params: Iterable[Any] = ()) -> builtins.list[sqlite3.Row]:
        with self._lock:
            return self._connection().execute(sql, tuple(params)).fetchall()

    def initialize_schema(self) -> None:
        """Create the tables if missing (idempotent); refuse a store written by a newer version."""
        try:
            with self.transaction() as c:
                migrate(c, self.path)
        except sqlite3.DatabaseError as e:
            raise StoreError(
                self.path, f"not a usable run store ({e})",
                "move the file away or point SWITCHYARD_HOME at another folder",
            ) from e

    def schema_version(self) -> int:
        row = self._read("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(row[0][0])

    def setting(self, key: str) -> str | None:
        """A workspace-wide setting kept in the store (e.g. ``max_running``), or None."""
        rows = self._read("SELECT value FROM meta WHERE key = ?", (f"setting.{key}",))
        return rows[0][0] if rows else None

    def set_setting(self, key: str, value: str | None) -> None:
        """Set (or with None, remove) a workspace-wide setting; every process sees it."""
        with self.transaction() as c:
            if value is None:
                c.execute("DELETE FROM meta WHERE key = ?", (f"setting.{key}",))
            else:
                c.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                          "DO UPDATE SET value = excluded.value", (f"setting.{key}", str(value)))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- creating and reading ----------------------------------------------------------------

    def create_orchestration(
        self,
        *,
        kind: str,
        app: str,
        mode: int,
        args: dict,
        workers: dict,
        scheduler: str | None,
        plan_fingerprint: str | None,
        run_dir: str | Path | None,
        batches: Iterable[dict],
        options: dict | None = None,
        attempts_limit: int = 3,
        oid: str | None = None,
        now: float | None = None,
        request: dict | None = None,
    ) -> str:
        """Record a new orchestration (status ``pending``) and its batches; return its id.

        Each batch is a dict with ``name`` and optionally ``weight``, ``items`` (a count or
        the items themselves) and ``planned_worker``; its index is its position in the list.
        ``batches`` may be any iterable (a generator): rows are inserted as they come, so a
        caller recording 100,000 batches never holds them all at once.
        ``oid`` is an id drawn beforehand with :meth:`new_id` (e.g. to name the run folder).
        A batch's ``payload`` (bytes: its pickled items) is kept for the driver to read back
        with :meth:`payloads`; ``request`` is the run request document.
        """
        now = _now(now)
        if int(attempts_limit) < 1:
            raise ValueError(f"attempts_limit must be at least 1, got {attempts_limit}")
        count = 0

        def rows():
            nonlocal count
            for idx, b in enumerate(batches):
                items = b.get("items", 0)
                items = items if isinstance(items, int) else len(items)
                count = idx + 1
                yield (oid, idx, str(b["name"]), float(b.get("weight", 1.0)), items,
                       b.get("planned_worker"), b.get("payload"))

        values = (
            kind, app, Status.PENDING.value, int(mode), _json(args), _json(workers), scheduler,
            plan_fingerprint, str(run_dir) if run_dir is not None else None, _json(options), now,
            0, int(attempts_limit), _json(request),
        )
        given = oid
        with self.transaction() as c:
            for _ in range(5):
                oid = given or new_orchestration_id(now)
                try:
                    c.execute(
                        "INSERT INTO orchestrations (id, kind, app, status, mode, args, workers, "
                        "scheduler, plan_fingerprint, run_dir, options, created_at, total_batches, "
                        "attempts_limit, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (oid, *values),
                    )
                    break
                except sqlite3.IntegrityError:
                    if given:
                        raise ValueError(f"orchestration id {given!r} is already taken") from None
                    continue  # two ids drawn in the same second collided: draw again
            else:
                raise RuntimeError("could not draw a unique orchestration id")
            c.executemany(
                "INSERT INTO batches (orchestration_id, idx, name, weight, items, planned_worker, "
                "payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows(),
            )
            c.execute("UPDATE orchestrations SET total_batches = ? WHERE id = ?", (count, oid))
            self._event(c, oid, "created", f"{kind} of {app} with {count} batches", now)
        return oid

    def new_id(self, now: float | None = None) -> str:
        """A fresh orchestration id (unused in this store) for :meth:`create_orchestration`."""
        while True:
            oid = new_orchestration_id(now)
            if not self._read("SELECT 1 FROM orchestrations WHERE id = ?", (oid,)):
                return oid

    def get(self, oid: str) -> Orchestration:
        """The orchestration ``oid``; raises NotFound for an unknown id."""
        rows = self._read("SELECT * FROM orchestrations WHERE id = ?", (oid,))
        if not rows:
            raise self._not_found(oid)
        return Orchestration.from_row(rows[0])

    def list(
        self,
        status: Status | str | Iterable[Status | str] | None = None,
        app: str | None = None,
        kind: str | None = None,
        limit: int = 200,
    ) -> builtins.list[Orchestration]:
        """Orchestrations, newest first, filtered by status (one or several), app and kind."""
        where, params = [], []
        if status is not None:
            wanted = [status] if isinstance(status, str) else builtins.list(status)
            values = [Status(s).value for s in wanted]
            where.append(f"status IN ({_marks(values)})")
            params += values
        if app is not None:
            where.append("app = ?")
            params.append(app)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        sql = "SELECT * FROM orchestrations"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        return [Orchestration.from_row(r) for r in self._read(sql, [*params, int(limit)])]

    def status(self, oid: str) -> Status:
        """The current status of ``oid`` (one cheap read); raises NotFound for an unknown id."""
        rows = self._read("SELECT status FROM orchestrations WHERE id = ?", (oid,))
        if not rows:
            raise self._not_found(oid)
        return Status(rows[0][0])

    def batches(self, oid: str, status: BatchStatus | str | None = None) -> builtins.list[Batch]:
        """The batches of ``oid`` in index order, optionally only those with ``status``."""
        self._require(oid)
        if status is None:
            rows = self._read(
                f"SELECT {_BATCH_COLUMNS} FROM batches WHERE orchestration_id = ? ORDER BY idx", (oid,)
            )
        else:
            rows = self._read(
                f"SELECT {_BATCH_COLUMNS} FROM batches WHERE orchestration_id = ? AND status = ? ORDER BY idx",
                (oid, BatchStatus(status).value),
            )
        return [Batch.from_row(r) for r in rows]

    def payloads(self, oid: str, idxs: Iterable[int] | None = None,
                 ) -> builtins.list[tuple[int, str, float, bytes | None, str | None]]:
        """(idx, name, weight, payload, planned worker) of every batch of ``oid`` (or of those
        in ``idxs``: what a driver submits next), in index order."""
        self._require(oid)
        sql = ("SELECT idx, name, weight, payload, planned_worker FROM batches "
               "WHERE orchestration_id = ?")
        if idxs is None:
            rows = self._read(sql + " ORDER BY idx", (oid,))
        else:
            wanted = sorted({int(i) for i in idxs})
            rows = []
            for at in range(0, len(wanted), 500):  # below SQLite's bound-parameter limit
                chunk = wanted[at:at + 500]
                rows += self._read(sql + f" AND idx IN ({_marks(chunk)}) ORDER BY idx", (oid, *chunk))
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def batch_states(self, oid: str) -> builtins.list[tuple[int, str, int]]:
        """(idx, status, attempts) of every batch: what a driver needs to start, without the rest."""
        self._require(oid)
        return [tuple(r) for r in self._read(
            "SELECT idx, status, attempts FROM batches WHERE orchestration_id = ? ORDER BY idx", (oid,))]

    def batch_counts(self, oid: str) -> dict[str, int]:
        """Number of batches per batch status (every status present, zeros included)."""
        self._require(oid)
        counts = {s.value: 0 for s in BatchStatus}
        for status, n in self._read(
            "SELECT status, COUNT(*) FROM batches WHERE orchestration_id = ? GROUP BY status",
            (oid,),
        ):
            counts[status] = n
        return counts

    def pending_batches(self, oid: str, now: float | None = None) -> builtins.list[Batch]:
        """Batches to submit: pending ones and failed ones whose next attempt is due."""
        self._require(oid)
        rows = self._read(
            f"SELECT {_BATCH_COLUMNS} FROM batches WHERE orchestration_id = ? AND (status = 'pending' OR "
            "(status = 'failed' AND (next_attempt_at IS NULL OR next_attempt_at <= ?))) "
            "ORDER BY idx",
            (oid, _now(now)),
        )
        return [Batch.from_row(r) for r in rows]

    def dead_letters(self, oid: str) -> builtins.list[Batch]:
        """Batches that exhausted their attempts."""
        return self.batches(oid, BatchStatus.DEAD)

    def events(self, oid: str) -> builtins.list[dict[str, Any]]:
        """The audit trail of ``oid``, oldest first."""
        self._require(oid)
        rows = self._read(
            "SELECT id, orchestration_id, at, kind, message FROM events "
            "WHERE orchestration_id = ? ORDER BY id", (oid,),
        )
        return [dict(r) for r in rows]

    # -- lifecycle ---------------------------------------------------------------------------

    def command(
        self,
        oid: str,
        command: str,
        *,
        error: str | None = None,
        owner: str | None = None,
        now: float | None = None,
    ) -> Orchestration:
        """Apply an operator command or a driver event through the transition table.

        Reads the status and writes the new one in one transaction, records an event and
        moves the batches along: ``resume``/``retry`` put every batch that is not completed or
        skipped back to pending (dead ones with a fresh attempt budget, failed ones keep
        their attempts); ``paused``/``interrupt`` put running batches back to pending;
        reaching ``cancelled`` cancels pending, running and failed batches. Reaching
        ``pending`` (resume, retry) also frees the lease, so the queue can hand the
        orchestration to a new driver.

        With ``owner`` (a driver reporting an event), refuses unless that driver holds the
        lease: a driver that lost its orchestration to another one must not end it.

        Raises:
            NotFound: unknown id.
            InvalidTransition: the command is not allowed from the current status.
            LeaseHeld: ``owner`` was given and does not hold the lease.
        """
        now = _now(now)
        with self.transaction() as c:
            row = c.execute(
                "SELECT status, lease_owner FROM orchestrations WHERE id = ?", (oid,)
            ).fetchone()
            if row is None:
                raise self._not_found(oid)
            if owner is not None and row[1] != owner:
                raise LeaseHeld(oid, row[1] or "nobody (the lease was released)")
            current = Status(row[0])
            self._apply(c, oid, current, next_status(current, command, oid), command, error, now)
        return self.get(oid)

    def _apply(self, c: sqlite3.Connection, oid: str, current: Status, target: Status,
               command: str, error: str | None, now: float, note: str = "") -> None:
        sets, params = ["status = ?"], [target.value]
        if target is Status.RUNNING:
            sets.append("started_at = COALESCE(started_at, ?), ended_at = NULL")
            params.append(now)
        elif target is Status.PENDING:
            # Back in the queue: whichever driver had it is done with it.
            sets.append("ended_at = NULL, error = NULL, lease_owner = NULL, lease_expires = NULL")
        elif target.is_finished:
            sets.append("ended_at = ?")
            params.append(now)
        if error is not None:
            sets.append("error = ?")
            params.append(error)
        c.execute(f"UPDATE orchestrations SET {', '.join(sets)} WHERE id = ?", (*params, oid))

        if target is Status.PENDING:
            c.execute(
                "UPDATE batches SET status = 'pending', next_attempt_at = NULL, "
                "attempts = CASE WHEN status = 'dead' THEN 0 ELSE attempts END "
                "WHERE orchestration_id = ? "
                "AND status IN ('failed', 'dead', 'cancelled', 'running')",
                (oid,),
            )
        elif target in (Status.PAUSED, Status.INTERRUPTED):
            c.execute(
                "UPDATE batches SET status = 'pending' "
                "WHERE orchestration_id = ? AND status = 'running'",
                (oid,),
            )
        elif target is Status.CANCELLED:
            c.execute(
                "UPDATE batches SET status = 'cancelled', ended_at = ? WHERE orchestration_id = ? "
                "AND status IN ('pending', 'running', 'failed')",
                (now, oid),
            )
        message = f"{current.value} -> {target.value}"
        if note or error:
            message += f": {note or error}"
        self._event(c, oid, command, message, now)

    # -- batches -----------------------------------------------------------------------------

    def batches_started(
        self,
        oid: str,
        idxs: Iterable[int],
        worker_by_idx: dict[int, str] | None = None,
        *,
        owner: str | None = None,
        now: float | None = None,
    ) -> None:
        """Mark batches as running (on ``worker_by_idx[idx]``, else their planned worker).

        Completed batches are left alone. With ``owner``, refuses (LeaseHeld) unless that
        driver holds the lease.
        """
        now = _now(now)
        workers = worker_by_idx or {}
        idxs = sorted({int(i) for i in idxs})
        with self.transaction() as c:
            self._require(oid, c, owner)
            cur = c.executemany(
                "UPDATE batches SET status = 'running', started_at = ?, ended_at = NULL, "
                "worker = COALESCE(?, planned_worker) "
                "WHERE orchestration_id = ? AND idx = ? AND status != 'completed'",
                [(now, workers.get(i), oid, i) for i in idxs],
            )
            if cur.rowcount < len(idxs):
                self._require_batches(c, oid, idxs)

    def record_results(
        self,
        oid: str,
        results: builtins.list[dict],
        *,
        owner: str | None = None,
        now: float | None = None,
    ) -> int:
        """Record finished attempts in one transaction; return how many batches newly completed.

        Each result has ``idx`` and ``status`` and optionally ``worker``, ``started_at``,
        ``ended_at`` (default now), ``error``, ``output_path``, ``next_attempt_at``. A
        completed, failed or dead result counts one attempt; the driver decides between
        failed and dead (``attempts_limit`` is its budget). A completed batch never changes
        again, so recording a completion twice keeps one.
        """
        now = _now(now)
        newly_completed = 0
        with self.transaction() as c:
            self._require(oid, c, owner)
            for r in results:
                idx, status = int(r["idx"]), BatchStatus(r["status"])
                counted = 1 if status in _COUNTED else 0
                ended = r.get("ended_at")
                got = c.execute(
                    "UPDATE batches SET "
                    "status = ?, attempts = attempts + ?, worker = COALESCE(?, worker), "
                    "started_at = COALESCE(?, started_at), ended_at = ?, error = ?, error_signature = ?, "
                    "output_path = COALESCE(?, output_path), next_attempt_at = ? "
                    "WHERE orchestration_id = ? AND idx = ? AND status != 'completed' "
                    "RETURNING status, attempts",
                    (status.value, counted, r.get("worker"),
                     r.get("started_at"), now if ended is None else ended, r.get("error"),
                     error_signature(r.get("error")),
                     r.get("output_path"), r.get("next_attempt_at"), oid, idx),
                ).fetchone()
                if got is None:
                    self._require_batches(c, oid, [idx])
                    continue  # already completed: keep the first completion
                if got[0] == "completed":
                    newly_completed += 1
                elif got[0] == "dead":
                    self._event(c, oid, "dead", f"batch {idx} is dead after {got[1]} attempts: "
                                f"{r.get('error') or 'no error recorded'}", now)
            if newly_completed:
                c.execute(
                    "UPDATE orchestrations SET completed_batches = completed_batches + ? "
                    "WHERE id = ?",
                    (newly_completed, oid),
                )
        return newly_completed

    def reopen_batches(
        self,
        oid: str,
        idxs: Iterable[int],
        reason: str,
        *,
        owner: str | None = None,
        now: float | None = None,
    ) -> builtins.list[int]:
        """Put completed batches whose output was lost back to pending; return their indices.

        The one exception to "a completed batch never changes": its checkpoint is missing or
        unreadable (deleted by hand, or lost with the machine), so it has to run again.
        """
        now = _now(now)
        wanted = sorted({int(i) for i in idxs})
        with self.transaction() as c:
            self._require(oid, c, owner)
            reopened = [i for i in wanted if c.execute(
                "UPDATE batches SET status = 'pending', output_path = NULL, next_attempt_at = NULL "
                "WHERE orchestration_id = ? AND idx = ? AND status = 'completed' RETURNING idx",
                (oid, i)).fetchone()]
            if reopened:
                c.execute("UPDATE orchestrations SET completed_batches = completed_batches - ? "
                          "WHERE id = ?", (len(reopened), oid))
                shown = ", ".join(map(str, reopened[:20])) + (" ..." if len(reopened) > 20 else "")
                self._event(c, oid, "reopen", f"{len(reopened)} completed batches back to pending "
                            f"({reason}): {shown}", now)
        return reopened

    def requeue_dead(
        self, oid: str, idxs: Iterable[int] | None = None, now: float | None = None
    ) -> builtins.list[int]:
        """Put dead batches (all, or those in ``idxs``) back to pending with a fresh attempt
        budget; return their indices. A finished orchestration still needs ``retry``/``resume``.
        """
        now = _now(now)
        with self.transaction() as c:
            self._require(oid, c)
            sql = "SELECT idx FROM batches WHERE orchestration_id = ? AND status = 'dead'"
            dead = [r[0] for r in c.execute(sql + " ORDER BY idx", (oid,))]
            if idxs is not None:
                wanted = {int(i) for i in idxs}
                dead = [i for i in dead if i in wanted]
            c.executemany(
                "UPDATE batches SET status = 'pending', attempts = 0, next_attempt_at = NULL "
                "WHERE orchestration_id = ? AND idx = ?",
                [(oid, i) for i in dead],
            )
            if dead:
                shown = ", ".join(map(str, dead[:20])) + (" ..." if len(dead) > 20 else "")
                message = f"{len(dead)} dead batches back to pending: {shown}"
                self._event(c, oid, "requeue", message, now)
        return dead

    def set_output(self, oid: str, output: str, seconds: float) -> None:
        """Record where the run's output is and how long the run took."""
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE orchestrations SET output = ?, seconds = ? WHERE id = ?",
                (str(output), float(seconds), oid),
            )
            if cur.rowcount == 0:
                raise self._not_found(oid)

    # -- helpers -----------------------------------------------------------------------------

    def _event(self, c: sqlite3.Connection, oid: str, kind: str, message: str, now: float) -> None:
        c.execute(
            "INSERT INTO events (orchestration_id, at, kind, message) VALUES (?, ?, ?, ?)",
            (oid, now, kind, message),
        )

    def _not_found(self, oid: str) -> NotFound:
        return NotFound(
            f"no orchestration '{oid}' in {self.path}: check the id against the list of "
            "orchestrations (or the SWITCHYARD_HOME it was started with)"
        )

    def _require(self, oid: str, c: sqlite3.Connection | None = None,
                 owner: str | None = None) -> None:
        """Raise NotFound for an unknown id; with ``owner``, LeaseHeld unless it holds the lease."""
        sql, params = "SELECT lease_owner FROM orchestrations WHERE id = ?", (oid,)
        row = c.execute(sql, params).fetchone() if c else next(iter(self._read(sql, params)), None)
        if row is None:
            raise self._not_found(oid)
        if owner is not None and row[0] != owner:
            raise LeaseHeld(oid, row[0] or "nobody (the lease was released)")

    def _require_batches(self, c: sqlite3.Connection, oid: str, idxs: builtins.list[int]) -> None:
        self._require(oid, c)
        known = {r[0] for r in c.execute(
            f"SELECT idx FROM batches WHERE orchestration_id = ? AND idx IN ({_marks(idxs)})",
            (oid, *idxs),
        )}
        missing = [i for i in idxs if i not in known]
        if missing:
            raise NotFound(
                f"orchestration '{oid}' has no batch {missing[0]}: batch indices run from 0 to "
                "total_batches - 1"
            )
