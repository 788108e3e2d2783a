"""HTTP routes for schedules, backfills and alerts, over the same library calls as the
``switchyard schedule|backfill|alerts`` commands (included by :func:`switchyard.api.create_app`,
so the same token rules apply).

Routes::

    GET    /schedules?app=                     every schedule, its last trigger; the scheduler's status
    POST   /schedules                          body: {"app": ..., "every"|"cron"|"watch": ..., ...} -> 201
    GET    /schedules/{id}?triggers=20         one schedule with its newest triggers
    POST   /schedules/{id}/pause|resume
    DELETE /schedules/{id}
    GET    /backfills?app=&limit=50            newest first, with progress
    GET    /backfills/{id}
    POST   /backfills/{id}/stop                stop launching (launched runs go on)
    GET    /alerts?app=&limit=100              newest first, with each channel's delivery

An unknown schedule or backfill id is a 404; a bad request body names the key (400).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Query

from switchyard.exceptions import ScheduleError
from switchyard.runs.store import RunStore

def _schedule_keys() -> list[str]:
    """The keys a POST /schedules body may hold besides ``app``: the keywords of schedule.actions.add."""
    from switchyard.schedule import actions

    return [n for n in inspect.signature(actions.add).parameters if n not in ("app_env", "now")]


def router(store: RunStore) -> APIRouter:
    """The routes over ``store``'s workspace (the folder that holds the store)."""
    from switchyard.schedule import actions
    from switchyard.schedule import backfill as backfills

    home = Path(store.path).parent
    r = APIRouter()

    @r.get("/schedules")
    def list_schedules(app: str | None = None) -> dict[str, Any]:
        return {"schedules": actions.listing(home, app=app), "scheduler": actions.scheduler_status(home)}

    @r.post("/schedules", status_code=201)
    def add_schedule(body: dict = Body(...)) -> dict[str, Any]:
        from switchyard.app import AppEnv

        keys = _schedule_keys()
        unknown = sorted(set(body) - set(keys) - {"app"})
        if unknown:
            raise HTTPException(400, f"unknown key '{unknown[0]}' in the schedule: use app and any of "
                                     f"{', '.join(keys)}")
        if not isinstance(body.get("app"), str) or not body["app"]:
            raise HTTPException(400, "the schedule needs an 'app': e.g. {\"app\": \"flight\", \"every\": 3600}")
        kw = {k: v for k, v in body.items() if k != "app"}
        return actions.add(AppEnv(body["app"], workspace=home), **kw)

    @r.get("/schedules/{sid}")
    def show_schedule(sid: str, triggers: int = Query(20, ge=1, le=1000)) -> dict[str, Any]:
        return actions.detail(sid, home, triggers=triggers)

    @r.post("/schedules/{sid}/{change}")
    def change_schedule(sid: str, change: str) -> dict[str, Any]:
        if change not in ("pause", "resume"):
            raise HTTPException(404, f"unknown schedule command '{change}': use pause or resume")
        return getattr(actions, change)(sid, home)

    @r.delete("/schedules/{sid}")
    def delete_schedule(sid: str) -> dict[str, Any]:
        return actions.delete(sid, home)

    def one_backfill(call, bid: str) -> dict[str, Any]:
        try:
            return call(store, bid)
        except ScheduleError as e:  # the only refusal of get/stop: no such backfill
            raise HTTPException(404, str(e)) from None

    @r.get("/backfills")
    def list_backfills(app: str | None = None, limit: int = Query(50, ge=1, le=1000)) -> dict[str, Any]:
        rows = backfills.list_backfills(store, app=app, limit=limit)
        return {"backfills": rows, "count": len(rows)}

    @r.get("/backfills/{bid}")
    def show_backfill(bid: str) -> dict[str, Any]:
        return one_backfill(backfills.get_backfill, bid)

    @r.post("/backfills/{bid}/stop")
    def stop_backfill(bid: str) -> dict[str, Any]:
        return one_backfill(backfills.stop_backfill, bid)

    @r.get("/alerts")
    def list_alerts(app: str | None = None, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        from switchyard.alerts import list_alerts as alerts

        rows = alerts(store, limit=limit, app=app)
        return {"alerts": rows, "count": len(rows)}

    return r
