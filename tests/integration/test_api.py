"""The HTTP API served by a real uvicorn (`switchyard api`) on loopback: auth, error codes, and
pausing/resuming a real run over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import httpx
import pytest

from .conftest import SWITCHYARD
from .lifecycle_helpers import start_long_run, store_of, wait_until

TOKEN = "integration-token-7f3a"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(home, apps, *args, token: str | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, SWITCHYARD_HOME=str(home), SWITCHYARD_APPS=str(apps))
    env.pop("SWITCHYARD_API_TOKEN", None)
    if token:
        env["SWITCHYARD_API_TOKEN"] = token
    proc = subprocess.Popen([str(SWITCHYARD), "api", "--port", str(port), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, port


def wait_serving(proc, port) -> None:
    def up():
        assert proc.poll() is None, proc.stdout.read()
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 401)
        except httpx.HTTPError:
            return False
    wait_until(up, 30, "the API answering")


def stop(proc) -> str:
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


@pytest.fixture
def api(run_home):
    apps, home = run_home
    proc, port = serve(home, apps, token=TOKEN)
    wait_serving(proc, port)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Authorization": f"Bearer {TOKEN}"})
    box = {"out": ""}
    yield client, home, apps, box
    client.close()
    box["out"] = stop(proc)
    assert TOKEN not in box["out"]  # never logged


def test_auth_and_error_codes_over_real_http(api):
    client, home, apps, _ = api
    assert client.get("/healthz").json()["ok"] is True
    bare = httpx.get(f"{client.base_url}/orchestrations", timeout=10)
    assert bare.status_code == 401 and bare.headers["www-authenticate"] == "Bearer"
    wrong = httpx.get(f"{client.base_url}/orchestrations", timeout=10,
                      headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert client.get("/orchestrations/20990101-000000-ffffff").status_code == 404
    assert client.post("/orchestrations/20990101-000000-ffffff/pause").status_code == 404
    assert client.get("/orchestrations", params={"status": "sleeping"}).status_code == 400


def test_pause_and_resume_a_real_run_over_http(api):
    client, home, apps, _ = api
    oid = start_long_run(home, apps, tasks=8, mode=0)
    store = store_of(home)
    wait_until(lambda: client.get(f"/orchestrations/{oid}").json()["completed"] >= 1, 90, "a batch done")
    r = client.post(f"/orchestrations/{oid}/pause")
    assert r.status_code == 200 and r.json()["status"] in ("pausing", "paused")
    wait_until(lambda: client.get(f"/orchestrations/{oid}").json()["status"] == "paused", 30, "paused")
    conflict = client.post(f"/orchestrations/{oid}/pause")
    assert conflict.status_code == 409 and conflict.json()["status"] == "paused"
    shown = client.get(f"/orchestrations/{oid}").json()
    assert shown["commands"] == ["resume", "cancel"] and 0 < shown["progress"] < 1
    listed = client.get("/orchestrations", params={"status": "paused"}).json()["orchestrations"]
    assert oid in [o["orchestration_id"] for o in listed]
    r = client.post(f"/orchestrations/{oid}/resume")
    assert r.status_code == 200 and r.json()["status"] in ("pending", "running")
    wait_until(lambda: client.get(f"/orchestrations/{oid}").json()["status"] == "completed", 120,
               "completed after resume")
    batches = client.get(f"/orchestrations/{oid}/batches").json()["batches"]
    assert [b["status"] for b in batches] == ["completed"] * 8
    assert store.get(oid).completed_batches == 8
    assert client.post(f"/orchestrations/{oid}/cancel").status_code == 409


def test_refuses_to_serve_beyond_loopback_without_a_token(run_home):
    apps, home = run_home
    proc, port = serve(home, apps, "--host", "0.0.0.0")
    assert proc.wait(30) == 2
    out = proc.stdout.read()
    assert "refusing to serve the API on 0.0.0.0 without a token" in out
    proc, port = serve(home, apps, "--host", "0.0.0.0", token=TOKEN)
    try:
        wait_serving(proc, port)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 401
        ok = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5,
                       headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
    finally:
        assert TOKEN not in stop(proc)
