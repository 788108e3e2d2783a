"""Lifecycle costs: the store overhead per batch (checkpoint + record) and the pause latency.

1. Store overhead: what the driver adds per completed batch, on a scratch store:
   pickle the result, write the checkpoint (temp file + rename, as the driver does; and
   with an fsync per file, for comparison), record it in the store. Recorded one batch
   per transaction (batches finishing one at a time, the worst case) and 10 per
   transaction (several finishing in one wait). Microseconds per batch.
2. Pause latency: a real dask-mode run of montecarlo (2 local workers, batches of about
   ``--samples`` points, ~0.5 s each on an idle core). After some batches completed,
   ``control.pause`` is called; the time until the store says ``paused`` is compared
   with the longest batch that had to finish first (the issue's bound: one batch + 1 s).
   Then resume, and pause again, ``--repeat`` times.

Usage: .venv/bin/python benchmarks/bench_lifecycle.py [--batches 1000] [--repeat 3] [--samples 600000]
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def store_overhead(n: int, group: int, fsync: bool = False) -> dict:
    from switchyard.runs.driver import checkpoint_path, write_checkpoint
    from switchyard.runs.store import RunStore
    from switchyard.workspace import atomic_write_bytes

    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "switchyard.db")
        run_dir = Path(tmp) / "runs" / "x"
        oid = store.create_orchestration(
            kind="app", app="bench", mode=4, args={}, workers={"127.0.0.1": 2}, scheduler=None,
            plan_fingerprint=None, run_dir=run_dir,
            batches=[{"name": f"p{i}", "items": 4, "planned_worker": "w0"} for i in range(n)])
        store.acquire_lease(oid, "bench", ttl=600)
        store.command(oid, "start", owner="bench")
        result = {"task": 1, "samples": 600_000, "inside": 471_238, "integral_sum": 471_238.5}
        t_ckpt = t_rec = 0.0
        for start in range(0, n, group):
            records = []
            for i in range(start, min(n, start + group)):
                t0 = time.perf_counter()
                path = checkpoint_path(run_dir, i)
                if fsync:
                    atomic_write_bytes(path, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
                else:
                    write_checkpoint(path, result)
                t_ckpt += time.perf_counter() - t0
                now = time.time()
                records.append({"idx": i, "status": "completed", "worker": "w0", "started_at": now,
                                "ended_at": now, "error": None, "output_path": str(path)})
            t0 = time.perf_counter()
            store.record_results(oid, records, owner="bench")
            t_rec += time.perf_counter() - t0
        assert store.get(oid).completed_batches == n
        store.close()
    return {"checkpoint_us": 1e6 * t_ckpt / n, "record_us": 1e6 * t_rec / n,
            "total_us": 1e6 * (t_ckpt + t_rec) / n}


def pause_latency(repeat: int, samples: int) -> list[dict]:
    from _common import scratch

    from switchyard.runs.submit import start_run
    from switchyard.runs import control

    app_env, root = scratch("montecarlo")
    store = control.open_store(app_env.home)
    rows = []
    try:
        oid, _ = start_run(app_env, mode=4, workers={"127.0.0.1": 2}, on_line=lambda line: None,
                           tasks=6 * (repeat + 1) + 4, samples_per_task=samples, chunks=1)
        for _ in range(repeat):
            done = store.get(oid).completed_batches
            _wait(lambda: store.status(oid).value == "running", 120)
            # two completions since this driver started: workers warm, batches in flight
            _wait(lambda: store.get(oid).completed_batches >= done + 2, 120)
            asked = time.time()
            control.pause(store, oid)
            _wait(lambda: store.status(oid).value == "paused", 120, poll=0.01)
            seen = time.time() - asked
            batches = store.batches(oid)
            finishing = [b for b in batches if b.ended_at and b.ended_at > asked]
            typical = statistics.median(b.seconds for b in batches if b.seconds)
            last_end = max((b.ended_at for b in finishing), default=asked)
            rows.append({"latency": seen, "longest_finishing": max((b.seconds for b in finishing), default=0.0),
                         "median_batch": typical, "after_last": asked + seen - last_end})
            control.resume(store, oid)
        _wait(lambda: store.status(oid).value == "completed", 300)
    finally:
        store.close()
        shutil.rmtree(root, ignore_errors=True)
    return rows


def _wait(predicate, timeout: float, poll: float = 0.05) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise TimeoutError("benchmark run did not get there in time")
        time.sleep(poll)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--samples", type=int, default=600_000)
    ns = ap.parse_args()
    print(f"store overhead per completed batch ({ns.batches} batches, checkpoint + record):")
    for group in (1, 10):
        r = store_overhead(ns.batches, group)
        f = store_overhead(ns.batches, group, fsync=True)
        print(f"  {group:>2} per transaction: {r['total_us']:7.0f} us  (checkpoint {r['checkpoint_us']:.0f} us, "
              f"record {r['record_us']:.0f} us); with an fsync per checkpoint: {f['total_us']:.0f} us")
    print(f"pause latency (dask mode, 2 workers, {ns.repeat} pauses of one run):")
    for i, r in enumerate(pause_latency(ns.repeat, ns.samples), 1):
        print(f"  pause {i}: paused after {r['latency']:.2f} s (bound: longest batch that finished first "
              f"{r['longest_finishing']:.2f} s + 1 s; median batch {r['median_batch']:.2f} s); "
              f"{r['after_last']:.2f} s after the last executing batch ended")


if __name__ == "__main__":
    main()
