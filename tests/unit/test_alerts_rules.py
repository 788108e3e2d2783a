"""The pure alert rules: orchestrations, history and health verdicts in, exact alerts out."""

from __future__ import annotations

from switchyard.alerts.config import Rules
from switchyard.alerts.rules import closed_episodes, evaluate, usual_seconds
from switchyard.runs.state import Orchestration

T0 = 1_800_000_000.0


def orch(oid: str, status: str, *, app: str = "flight", kind: str = "app", started: float | None = T0,
         ended: float | None = None, error: str | None = None, lease_expires: float | None = None,
         options: dict | None = None) -> Orchestration:
    return Orchestration(id=oid, kind=kind, app=app, status=status, created_at=(started or T0) - 1,
                         started_at=started, ended_at=ended, error=error, run_dir=f"/w/runs/{oid}",
                         lease_expires=lease_expires, options=options or {})


def done(oid: str, seconds: float, *, app: str = "flight", kind: str = "app", ended: float = T0) -> Orchestration:
    return orch(oid, "completed", app=app, kind=kind, started=ended - seconds, ended=ended)


HISTORY = [done("h1", 10, ended=T0 - 300), done("h2", 12, ended=T0 - 200), done("h3", 11, ended=T0 - 100)]


def test_a_failed_run_alerts_with_its_error_log_and_origin():
    o = orch("r1", "failed", started=T0, ended=T0 + 5, error="ValueError: bad row\nTraceback ...",
             options={"origin": {"by": "schedule", "schedule": "nightly"}})
    [a] = evaluate([o], [], {}, T0 + 10, Rules(), set())
    assert (a.rule, a.subject, a.app, a.severity) == ("failure", "r1", "flight", "error")
    assert a.message == "run r1 of flight failed: ValueError: bad row"
    p = a.payload(7, T0 + 10)
    assert p["id"] == 7 and p["at"] == "2027-01-15T08:00:10Z" and p["schema"] == 1
    assert p["orchestration_id"] == "r1" and p["status"] == "failed" and p["kind"] == "app"
    assert p["details"]["error"].startswith("ValueError: bad row") and p["details"]["seconds"] == 5.0
    assert p["links"] == {"log": "/w/runs/r1/run.log"}
    assert p["origin"] == {"by": "schedule", "schedule": "nightly"}


def test_interrupted_cancelled_and_completed_runs_are_not_failures():
    runs = [orch("i", "interrupted", ended=T0), orch("c", "cancelled", ended=T0), orch("k", "completed", ended=T0 + 1),
            orch("p", "pending", started=None)]
    assert evaluate(runs, [], {}, T0 + 5, Rules(duration_factor=0), set()) == []


def test_a_failure_alerts_once_and_not_when_the_rule_is_off():
    o = orch("r1", "failed", ended=T0 + 1, kind="pipeline")
    [a] = evaluate([o, o], [], {}, T0 + 2, Rules(), set())  # listed twice: still one alert
    assert a.title == "pipeline run r1 failed"
    assert evaluate([o], [], {}, T0 + 2, Rules(), {("failure", "r1")}) == []
    assert evaluate([o], [], {}, T0 + 2, Rules(on_failure=False), set()) == []


def test_usual_is_the_median_of_the_latest_twenty_completed_runs_of_the_same_app_and_kind():
    old = [done(f"old{i}", 1000, ended=T0 - 10_000 - i) for i in range(10)]
    recent = [done(f"new{i}", 10 + i, ended=T0 - i) for i in range(20)]
    other = [done("x", 5000, app="other"), done("y", 5000, kind="pipeline")]
    usual, n = usual_seconds([*old, *recent, *other], "flight", "app")
    assert (usual, n) == (19.5, 20)  # median of 10..29; the old slow ones are beyond the 20
    assert usual_seconds(recent[:2], "flight", "app", min_history=3) == (None, 2)
    assert usual_seconds(recent[:3], "flight", "app", exclude="new0", min_history=3) == (None, 2)


def test_a_running_run_past_factor_times_usual_alerts_once():
    rules = Rules(duration_factor=3.0, min_history=3)
    o = orch("r", "running", started=T0, lease_expires=T0 + 1000)
    assert evaluate([o], HISTORY, {}, T0 + 33, rules, set()) == []  # 33 s = 3 x 11 s: not more
    [a] = evaluate([o], HISTORY, {}, T0 + 34, rules, set())
    assert (a.rule, a.subject, a.severity, a.status) == ("slow", "r", "warning", "running")
    assert a.details == {"seconds": 34.0, "usual_seconds": 11.0, "factor": 3.0, "ratio": 3.091, "history_runs": 3}
    assert a.message == "run r of flight has been running for 34.0 s, 3.1x its usual 11.0 s (factor 3, median of 3 runs)"
    assert evaluate([o], HISTORY, {}, T0 + 100, rules, {("slow", "r")}) == []


def test_slow_needs_enough_history_and_a_live_driver_and_a_factor():
    o = orch("r", "running", started=T0)
    assert evaluate([o], HISTORY[:2], {}, T0 + 1000, Rules(min_history=3), set()) == []
    assert len(evaluate([o], HISTORY[:2], {}, T0 + 1000, Rules(min_history=2), set())) == 1
    dead = orch("d", "running", started=T0, lease_expires=T0 + 5)
    assert evaluate([dead], HISTORY, {}, T0 + 1000, Rules(), set()) == []  # its driver vanished
    assert evaluate([o], HISTORY, {}, T0 + 1000, Rules(duration_factor=0), set()) == []
    other = orch("z", "running", app="other", started=T0)
    assert evaluate([other], HISTORY, {}, T0 + 1000, Rules(), set()) == []  # no history of its own


def test_an_ended_run_that_took_too_long_alerts_once_and_is_not_its_own_history():
    slow_done = done("s", 100, ended=T0 + 200)
    [a] = evaluate([slow_done], [*HISTORY, slow_done], {}, T0 + 300, Rules(), set())
    assert a.rule == "slow" and a.status == "completed" and a.details["usual_seconds"] == 11.0
    assert "took 100.0 s, 9.1x its usual 11.0 s" in a.message
    failed_slow = orch("f", "failed", started=T0, ended=T0 + 100, error="boom")
    assert [x.rule for x in evaluate([failed_slow], HISTORY, {}, T0 + 200, Rules(), set())] == ["failure", "slow"]
    assert evaluate([done("ok", 12, ended=T0 + 50)], HISTORY, {}, T0 + 60, Rules(), set()) == []


GATE_FAILED = {"passed": False, "failed": ["max_unhealthy"], "status": "degraded",
               "reasons": ["1 unhealthy worker(s) > max_unhealthy 0"], "unhealthy_count": 1,
               "workers_unhealthy": ["tcp://127.0.0.1:4001 (stale-heartbeat(12s))"], "health_path": "/w/h.json"}


def test_health_gate_alerts_once_per_failing_episode():
    [a] = evaluate([], [], {"flight": GATE_FAILED, "ok": {"passed": True}}, T0, Rules(), set())
    assert (a.rule, a.app, a.subject, a.kind, a.status) == ("health_gate", "flight", "flight@2027-01-15T08:00:00Z",
                                                            "service", "degraded")
    assert a.message == "service health gate of flight failed: 1 unhealthy worker(s) > max_unhealthy 0"
    assert a.details["failed"] == ["max_unhealthy"] and a.links == {"health": "/w/h.json"}
    # while the episode is open: nothing new; it closes when the gate passes or the service stops
    open_ = {("health_gate", "flight"), ("health_gate", "flight@2027-01-15T08:00:00Z")}
    assert evaluate([], [], {"flight": GATE_FAILED}, T0 + 5, Rules(), open_) == []
    assert closed_episodes({"flight": GATE_FAILED}, open_) == []
    assert closed_episodes({"flight": {"passed": True}}, open_) == ["flight"]
    assert closed_episodes({}, open_) == ["flight"]
    # after it closed, a new failure is a new episode with its own subject
    [b] = evaluate([], [], {"flight": GATE_FAILED}, T0 + 60, Rules(), {("health_gate", "flight@2027-01-15T08:00:00Z")})
    assert b.subject == "flight@2027-01-15T08:01:00Z"
    assert evaluate([], [], {"flight": GATE_FAILED}, T0, Rules(health_gate=False), set()) == []
