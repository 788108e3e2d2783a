"""The alert rules, as pure functions: what the store and the services show goes in, the
alerts to raise come out. No I/O and no clock: the caller passes ``now``.

Each alert has a key ``(rule, subject)``; a key already recorded never alerts again,
so a condition alerts once however often the check runs:

- ``failure``: an orchestration (app run or pipeline run) whose status is ``failed``;
  subject: its id. Interrupted and cancelled runs are not failures.
- ``slow``: an orchestration still running after ``duration_factor`` times the median
  duration of the last completed runs of the same app and kind (at least ``min_history``
  of them), or one that ended (completed or failed) after taking that long; subject: its id.
  Durations are wall-clock, ``ended_at - started_at``.
- ``health_gate``: the health gate of an app's started service fails. One alert per
  failing episode: the episode is open while the gate keeps failing and closes when it
  passes again (or the service stops); ``already`` holds ``("health_gate", app)`` for
  every open episode. Subject: ``<app>@<UTC time the episode began>``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from switchyard.alerts.config import Rules
from switchyard.runs.state import Orchestration, Status

SEVERITY = {"failure": "error", "slow": "warning", "health_gate": "error", "test": "info"}
HISTORY = 20  # completed runs that make "usual"
_ENDED_SLOW = (Status.COMPLETED, Status.FAILED)
_RUNNING = (Status.RUNNING, Status.PAUSING)


@dataclass(frozen=True)
class NewAlert:
    """An alert to record and deliver (``payload`` adds its id and time)."""

    rule: str
    app: str | None
    subject: str
    message: str
    title: str
    orchestration_id: str | None = None
    kind: str | None = None
    status: str | None = None
    details: dict = field(default_factory=dict)
    links: dict = field(default_factory=dict)
    origin: dict | None = None

    @property
    def severity(self) -> str:
        return SEVERITY[self.rule]

    @property
    def key(self) -> tuple[str, str]:
        return self.rule, self.subject

    def payload(self, alert_id: int | None, at: float) -> dict[str, Any]:
        """The alert's JSON document (schema 1, every field in docs/alerts.md)."""
        return {"schema": 1, "id": alert_id, "at": iso(at), "rule": self.rule, "severity": self.severity,
                "app": self.app, "subject": self.subject, "orchestration_id": self.orchestration_id,
                "kind": self.kind, "status": self.status, "title": self.title, "message": self.message,
                "details": dict(self.details), "links": {"log": None, **self.links}, "origin": self.origin}


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def duration(o: Orchestration, now: float | None = None) -> float | None:
    """Wall-clock seconds of a run: until it ended, or until ``now`` while it runs."""
    if o.started_at is None:
        return None
    end = o.ended_at if o.ended_at is not None else now
    return None if end is None else max(0.0, end - o.started_at)


def usual_seconds(history: Iterable[Orchestration], app: str, kind: str, exclude: str | None = None,
                  min_history: int = 1) -> tuple[float | None, int]:
    """Median duration of the last :data:`HISTORY` completed runs of ``app`` + ``kind``
    (``exclude`` left out), and how many there were; None when fewer than ``min_history``."""
    return _usual(_by_key(history).get((app, kind), []), exclude, min_history)


def _by_key(history: Iterable[Orchestration]) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """(app, kind) -> (id, seconds) of its completed runs, newest first."""
    groups: dict[tuple[str, str], list[tuple[float, str, float]]] = {}
    for o in history:
        seconds = duration(o)
        if o.status is Status.COMPLETED and seconds is not None:
            groups.setdefault((o.app, o.kind), []).append((o.ended_at or 0.0, o.id, seconds))
    return {k: [(i, s) for _, i, s in sorted(v, reverse=True)] for k, v in groups.items()}


def _usual(runs: list[tuple[str, float]], exclude: str | None, min_history: int) -> tuple[float | None, int]:
    seconds = [s for i, s in runs[:HISTORY + 1] if i != exclude][:HISTORY]
    if len(seconds) < max(1, min_history):
        return None, len(seconds)
    return float(statistics.median(seconds)), len(seconds)


def _log_link(o: Orchestration) -> dict[str, Any]:
    return {"log": str(Path(o.run_dir) / "run.log") if o.run_dir else None}


def _first_line(text: str | None, limit: int = 200) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _fmt(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _origin(o: Orchestration) -> dict | None:
    origin = (o.options or {}).get("origin")
    return dict(origin) if isinstance(origin, dict) else None


def failure_alert(o: Orchestration) -> NewAlert:
    error = _first_line(o.error) or "no error recorded"
    what = "pipeline run" if o.kind == "pipeline" else "run"
    return NewAlert(
        rule="failure", app=o.app, subject=o.id, orchestration_id=o.id, kind=o.kind, status=o.status.value,
        title=f"{what} {o.id} failed", message=f"{what} {o.id} of {o.app} failed: {error}",
        details={"error": o.error, "seconds": duration(o), "completed_batches": o.completed_batches,
                 "total_batches": o.total_batches},
        links=_log_link(o), origin=_origin(o))


def slow_alert(o: Orchestration, elapsed: float, usual: float, runs: int, factor: float) -> NewAlert:
    what = "pipeline run" if o.kind == "pipeline" else "run"
    ratio = elapsed / usual if usual > 0 else float("inf")
    verb = "has been running for" if o.status in _RUNNING else "took"
    return NewAlert(
        rule="slow", app=o.app, subject=o.id, orchestration_id=o.id, kind=o.kind, status=o.status.value,
        title=f"{what} {o.id} slow ({ratio:.1f}x usual)",
        message=f"{what} {o.id} of {o.app} {verb} {_fmt(elapsed)}, {ratio:.1f}x its usual {_fmt(usual)} "
                f"(factor {factor:g}, median of {runs} runs)",
        details={"seconds": round(elapsed, 3), "usual_seconds": round(usual, 3), "factor": factor,
                 "ratio": round(ratio, 3), "history_runs": runs},
        links=_log_link(o), origin=_origin(o))


def health_alert(app: str, verdict: Mapping[str, Any], now: float) -> NewAlert:
    reasons = list(verdict.get("reasons") or []) or ["the gate failed"]
    return NewAlert(
        rule="health_gate", app=app, subject=f"{app}@{iso(now)}", kind="service",
        status=str(verdict.get("status") or "degraded"), title="service health gate failed",
        message=f"service health gate of {app} failed: {'; '.join(reasons)}",
        details={"reasons": reasons, "failed": list(verdict.get("failed") or []),
                 **{k: verdict[k] for k in ("unhealthy_count", "restart_rate", "thresholds", "workers_unhealthy",
                                            "scheduler") if k in verdict}},
        links={"health": verdict.get("health_path")})


def evaluate(orchestrations: Iterable[Orchestration], history: Iterable[Orchestration],
             health: Mapping[str, Mapping[str, Any]], now: float, rules: Rules,
             already: set[tuple[str, str]] | frozenset[tuple[str, str]]) -> list[NewAlert]:
    """The alerts to raise now.

    Args:
        orchestrations: Runs to judge (failed, running, recently ended); others are ignored.
        history: Completed runs that make the usual durations (the latest per app and kind).
        health: App -> health gate verdict of its started service (``passed``, ``reasons``,
            ``failed``, ...); apps without a started service are absent.
        now: Epoch seconds.
        rules: Which rules are on, and their thresholds.
        already: Keys ``(rule, subject)`` already recorded, plus ``("health_gate", app)``
            for each open health episode.

    Returns:
        New alerts, at most one per key, in a stable order (failures, slow runs, health).
    """
    usual_runs = _by_key(history)
    out: dict[tuple[str, str], NewAlert] = {}
    orchs = sorted(orchestrations, key=lambda o: (o.created_at, o.id))
    if rules.on_failure:
        for o in orchs:
            if o.status is Status.FAILED and ("failure", o.id) not in already:
                out.setdefault(("failure", o.id), failure_alert(o))
    if rules.duration_factor > 0:
        for o in orchs:
            if ("slow", o.id) in already or ("slow", o.id) in out:
                continue
            if o.status in _RUNNING:
                if o.lease_expires is not None and o.lease_expires < now:
                    continue  # its driver vanished: the sweep will call it interrupted, not slow
            elif o.status not in _ENDED_SLOW:
                continue
            elapsed = duration(o, now)
            if elapsed is None:
                continue
            usual, runs = _usual(usual_runs.get((o.app, o.kind), []), o.id, rules.min_history)
            if usual is not None and elapsed > rules.duration_factor * usual:
                out[("slow", o.id)] = slow_alert(o, elapsed, usual, runs, rules.duration_factor)
    if rules.health_gate:
        for app in sorted(health):
            verdict = health[app]
            if not verdict.get("passed", True) and ("health_gate", app) not in already:
                alert = health_alert(app, verdict, now)
                out[alert.key] = alert
    return list(out.values())


def closed_episodes(health: Mapping[str, Mapping[str, Any]],
                    already: set[tuple[str, str]] | frozenset[tuple[str, str]]) -> list[str]:
    """Apps whose open health episode ends now: their gate passes, or their service stopped."""
    open_apps = sorted(subject for rule, subject in already if rule == "health_gate" and "@" not in subject)
    return [app for app in open_apps if app not in health or health[app].get("passed", True)]
