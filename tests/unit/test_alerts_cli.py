"""`switchyard alerts ...` in this process over a real store and workspace (no network)."""

from __future__ import annotations

import json

import pytest

from switchyard.cli import main
from switchyard.runs.store import RunStore


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_HOME", str(tmp_path))
    return tmp_path


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def failed(home, app="flight"):
    with RunStore(home / "switchyard.db") as s:
        oid = s.create_orchestration(kind="app", app=app, mode=4, args={}, workers={}, scheduler=None,
                                     plan_fingerprint=None, run_dir=None, batches=[{"name": "b"}])
        s.acquire_lease(oid, "drv", ttl=600)
        s.command(oid, "start")
        s.command(oid, "fail", error="boom")
    return oid


def test_check_then_list_show_one_delivered_failure(home, capsys):
    oid = failed(home)
    code, out, _ = run(capsys, "alerts", "check", "--json")
    d = json.loads(out)
    assert code == 0 and d["new"] == 1 and d["retried"] == 0 and d["alerts"][0]["subject"] == oid
    code, out, _ = run(capsys, "alerts", "check")
    assert code == 0 and out.strip() == "0 new alert(s), 0 retried"
    code, out, _ = run(capsys, "alerts", "list")
    assert code == 0 and f"failure     flight: run {oid} of flight failed: boom  [log OK]" in out
    code, out, _ = run(capsys, "alerts", "list", "--app", "other", "--json")
    assert json.loads(out) == {"alerts": [], "count": 0}
    code, _, err = run(capsys, "alerts", "list", "--limit", "0")
    assert code == 2 and "--limit 0: give a whole number >= 1" in err


def test_channels_add_test_remove_and_rules(home, capsys):
    code, out, _ = run(capsys, "alerts", "channels", "--json")
    view = json.loads(out)
    assert code == 0 and not view["exists"] and [c["name"] for c in view["channels"]] == ["log"]
    code, out, _ = run(capsys, "alerts", "channel", "add", "hook", "--kind", "webhook",
                       "--url", "http://127.0.0.1:9/h?token=SECRET", "--app", "flight")
    assert code == 0 and "channel 'hook' added" in out and "http://127.0.0.1:9/h" in out and "SECRET" not in out
    code, out, _ = run(capsys, "alerts", "channel", "add", "mail", "--kind", "smtp", "--host", "127.0.0.1",
                       "--port", "2525", "--sender", "sy@example.com", "--to", "a@example.com", "--to",
                       "b@example.com", "--json")
    mail = {c["name"]: c for c in json.loads(out)["channels"]}["mail"]
    assert mail["to"] == ["a@example.com", "b@example.com"] and mail["port"] == 2525
    code, out, _ = run(capsys, "alerts", "test", "log", "--json")
    assert code == 0 and json.loads(out)["deliveries"][0]["delivered"] is True
    code, out, _ = run(capsys, "alerts", "test", "hook")  # nothing listens on port 9
    assert code == 1 and "FAILED: channel 'hook' (webhook): cannot reach http://127.0.0.1:9/h" in out
    code, _, err = run(capsys, "alerts", "test", "nope")
    assert code == 2 and "no channel 'nope': use one of: log, hook, mail" in err
    code, _, err = run(capsys, "alerts", "channel", "add", "x", "--kind", "smtp", "--host", "h")
    assert code == 2 and err.count("\n") == 1 and 'channels."x".sender' in err
    code, out, _ = run(capsys, "alerts", "channel", "remove", "hook")
    assert code == 0 and "hook" not in out.split("removed", 1)[1]
    code, out, _ = run(capsys, "alerts", "rule", "duration_factor", "4", "--json")
    assert code == 0 and json.loads(out)["rules"]["duration_factor"] == 4.0
    code, _, err = run(capsys, "alerts", "rule", "duration_factor", "0.5")
    assert code == 2 and "rules.duration_factor: 0.5 is not 0 or a number > 1" in err
    code, _, err = run(capsys, "alerts", "rule", "min_history")
    assert code == 2 and "give a value, e.g. switchyard alerts rule min_history 3" in err
    code, out, _ = run(capsys, "alerts", "rule")
    assert code == 0 and "duration_factor = 4.0" in out
    assert "SECRET" not in (home / "alerts.toml").read_text()  # removed with its channel


def test_a_broken_settings_file_is_one_line_exit_2(home, capsys):
    (home / "alerts.toml").write_text("[rules]\nhealth_gate = \"yes\"\n")
    code, _, err = run(capsys, "alerts", "check")
    assert code == 2 and err.strip() == (f"switchyard: error: {home / 'alerts.toml'}: rules.health_gate: 'yes' is "
                                         "not true/false: write health_gate = true or health_gate = false")
