"""The HTTP API in this process (FastAPI's TestClient) over a real store; the real uvicorn
server is tested in tests/integration/test_api.py."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from switchyard.api import check_bind, create_app, is_loopback
from switchyard.exceptions import SwitchyardError
from switchyard.runs.store import RunStore

TOKEN = "s3cret-token"


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "switchyard.db")
    yield s
    s.close()


def make(store, n=3, app="flight"):
    oid = store.create_orchestration(
        kind="app", app=app, mode=0, args={}, workers={}, scheduler=None, plan_fingerprint=None,
        run_dir=str(store.path.parent / "runs" / "x"), batches=[{"name": f"b{i}"} for i in range(n)])
    return oid


def running(store, app="flight"):
    oid = make(store, app=app)
    store.acquire_lease(oid, "drv", ttl=60)
    store.command(oid, "start")
    return oid


@pytest.fixture
def client(store):
    with TestClient(create_app(store.path, TOKEN)) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c


def test_every_route_needs_the_token_when_one_is_set(store):
    with TestClient(create_app(store.path, TOKEN)) as c:
        for path in ("/healthz", "/orchestrations", "/orchestrations/x"):
            r = c.get(path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert c.get(path, headers={"Authorization": TOKEN}).status_code == 401  # no scheme
        assert c.post("/orchestrations/x/pause").status_code == 401
        assert c.get("/healthz", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_without_a_token_loopback_serves_everyone(store):
    with TestClient(create_app(store.path, None)) as c:
        assert c.get("/healthz").json()["ok"] is True


def test_list_show_and_batches(client, store):
    a = running(store, app="flight")
    b = make(store, app="montecarlo")
    store.record_results(a, [{"idx": 1, "status": "completed", "worker": "w0"}])
    rows = client.get("/orchestrations").json()["orchestrations"]
    assert {r["orchestration_id"] for r in rows} == {a, b}
    only = client.get("/orchestrations", params={"status": ["running"], "app": "flight"}).json()
    assert [r["orchestration_id"] for r in only["orchestrations"]] == [a]
    assert client.get("/orchestrations", params={"app": "nope"}).json()["count"] == 0
    d = client.get(f"/orchestrations/{a}").json()
    assert (d["status"], d["completed"], d["batches"], d["progress"]) == ("running", 1, 3, 0.3333)
    assert d["counts"]["completed"] == 1 and d["counts"]["pending"] == 2
    batches = client.get(f"/orchestrations/{a}/batches").json()["batches"]
    assert [x["status"] for x in batches] == ["pending", "completed", "pending"]
    assert client.get(f"/orchestrations/{a}/batches", params={"status": "completed"}).json()["count"] == 1
    assert client.get(f"/orchestrations/{a}/events").json()["events"][0]["kind"] == "created"


def test_error_codes(client, store):
    oid = running(store)
    r = client.get("/orchestrations/nope")
    assert r.status_code == 404 and "no orchestration 'nope'" in r.json()["detail"]
    assert client.post("/orchestrations/nope/pause").status_code == 404
    r = client.post(f"/orchestrations/{oid}/resume")
    assert r.status_code == 409 and r.json()["status"] == "running"
    assert "is running: cannot resume" in r.json()["detail"]
    r = client.get("/orchestrations", params={"status": "sleeping"})
    assert r.status_code == 400 and "sleeping" in r.json()["detail"]
    assert client.post(f"/orchestrations/{oid}/explode").status_code == 404


def test_lifecycle_commands_return_the_new_status(client, store):
    oid = running(store)
    assert client.post(f"/orchestrations/{oid}/pause").json()["status"] == "pausing"
    store.command(oid, "paused", owner="drv")
    r = client.post(f"/orchestrations/{oid}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["commands"] == []
    r = client.post(f"/orchestrations/{oid}/resume")
    assert r.status_code == 409 and r.json()["status"] == "cancelled"


def test_dead_letters_and_log(client, store, tmp_path):
    oid = running(store)
    store.record_results(oid, [{"idx": 2, "status": "dead", "error": "ValueError: bad row"}])
    dead = client.get(f"/orchestrations/{oid}/dead-letters").json()["dead_letters"]
    assert [(d["idx"], d["error"], d["attempts"]) for d in dead] == [(2, "ValueError: bad row", 1)]
    log = tmp_path / "runs" / "x" / "run.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"line {i}\n" for i in range(10)))
    assert client.get(f"/orchestrations/{oid}/log", params={"lines": 3}).json()["lines"] == \
        ["line 7", "line 8", "line 9"]


def test_a_vanished_driver_reads_as_interrupted(client, store):
    oid = make(store)
    store.acquire_lease(oid, "drv", ttl=1, now=time.time() - 10)
    store.command(oid, "start")
    assert client.get(f"/orchestrations/{oid}").json()["status"] == "interrupted"


def test_binding_beyond_loopback_needs_a_token():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.0.0.5") and not is_loopback("0.0.0.0") and not is_loopback("myhost")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "tok")
    with pytest.raises(SwitchyardError, match="refusing to serve the API on 0.0.0.0 without a token"):
        check_bind("0.0.0.0", None)
