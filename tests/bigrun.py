"""A run of many batches written through the store's own API (no driver): what the pages,
the API and the CLI must show without reading every row.

Two workers run the batches back to back, 2.5 ms each; every 100th batch is dead with
one of two errors (two error groups), every 10,007th took 1.5 s (the slowest ones).
"""

from __future__ import annotations

from pathlib import Path

from switchyard.runs.store import RunStore

T0 = 1_800_000_000.0
WORKERS = ("127.0.0.1-0", "127.0.0.1-1")
STEP = 0.0025


def error_of(i: int) -> str | None:
    if i % 100 != 7:
        return None
    if i % 200 == 7:
        return f"ValueError: batch {i} is broken\nTraceback line {i}"
    return f"TimeoutError: partition p{i:06d} took {i % 13 + 10}.5 s on '/data/f{i}.csv'"


def make_big_run(store: RunStore, n: int = 100_000, run_dir: Path | None = None, app: str = "montecarlo",
                 finish: bool = True) -> str:
    """Record an orchestration of ``n`` batches and their results; returns its id."""
    oid = store.create_orchestration(
        kind="app", app=app, mode=4, args={"tasks": n}, workers={"127.0.0.1": 2}, scheduler=None,
        plan_fingerprint=None, run_dir=str(run_dir or store.path.parent / "runs" / "big"),
        batches=[{"name": f"p{i:06d}", "planned_worker": WORKERS[i % 2]} for i in range(n)], now=T0)
    store.acquire_lease(oid, "bigrun", ttl=10**9, now=T0)
    store.command(oid, "start", now=T0)
    clock = {w: T0 for w in WORKERS}
    results = []
    for i in range(n):
        w = WORKERS[i % 2]
        took = 1.5 if i % 10_007 == 5 else STEP
        start, clock[w] = clock[w], clock[w] + took
        error = error_of(i)
        results.append({"idx": i, "status": "dead" if error else "completed", "worker": w,
                        "started_at": start, "ended_at": start + took, "error": error})
    store.record_results(oid, results, now=T0)
    if finish:
        store.command(oid, "fail", error=f"{n // 100} of {n} batches failed", owner="bigrun",
                      now=max(clock.values()))
        store.release_lease(oid, "bigrun")
    return oid
