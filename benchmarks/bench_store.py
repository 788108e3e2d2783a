"""Per-batch overhead of the run store.

Creates an orchestration of 1000 batches and times what the driver does per batch
(``batches_started`` then ``record_results``) in groups of 1, 10 and 100. Prints
microseconds per batch and ratios against bare sqlite3 on the same machine, same
pragmas (WAL, synchronous=NORMAL), measured in the same run:

- ``insert``: one bare INSERT per batch, all in one transaction (the floor);
- ``same commits``: two bare UPDATEs per batch with the store's commit pattern
  (two transactions per group), i.e. what SQLite itself costs for the same work.

Run: ``.venv/bin/python benchmarks/bench_store.py [--batches 1000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from switchyard.runs.store import RunStore


def _store_run(store: RunStore, n: int, group: int) -> float:
    oid = store.create_orchestration(
        kind="app", app="bench", mode=4, args={}, workers={"127.0.0.1": 2}, scheduler=None,
        plan_fingerprint=None, run_dir=None,
        batches=[{"name": f"p{i}", "weight": 1.0, "items": 10, "planned_worker": "w0"}
                 for i in range(n)],
    )
    store.acquire_lease(oid, "bench", ttl=600)
    store.command(oid, "start")
    t0 = time.perf_counter()
    for start in range(0, n, group):
        idxs = list(range(start, min(n, start + group)))
        store.batches_started(oid, idxs, {i: "w1" for i in idxs})
        now = time.time()
        store.record_results(oid, [
            {"idx": i, "status": "completed", "worker": "w1", "started_at": now, "ended_at": now,
             "error": None, "output_path": f"/runs/x/{i}.pkl", "next_attempt_at": None}
            for i in idxs])
    elapsed = time.perf_counter() - t0
    assert store.get(oid).completed_batches == n
    return elapsed


def _bare_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS batches (oid TEXT, idx INTEGER, name TEXT, status TEXT, "
        "worker TEXT, started_at REAL, ended_at REAL, output_path TEXT, PRIMARY KEY (oid, idx))"
    )
    return conn


def _bare_insert(conn: sqlite3.Connection, n: int, tag: str) -> float:
    t0 = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    for i in range(n):
        conn.execute("INSERT INTO batches VALUES (?, ?, ?, 'completed', 'w1', ?, ?, ?)",
                     (tag, i, f"p{i}", 0.0, 0.0, f"/runs/x/{i}.pkl"))
    conn.execute("COMMIT")
    return time.perf_counter() - t0


def _bare_same_commits(conn: sqlite3.Connection, n: int, group: int, tag: str) -> float:
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO batches (oid, idx, name, status) VALUES (?, ?, ?, 'pending')",
                     [(tag, i, f"p{i}") for i in range(n)])
    conn.execute("COMMIT")
    t0 = time.perf_counter()
    for start in range(0, n, group):
        idxs = range(start, min(n, start + group))
        conn.execute("BEGIN IMMEDIATE")
        for i in idxs:
            conn.execute("UPDATE batches SET status = 'running', worker = 'w1' "
                         "WHERE oid = ? AND idx = ?", (tag, i))
        conn.execute("COMMIT")
        conn.execute("BEGIN IMMEDIATE")
        for i in idxs:
            conn.execute("UPDATE batches SET status = 'completed', ended_at = ?, output_path = ? "
                         "WHERE oid = ? AND idx = ?", (time.time(), f"/runs/x/{i}.pkl", tag, i))
        conn.execute("COMMIT")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N for every figure")
    opts = parser.parse_args()
    n = opts.batches
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "switchyard.db")
        bare = _bare_connection(Path(tmp) / "bare.db")
        t0 = time.perf_counter()
        store.create_orchestration(
            kind="app", app="bench", mode=4, args={}, workers={}, scheduler=None,
            plan_fingerprint=None, run_dir=None, batches=[{"name": f"p{i}"} for i in range(n)])
        create_us = (time.perf_counter() - t0) / n * 1e6
        insert_us = min(_bare_insert(bare, n, f"i{r}") for r in range(opts.repeat)) / n * 1e6
        print(f"run store per-batch overhead, {n} batches, best of {opts.repeat}, "
              f"sqlite {sqlite3.sqlite_version}")
        print(f"create_orchestration: {create_us:8.1f} us/batch")
        print(f"bare INSERT, one transaction: {insert_us:8.1f} us/batch (baseline)")
        print(f"{'group':>6} {'store us/batch':>15} {'bare same-commits':>18} "
              f"{'x insert':>9} {'x same-commits':>15}")
        for group in (1, 10, 100):
            store_us = min(_store_run(store, n, group) for _ in range(opts.repeat)) / n * 1e6
            same_us = min(_bare_same_commits(bare, n, group, f"g{group}-{r}")
                          for r in range(opts.repeat)) / n * 1e6
            print(f"{group:>6} {store_us:>15.1f} {same_us:>18.1f} {store_us / insert_us:>9.1f} "
                  f"{store_us / same_us:>15.2f}")
        store.close()
        bare.close()


if __name__ == "__main__":
    main()
