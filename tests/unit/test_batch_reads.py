"""Paged, filtered and aggregated batch reads on a real SQLite store holding a 100,000-batch run
(built once for the module through the store's own API), and the v2 -> v3 migration."""

from __future__ import annotations

import sqlite3
import time

import pytest

import switchyard.runs.schema as schema_module
from switchyard.runs.batch_reads import PAGE_MAX, BatchFilter, error_signature
from switchyard.runs.store import RunStore

from ..bigrun import STEP, T0, WORKERS, make_big_run

N = 100_000


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("big") / "switchyard.db")
    oid = make_big_run(store, N)
    yield store, oid
    store.close()


def test_error_signatures_blank_what_varies():
    assert error_signature("ValueError: batch 7 is broken\nmore") == "ValueError: batch # is broken"
    assert error_signature("ValueError: batch 9 is broken") == "ValueError: batch # is broken"
    assert error_signature("OSError: '/data/a b.csv' at 0x7f3a") == "OSError: '…' at #"
    assert error_signature("KeyError: /srv/x/y.parquet missing") == "KeyError: <path> missing"
    assert error_signature("attempt 1/3 failed") == "attempt #/# failed"
    assert error_signature(None) is None and error_signature("") is None


def test_pages_filters_and_counts_come_from_sql(big):
    store, oid = big
    t = time.perf_counter()
    page = store.batch_page(oid, limit=50)
    assert [b.idx for b in page] == list(range(50))
    assert [b.idx for b in store.batch_page(oid, limit=50, offset=99_990)] == list(range(99_990, N))
    assert [b.idx for b in store.batch_page(oid, limit=3, after=page[-1].idx)] == [50, 51, 52]
    assert len(store.batch_page(oid, limit=10**6)) == PAGE_MAX
    dead = BatchFilter.of("dead")
    assert store.batch_total(oid, dead) == N // 100
    assert [b.idx for b in store.batch_page(oid, dead, limit=3)] == [7, 107, 207]
    one = BatchFilter.of(worker=WORKERS[1])
    assert store.batch_total(oid, one) == N // 2
    assert all(b.worker == WORKERS[1] for b in store.batch_page(oid, one, limit=100))
    assert [b.name for b in store.batch_page(oid, BatchFilter.of(name="p01234"), limit=20)] == \
        [f"p01234{d}" for d in range(10)]
    assert store.batch_total(oid, BatchFilter.of(error="broken")) == N // 200
    assert store.batch_total(oid, BatchFilter.of(name="50%_")) == 0  # LIKE wildcards are literal
    window = BatchFilter.of(worker=WORKERS[0], first=1000, last=1199)
    assert store.batch_total(oid, window) == 100
    assert store.batch_counts(oid)["completed"] == N - N // 100
    assert store.worker_counts(oid) == {WORKERS[0]: {"completed": 50_000},  # dead ones are odd
                                        WORKERS[1]: {"completed": 49_000, "dead": 1000}}
    assert store.workers(oid) == list(WORKERS)
    took = time.perf_counter() - t
    assert took < 2.0, took  # every read above is an index range or one aggregate


def test_error_groups_count_by_signature_and_a_group_can_be_requeued(big, tmp_path):
    store, oid = big
    groups = store.error_groups(oid)
    assert [(g["signature"], g["count"], g["dead"], g["first_idx"]) for g in groups] == [
        ("ValueError: batch # is broken", 500, 500, 7),
        ("TimeoutError: partition p# took # s on '…'", 500, 500, 107)]
    assert groups[0]["example"].startswith("ValueError: batch 7 is broken")
    idxs = store.batch_indices(oid, BatchFilter.of("dead", signature=groups[0]["signature"]))
    assert idxs[:3] == [7, 207, 407] and len(idxs) == 500
    # requeue on a copy: the module's run stays as built
    small = RunStore(tmp_path / "s.db")
    other = make_big_run(small, 1000)
    sig = small.error_groups(other)[0]["signature"]
    again = small.requeue_dead(other, small.batch_indices(other, BatchFilter.of("dead", signature=sig)))
    assert again == [7, 207, 407, 607, 807]
    assert [g["count"] for g in small.error_groups(other)] == [5]


def test_timeline_aggregates_busy_share_per_worker_and_bucket(big):
    store, oid = big
    t = time.perf_counter()
    agg = store.busy_buckets(oid, buckets=50)
    took = time.perf_counter() - t
    assert took < 1.5, took
    assert agg["t0"] == T0 and agg["buckets"] == 50
    busy = {}
    for worker, bucket, status, seconds, batches in agg["rows"]:
        assert 0 <= bucket < 50 and status in ("completed", "dead")
        busy.setdefault(worker, 0.0)
        busy[worker] += seconds
    # back-to-back batches: every worker is busy its whole span (the long ones split over buckets)
    expected = (N // 2) * STEP + 1.5 * 5  # 10 slow ones, about half per worker
    for w in WORKERS:
        assert busy[w] == pytest.approx(expected, rel=0.02)
    slow = store.slowest_batches(oid, 5)
    assert {b.idx % 10_007 for b in slow} == {5} and slow[0].seconds == pytest.approx(1.5)
    counts, total, n = store.duration_histogram(oid, [0.01, 1.0, 10.0])
    assert n == N - N // 100 and counts[0] == counts[1] == n - 10 and counts[2] == n
    assert total == pytest.approx((n - 10) * STEP + 10 * 1.5, rel=1e-4)  # float sums of 1.8e9-based times


def test_a_version_2_store_gets_signatures_and_indexes(tmp_path):
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    for statement in schema_module.SCHEMA_SQL.replace("    error_signature TEXT,\n", "").split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO orchestrations (id, kind, app, status, created_at, total_batches) "
                 "VALUES ('o2', 'app', 'flight', 'failed', 1.0, 2)")
    conn.execute("INSERT INTO batches (orchestration_id, idx, name, status, error) VALUES "
                 "('o2', 0, 'a', 'dead', 'ValueError: row 12 is bad'), ('o2', 1, 'b', 'completed', NULL)")
    conn.commit()
    conn.close()
    with RunStore(path) as store:
        assert store.schema_version() == 3
        assert [(g["signature"], g["count"]) for g in store.error_groups("o2")] == [
            ("ValueError: row # is bad", 1)]
        indexes = {r[0] for r in store._read("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"batches_by_worker", "batches_by_signature", "batches_by_time"} <= indexes


def test_the_api_and_the_cli_page_and_filter(big, monkeypatch, capsys):
    import json

    from fastapi.testclient import TestClient

    from switchyard.api import create_app
    from switchyard.cli import main

    store, oid = big
    client = TestClient(create_app(store.path))
    d = client.get(f"/orchestrations/{oid}/batches", params={"limit": 3}).json()
    assert ([b["idx"] for b in d["batches"]], d["count"], d["total"], d["next_after"]) == ([0, 1, 2], 3, N, 2)
    d = client.get(f"/orchestrations/{oid}/batches",
                   params={"status": "dead", "error": "Timeout", "after": 107, "limit": 2}).json()
    assert [b["idx"] for b in d["batches"]] == [307, 507] and d["total"] == 500 and d["next_after"] == 507
    d = client.get(f"/orchestrations/{oid}/batches", params={"worker": WORKERS[0], "offset": 49_999}).json()
    assert [b["idx"] for b in d["batches"]] == [99_998] and d["next_after"] is None
    assert client.get(f"/orchestrations/{oid}/batches", params={"limit": 5000}).status_code == 422
    assert client.get(f"/orchestrations/{oid}/batches", params={"status": "nope"}).status_code == 400
    assert client.get("/orchestrations/nope/batches").status_code == 404
    metrics = client.get("/metrics").text
    assert f'switchyard_batch_duration_seconds_count{{app="montecarlo"}} {N - N // 100}' in metrics
    assert 'switchyard_batches{app="montecarlo",status="dead"} 1000' in metrics

    monkeypatch.setenv("SWITCHYARD_HOME", str(store.path.parent))
    assert main(["orchestrations", "show", oid, "--batches", "--json", "--limit", "2", "--after", "10",
                 "--worker", WORKERS[1], "--errors"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [b["idx"] for b in d["batch_list"]] == [11, 13]
    assert d["batch_page"] == {"count": 2, "total": N // 2, "limit": 2, "offset": 0, "next_after": 13}
    assert [g["count"] for g in d["error_groups"]] == [500, 500]
    assert main(["orchestrations", "show", oid, "--batches", "--name", "p09999", "--limit", "4"]) == 0
    text = capsys.readouterr().out
    assert "#99990" in text and "batches 1-4 of 10 matching; next page: --after 99993" in text
    assert main(["orchestrations", "show", oid, "--batches", "--limit", "0"]) == 2
    assert "--limit 0" in capsys.readouterr().err
