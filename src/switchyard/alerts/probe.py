"""The health gate of every started service, judged read-only for the ``health_gate`` rule.

``switchyard serve APP health`` restarts unhealthy loops as a side effect; an alert check
must not. So this probe only reads what the service leaves in the workspace
(``service/<app>/state.json``, ``heartbeats/<slot>.json``) and asks whether the service's
scheduler accepts connections, then applies the same functions as the service itself
(:func:`switchyard.service.health.worker_health` and ``evaluate_gate``) with the app's
``[cluster.service_health]``.

A loop that ended, raised or lost its worker stops heartbeating, so here it shows as
``stale-heartbeat`` (within the heartbeat timeout) instead of ``loop-finished`` /
``loop-error``; a scheduler that does not answer makes every loop ``lost``. No Dask client
is opened, so a check stays cheap when the scheduler calls it every few seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from switchyard import workspace
from switchyard.exceptions import SwitchyardError
from switchyard.service.health import (
    DEFAULT_HEARTBEAT_TIMEOUT, LoopSeen, check_gate_settings, evaluate_gate, worker_health)

Answers = Callable[[str], bool]


def _answers(address: str) -> bool:
    from switchyard.cluster.warm import answers

    return answers(address, timeout=0.5)


def started_services(home: Path | str | None = None) -> dict[str, Path]:
    """App -> its ``state.json`` for every service recorded in the workspace (started or not)."""
    root = Path(home or workspace.home()) / "service"
    if not root.is_dir():
        return {}
    return {p.parent.name: p for p in sorted(root.glob("*/state.json"))}


def service_health(home: Path | str | None = None, now: float | None = None,
                   answers: Answers | None = None) -> dict[str, dict[str, Any]]:
    """App -> gate verdict for every app whose service is started (``state.json`` says running).

    The verdict is :func:`switchyard.service.health.evaluate_gate`'s (``passed``, ``failed``,
    ``reasons``, ...) plus ``status`` (running / degraded), ``scheduler``,
    ``workers_unhealthy`` and ``health_path``. A service whose state or settings cannot be
    read fails its gate with that error as the reason (an operator has to look at it).
    """
    import time

    now = time.time() if now is None else now
    home = Path(home or workspace.home())
    out: dict[str, dict[str, Any]] = {}
    for app, path in started_services(home).items():
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            out[app] = _broken(path, f"cannot read {path} ({e}): stop the service and start it again")
            continue
        if not isinstance(state, dict) or state.get("status") != "running":
            continue
        try:
            out[app] = judge_service(path.parent, state, now, answers or _answers)
        except (SwitchyardError, KeyError, TypeError, ValueError) as e:
            out[app] = _broken(path, f"cannot judge the service of '{app}' ({e})")
    return out


def _broken(path: Path, reason: str) -> dict[str, Any]:
    return {"passed": False, "failed": ["state"], "reasons": [reason], "status": "degraded",
            "health_path": str(path.parent / "health.json")}


def judge_service(service_dir: Path, state: dict, now: float, answers: Answers) -> dict[str, Any]:
    """The gate verdict of one started service from its state, heartbeat files and scheduler."""
    from switchyard.settings import load_settings

    settings_path = Path(state["spec"]["app_dir"]) / "app_settings.toml"
    thresholds = check_gate_settings(load_settings(settings_path).cluster.service_health, settings_path)
    reachable = answers(state["scheduler"])
    seen = []
    for slot, loop in state.get("loops", {}).items():
        seen.append(LoopSeen(loop["worker"], "running" if reachable else "lost",
                             _beat_at(service_dir, slot, loop), float(loop["started_at"])))
    timeout = float(state.get("heartbeat_timeout_sec", DEFAULT_HEARTBEAT_TIMEOUT))
    rows = worker_health(seen, now=now, timeout=timeout)
    restarted = {r["worker"] for r in state.get("restarts", [])}
    gate = evaluate_gate(rows, len(restarted), thresholds)
    if not reachable:
        gate["reasons"] = [f"the scheduler at {state['scheduler']} does not answer", *gate["reasons"]]
    unhealthy = [f"{r['worker']} ({r['reason']})" for r in rows if not r["healthy"]]
    return {**gate, "status": "degraded" if unhealthy or not reachable else "running",
            "scheduler": state["scheduler"], "workers_unhealthy": unhealthy,
            "health_path": str(service_dir / "health.json")}


def _beat_at(service_dir: Path, slot: str, loop: dict) -> float | None:
    """Time of the slot's last heartbeat from this loop (an earlier loop's does not count)."""
    try:
        beat = json.loads((service_dir / "heartbeats" / f"{slot}.json").read_text())
    except (OSError, ValueError):
        return None
    return float(beat["at"]) if isinstance(beat, dict) and beat.get("key") == loop.get("key") else None
