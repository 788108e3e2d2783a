"""Health of the service's worker loops, and the health gate.

Pure functions: what a status call observed goes in (each loop's Dask task state
and the time of its last heartbeat), rows and a verdict come out. The caller
passes ``now`` so that tests decide the clock.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from switchyard.exceptions import SettingsError

SCHEMA = "agi.service.health.v1"
DEFAULT_HEARTBEAT_TIMEOUT = 10.0
GATE_DEFAULTS = {"allow_idle": False, "max_unhealthy": 0, "max_restart_rate": 0.25}
COLUMNS = ("worker", "healthy", "reason", "future_state", "heartbeat_state", "heartbeat_age_sec")
RESTART_WINDOW = 600.0  # seconds over which the watcher counts restarts against max_restart_rate
REASONS = ("loop-finished", "loop-error", "loop-cancelled", "missing-heartbeat", "stale-heartbeat")

# Dask task state of a loop -> the reason it is unhealthy (None: the loop runs).
_FUTURE_REASONS = {"running": None, "pending": None, "finished": "loop-finished", "error": "loop-error",
                   "cancelled": "loop-cancelled", "lost": "loop-cancelled"}


@dataclass(frozen=True)
class LoopSeen:
    """What a status call saw of one loop.

    Attributes:
        worker: The Dask worker address the loop runs on.
        future_state: running, pending, finished, error, cancelled or lost (its worker left).
        heartbeat_at: Epoch seconds of the loop's last heartbeat, None when it never beat.
        started_at: Epoch seconds when the loop was submitted (a loop gets one timeout to
            send its first heartbeat before it counts as missing).
    """

    worker: str
    future_state: str
    heartbeat_at: float | None
    started_at: float


def judge(seen: LoopSeen, now: float, timeout: float = DEFAULT_HEARTBEAT_TIMEOUT) -> dict[str, Any]:
    """One health row (see ``COLUMNS``) for one loop."""
    if seen.future_state not in _FUTURE_REASONS:
        raise ValueError(f"unknown future state {seen.future_state!r}: use one of {sorted(_FUTURE_REASONS)}")
    reason = _FUTURE_REASONS[seen.future_state]
    if seen.heartbeat_at is None:
        age = None
        young = now - seen.started_at <= timeout
        beat = "starting" if young else "missing"
        if reason is None and not young:
            reason = "missing-heartbeat"
    else:
        age = round(max(0.0, now - seen.heartbeat_at), 3)
        beat = "fresh" if age <= timeout else "stale"
        if reason is None and beat == "stale":
            reason = f"stale-heartbeat({int(age)}s)"
    return {"worker": seen.worker, "healthy": reason is None, "reason": reason or "",
            "future_state": seen.future_state, "heartbeat_state": beat, "heartbeat_age_sec": age}


def worker_health(seen: list[LoopSeen], now: float | None = None,
                  timeout: float = DEFAULT_HEARTBEAT_TIMEOUT) -> list[dict[str, Any]]:
    """Health rows of every loop, sorted by worker address."""
    now = time.time() if now is None else now
    return [judge(s, now, timeout) for s in sorted(seen, key=lambda s: s.worker)]


def reason_kind(reason: str) -> str:
    """``stale-heartbeat(12s)`` -> ``stale-heartbeat``; other reasons as they are."""
    return reason.split("(", 1)[0]


def restart_allowed(restarts: list[dict[str, Any]], loops: int, max_rate: float, now: float,
                    window: float = RESTART_WINDOW) -> bool:
    """Whether the watcher may restart one more loop under the gate's ``max_restart_rate``.

    The restarts of the last ``window`` seconds plus this one, over the number of loops, must not
    exceed ``max_rate``; one restart per window is always allowed, so that a single failure heals.
    Beyond that a crash-looping loop stays down and the gate fails, for an operator to look.
    """
    recent = sum(1 for r in restarts if now - float(r["at"]) < window)
    return recent == 0 or (recent + 1) / max(1, loops) <= max_rate


def check_gate_settings(raw: dict[str, Any] | None, path: Any = None) -> dict[str, Any]:
    """``[cluster.service_health]`` with defaults filled in; a bad value raises SettingsError."""
    values = {**GATE_DEFAULTS, **(raw or {})}
    unknown = sorted(set(values) - set(GATE_DEFAULTS))
    if unknown:
        raise SettingsError(path, f"cluster.service_health.{unknown[0]}", "unknown key",
                            f"use only {', '.join(GATE_DEFAULTS)}")
    if not isinstance(values["allow_idle"], bool):
        raise SettingsError(path, "cluster.service_health.allow_idle", f"{values['allow_idle']!r} is not "
                            "true/false", "write allow_idle = true or false")
    mu = values["max_unhealthy"]
    if isinstance(mu, bool) or not isinstance(mu, int) or mu < 0:
        raise SettingsError(path, "cluster.service_health.max_unhealthy", f"{mu!r} is not a whole number "
                            ">= 0", "write e.g. max_unhealthy = 0")
    rate = values["max_restart_rate"]
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate:
        raise SettingsError(path, "cluster.service_health.max_restart_rate", f"{rate!r} is not a number "
                            ">= 0", "write e.g. max_restart_rate = 0.25")
    return {"allow_idle": values["allow_idle"], "max_unhealthy": int(mu), "max_restart_rate": float(rate)}


def evaluate_gate(rows: list[dict[str, Any]], restarted_count: int,
                  thresholds: dict[str, Any] | None = None) -> dict[str, Any]:
    """The gate's verdict on the health rows.

    The restart rate is the number of restarted workers over the number of running ones.

    Returns:
        ``{"passed", "failed": [threshold names], "reasons": [one line each], "thresholds",
        "unhealthy_count", "restart_rate"}``.
    """
    t = check_gate_settings(thresholds)
    running = len(rows)
    unhealthy = sum(1 for r in rows if not r["healthy"])
    rate = restarted_count / running if running else 0.0
    failed: list[str] = []
    reasons: list[str] = []
    if running == 0 and not t["allow_idle"]:
        failed.append("allow_idle")
        reasons.append("no worker loop runs and allow_idle is false")
    if unhealthy > t["max_unhealthy"]:
        failed.append("max_unhealthy")
        reasons.append(f"{unhealthy} unhealthy worker(s) > max_unhealthy {t['max_unhealthy']}")
    if rate > t["max_restart_rate"]:
        failed.append("max_restart_rate")
        reasons.append(f"restart rate {rate:.3g} > max_restart_rate {t['max_restart_rate']:g}")
    return {"passed": not failed, "failed": failed, "reasons": reasons, "thresholds": t,
            "unhealthy_count": unhealthy, "restart_rate": round(rate, 6)}


def build_payload(app: str, status: str, rows: list[dict[str, Any]], restarts: list[dict[str, Any]],
                  thresholds: dict[str, Any] | None = None, timeout: float = DEFAULT_HEARTBEAT_TIMEOUT,
                  now: float | None = None, cleanup: dict[str, list[str]] | None = None,
                  held: list[dict[str, Any]] | None = None, watcher: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``agi.service.health.v1`` snapshot (see docs/service.md for every field).

    Args:
        app: The app's name.
        status: running, stopped or degraded (what the service action found).
        rows: Health rows from :func:`worker_health`, after any restart.
        restarts: Every restart of this service: ``{"worker", "reason", "at"}`` dicts.
        thresholds: ``[cluster.service_health]``.
        timeout: Heartbeat timeout in seconds.
        now: Epoch seconds of the snapshot (default: the clock).
        cleanup: What the artifact cleanup removed, per kind.
        held: Restarts the watcher holds back under ``max_restart_rate``: ``{"worker", "slot", "reason",
            "at", "why"}`` dicts.
        watcher: The watcher's lease (``running``, ``pid``, ``host``, ``started_at``, ``heartbeat_at``).
    """
    now = time.time() if now is None else now
    running = [r["worker"] for r in rows]
    healthy = [r["worker"] for r in rows if r["healthy"]]
    unhealthy = [r["worker"] for r in rows if not r["healthy"]]
    restarted = sorted({r["worker"] for r in restarts})
    reasons: dict[str, int] = {}
    for r in restarts:
        kind = reason_kind(r["reason"])
        reasons[kind] = reasons.get(kind, 0) + 1
    gate = evaluate_gate(rows, len(restarted), thresholds)
    return {
        "schema": SCHEMA,
        "timestamp": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"),
        "app": app,
        "status": status,
        "workers_running": running,
        "workers_running_count": len(running),
        "workers_healthy": healthy,
        "workers_healthy_count": len(healthy),
        "workers_unhealthy": unhealthy,
        "workers_unhealthy_count": len(unhealthy),
        "workers_restarted": restarted,
        "workers_restarted_count": len(restarted),
        "restarts_total": len(restarts),
        "restart_reasons": dict(sorted(reasons.items())),
        "restarts": [dict(r) for r in restarts],
        "heartbeat_timeout_sec": float(timeout),
        "worker_health": [dict(r) for r in rows],
        "gate": gate,
        "cleanup": {k: len(v) for k, v in (cleanup or {}).items()},
        "restarts_held": [dict(r) for r in held or []],
        "watcher": dict(watcher or {"running": False}),
    }
