"""Schedules, backfills and alerts over HTTP (FastAPI's TestClient on a real workspace store): a
schedule added with the CLI is listed, paused, resumed and deleted through the API, under the token."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from switchyard import cli
from switchyard.alerts.records import ensure_schema as alert_schema
from switchyard.alerts.records import record as record_alert
from switchyard.alerts.rules import NewAlert
from switchyard.api import create_app
from switchyard.runs.store import RunStore
from switchyard.schedule.backfill import create_backfill

REPO = Path(__file__).resolve().parents[2]
TOKEN = "sched-token-51c2"


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SWITCHYARD_HOME", str(home))
    monkeypatch.setenv("SWITCHYARD_APPS", str(REPO / "apps"))
    return home


def test_schedule_added_with_the_cli_is_listed_and_changed_over_http(home, capsys):
    assert cli.main(["schedule", "add", "flight", "--every", "3600", "--name", "hourly", "--json"]) == 0
    sid = json.loads(capsys.readouterr().out)["id"]
    with TestClient(create_app(home / "switchyard.db", TOKEN)) as c:
        assert c.get("/schedules").status_code == 401
        assert c.get("/backfills").status_code == 401 and c.get("/alerts").status_code == 401
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        listed = c.get("/schedules").json()
        assert [(s["id"], s["app"], s["name"], s["status"]) for s in listed["schedules"]] == \
            [(sid, "flight", "hourly", "active")]
        assert listed["scheduler"]["running"] is False
        assert c.get(f"/schedules/{sid}").json()["triggers"] == []
        assert c.post(f"/schedules/{sid}/pause").json()["status"] == "paused"
        assert c.get("/schedules?app=flight").json()["schedules"][0]["status"] == "paused"
        assert c.post(f"/schedules/{sid}/resume").json()["status"] == "active"
        assert c.post(f"/schedules/{sid}/kick").status_code == 404

        made = c.post("/schedules", json={"app": "flight", "cron": "0 3 * * *", "args": {"files": 2}})
        assert made.status_code == 201 and made.json()["when"]["cron"] == "0 3 * * *"
        assert made.json()["args"] == {"files": 2}
        bad = c.post("/schedules", json={"app": "flight", "every": 60, "colour": "red"})
        assert bad.status_code == 400 and "'colour'" in bad.json()["detail"]
        assert "cron" in bad.json()["detail"]
        assert c.post("/schedules", json={"app": "flight", "cron": "61 * * * *"}).status_code == 400
        assert c.post("/schedules", json={"app": "nope", "every": 60}).status_code == 400
        assert c.delete(f"/schedules/{sid}").json()["id"] == sid
        gone = c.get(f"/schedules/{sid}")
        assert gone.status_code == 404 and sid in gone.json()["detail"]
    # the CLI sees what the API did
    assert cli.main(["schedule", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["schedules"]
    assert [r["when"]["cron"] for r in rows] == ["0 3 * * *"]


def test_backfills_and_alerts_over_http(home):
    store = RunStore(home / "switchyard.db")
    bid = create_backfill(store, "flight", "seed", [1, 2, 3], "all", 2, now=time.time())
    alert_schema(store)
    aid = record_alert(store, NewAlert(rule="failure", app="flight", subject="o1", message="run o1 failed",
                                       title="flight failed"), [], now=time.time())
    with TestClient(create_app(store.path, TOKEN), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        listed = c.get("/backfills").json()
        assert listed["count"] == 1 and listed["backfills"][0]["id"] == bid
        assert c.get(f"/backfills/{bid}").json()["values"] == [1, 2, 3]
        assert c.post(f"/backfills/{bid}/stop").json()["stop_requested"] is True
        missing = c.get("/backfills/nope")
        assert missing.status_code == 404 and "no backfill 'nope'" in missing.json()["detail"]
        assert c.post("/backfills/nope/stop").status_code == 404
        alerts = c.get("/alerts?app=flight").json()
        assert alerts["count"] == 1 and alerts["alerts"][0]["id"] == aid
        assert alerts["alerts"][0]["message"] == "run o1 failed"
        assert c.get("/alerts?app=other").json()["count"] == 0
