"""Recording a big run streams its batches into the store: the caller never holds them all."""

from __future__ import annotations

import pickle
import tracemalloc

from switchyard.runs.store import RunStore


def test_batches_from_a_generator_are_recorded_without_being_held(tmp_path):
    n = 20_000
    store = RunStore(tmp_path / "s.db")
    made = []

    def batches():
        for i in range(n):
            made.append(i)
            yield {"name": f"p{i:05d}", "weight": 1.0 + i % 3, "items": 1, "planned_worker": f"h-{i % 2}",
                   "payload": pickle.dumps((i, "x" * 100))}

    tracemalloc.start()
    try:
        oid = store.create_orchestration(kind="app", app="engine", mode=4, args={}, workers={"h": 2},
                                         scheduler=None, plan_fingerprint=None, run_dir=str(tmp_path),
                                         batches=batches())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(made) == n
    assert store.get(oid).total_batches == n
    assert store.batch_counts(oid)["pending"] == n
    (idx, name, weight, payload, worker), = store.payloads(oid, [n - 1])
    assert (idx, name, weight, worker) == (n - 1, f"p{n - 1:05d}", 1.0 + (n - 1) % 3, f"h-{(n - 1) % 2}")
    assert pickle.loads(payload) == (n - 1, "x" * 100)
    assert [b.name for b in store.batch_page(oid, limit=2)] == ["p00000", "p00001"]
    # A list of the 20,000 dicts and their rows took ~12 MB; streamed, what is held is one batch
    # (and the `made` list of ints, ~0.7 MB).
    assert peak < 3 * 1024 * 1024, peak
