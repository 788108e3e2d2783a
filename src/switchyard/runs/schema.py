"""The run store's tables, and the migration of a store written by an earlier version.

A version-1 store gains the columns of :data:`ADDED_COLUMNS` and the indexes of
:data:`INDEXES` in place; a store written by a newer Switchyard is refused.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from switchyard.exceptions import StoreError
from switchyard.runs.batch_reads import error_signature

SCHEMA_VERSION = 3

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS orchestrations (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    app TEXT NOT NULL,
    status TEXT NOT NULL,
    mode INTEGER NOT NULL DEFAULT 0,
    args TEXT NOT NULL DEFAULT '{}',
    workers TEXT NOT NULL DEFAULT '{}',
    scheduler TEXT,
    plan_fingerprint TEXT,
    run_dir TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    heartbeat_at REAL,
    lease_owner TEXT,
    lease_expires REAL,
    driver_pid INTEGER,
    error TEXT,
    output TEXT,
    seconds REAL,
    total_batches INTEGER NOT NULL DEFAULT 0,
    completed_batches INTEGER NOT NULL DEFAULT 0,
    attempts_limit INTEGER NOT NULL DEFAULT 3,
    request TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS orchestrations_by_status ON orchestrations (status, created_at);
CREATE INDEX IF NOT EXISTS orchestrations_by_created ON orchestrations (created_at);
CREATE TABLE IF NOT EXISTS batches (
    orchestration_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    weight REAL NOT NULL DEFAULT 1.0,
    items INTEGER NOT NULL DEFAULT 0,
    planned_worker TEXT,
    worker TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at REAL,
    ended_at REAL,
    error TEXT,
    output_path TEXT,
    next_attempt_at REAL,
    payload BLOB,
    error_signature TEXT,
    PRIMARY KEY (orchestration_id, idx)
);
CREATE INDEX IF NOT EXISTS batches_by_status ON batches (orchestration_id, status);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    orchestration_id TEXT NOT NULL,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_orchestration ON events (orchestration_id, id);
"""

# Columns added after schema version 1: (table, column, declaration), added by the migration.
ADDED_COLUMNS = (
    ("orchestrations", "request", "TEXT NOT NULL DEFAULT '{}'"),  # v2: the run request (JSON)
    ("batches", "payload", "BLOB"),  # v2: the partition's items (pickle), read by the driver
    ("batches", "error_signature", "TEXT"),  # v3: the error with what varies blanked (error groups)
)

# v3: the indexes behind paged, filtered and aggregated batch reads (runs/batch_reads.py),
# created after the columns they cover exist.
INDEXES = (
    "CREATE INDEX IF NOT EXISTS batches_by_status_idx ON batches (orchestration_id, status, idx)",
    "CREATE INDEX IF NOT EXISTS batches_by_worker ON batches (orchestration_id, worker, idx)",
    # covering: the timeline's span and busy buckets read the index only
    "CREATE INDEX IF NOT EXISTS batches_by_time ON batches "
    "(orchestration_id, started_at, ended_at, worker, status)",
    "CREATE INDEX IF NOT EXISTS batches_by_signature ON batches (orchestration_id, error_signature)",
)


def migrate(c: sqlite3.Connection, path: Path) -> None:
    """Create the tables if missing and bring an older store up to :data:`SCHEMA_VERSION`,
    inside the caller's transaction ``c``."""
    c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    found = int(row[0]) if row else None
    if found is not None and found > SCHEMA_VERSION:
        raise StoreError(
            path, f"schema version {found} is newer than this Switchyard's "
            f"({SCHEMA_VERSION})", "upgrade Switchyard or use another SWITCHYARD_HOME",
        )
    # One statement at a time: executescript() would commit our transaction.
    for statement in SCHEMA_SQL.split(";"):
        if statement.strip():
            c.execute(statement)
    for table, column, decl in ADDED_COLUMNS:  # a store of an earlier version
        have = {r[1] for r in c.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
    for statement in INDEXES:
        c.execute(statement)
    if found is not None and found < 3:  # errors recorded before signatures existed
        rows = c.execute("SELECT orchestration_id, idx, error FROM batches "
                         "WHERE error IS NOT NULL AND error_signature IS NULL").fetchall()
        c.executemany("UPDATE batches SET error_signature = ? WHERE orchestration_id = ? "
                      "AND idx = ?", [(error_signature(e), o, i) for o, i, e in rows])
    if found != SCHEMA_VERSION:
        c.execute(
            "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )
