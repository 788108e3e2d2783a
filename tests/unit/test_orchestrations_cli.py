"""`switchyard orchestrations ...` in this process over a real store (no driver processes)."""

from __future__ import annotations

import json

import pytest

from switchyard.cli import main
from switchyard.runs.store import RunStore


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_HOME", str(tmp_path))
    monkeypatch.delenv("SWITCHYARD_MAX_RUNNING", raising=False)
    s = RunStore(tmp_path / "switchyard.db")
    yield s
    s.close()


def make(store, app="montecarlo", n=3):
    oid = store.create_orchestration(
        kind="app", app=app, mode=4, args={}, workers={}, scheduler=None, plan_fingerprint=None,
        run_dir=str(store.path.parent / "runs" / "x"), batches=[{"name": f"b{i}"} for i in range(n)])
    store.acquire_lease(oid, "drv", ttl=600)
    store.command(oid, "start")
    return oid


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_show_json_has_the_run_keys_progress_and_counts(store, capsys):
    oid = make(store)
    store.record_results(oid, [{"idx": 0, "status": "completed"}, {"idx": 1, "status": "dead", "error": "boom"}])
    code, out, _ = run(capsys, "orchestrations", "show", oid, "--json", "--batches")
    d = json.loads(out)
    assert code == 0
    assert {"orchestration_id", "status", "batches", "completed", "seconds", "output", "progress"} <= set(d)
    assert d["counts"] == {"pending": 1, "running": 0, "completed": 1, "failed": 0, "dead": 1,
                           "cancelled": 0, "skipped": 0}
    assert [b["status"] for b in d["batch_list"]] == ["completed", "dead", "pending"]
    code, out, _ = run(capsys, "orch", "dead", oid, "--json")
    assert json.loads(out)["dead_letters"][0]["error"] == "boom"


def test_lifecycle_commands_and_refusals(store, capsys):
    oid = make(store)
    code, out, _ = run(capsys, "orchestrations", "pause", oid, "--json")
    assert code == 0 and json.loads(out)["status"] == "pausing"
    code, out, err = run(capsys, "orchestrations", "resume", oid)
    assert code == 2 and f"orchestration {oid} is pausing: cannot resume it" in err
    code, out, err = run(capsys, "orchestrations", "cancel", "nope")
    assert code == 2 and "no orchestration 'nope'" in err
    code, out, _ = run(capsys, "orchestrations", "list", "--status", "pausing", "--json")
    assert [r["orchestration_id"] for r in json.loads(out)["orchestrations"]] == [oid]
    code, out, _ = run(capsys, "orchestrations", "list")
    assert oid in out and "pausing" in out


def test_limit_is_shown_set_and_reset(store, capsys):
    code, out, _ = run(capsys, "orchestrations", "limit", "--json")
    assert json.loads(out)["max_running"] == 4
    make(store)
    code, out, _ = run(capsys, "orchestrations", "limit", "2", "--json")
    assert json.loads(out) == {"max_running": 2, "running": 1, "queued": 0}
    assert store.setting("max_running") == "2"
    code, out, err = run(capsys, "orchestrations", "limit", "0")
    assert code == 2 and "must be at least 1" in err
    run(capsys, "orchestrations", "limit", "--reset")
    assert store.setting("max_running") is None


def test_api_refuses_a_public_address_without_a_token(store, capsys, monkeypatch):
    monkeypatch.delenv("SWITCHYARD_API_TOKEN", raising=False)
    code, _, err = run(capsys, "api", "--host", "0.0.0.0", "--port", "1")
    assert code == 2 and "refusing to serve the API on 0.0.0.0 without a token" in err
