"""The Backfill section of the Orchestrations page: one run per value of an app's arg.

The form builds the same request as ``switchyard backfill run``; "Dry run" shows what
:func:`switchyard.schedule.backfill.plan_backfill` decides per value, "Launch" runs
:func:`switchyard.schedule.backfill.run_backfill` as a background job of the workbench
(``ui_jobs``, kind ``backfill``), so the page never waits and a reload re-attaches to it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from switchyard import ui_jobs, workspace
from switchyard.app import AppEnv, discover_apps, load_app
from switchyard.exceptions import SwitchyardError
from switchyard.runs.store import RunStore
from switchyard.schedule.backfill import list_backfills, plan_backfill, run_backfill, stop_backfill
from switchyard.schedule.backfill_keys import DATE, INT, backfill_values, check_concurrency, key_kind, preflight
from switchyard.ui.common import job_badge, show_error
from switchyard.ui.log_panel import live, log_view

KIND = "backfill"
ONLY = ("all", "missing", "failed", "missing,failed")
SETTINGS_MODE = "from settings"


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def _request(app_env: AppEnv) -> dict[str, Any] | None:
    """The form; returns the request (key, values source, concurrency, only, mode) or None."""
    try:
        app_cls = load_app(app_env)
    except SwitchyardError as e:
        show_error(e)
        return None
    fields = list(app_cls.Args.model_fields)
    if not fields:
        st.info(f"App '{app_env.app}' has no args to backfill over.")
        return None
    key = st.selectbox("Key (the arg each run gets its own value of)", fields, key="bf-key")
    kind = key_kind(app_cls, key)
    req: dict[str, Any] = {"key": key}
    ranged = kind in (INT, DATE) and st.radio(
        "Values", ["range", "list"], horizontal=True, key=f"bf-source-{kind}") == "range"
    if ranged:
        cols = st.columns(3)
        if kind == DATE:
            req["start"] = str(cols[0].date_input("From", key="bf-from-date"))
            req["end"] = str(cols[1].date_input("To (inclusive)", key="bf-to-date"))
            req["step"] = cols[2].number_input("Step (days)", min_value=1, value=1, key="bf-step-date")
        else:
            req["start"] = cols[0].number_input("From", value=1, step=1, key="bf-from-int")
            req["end"] = cols[1].number_input("To (inclusive)", value=10, step=1, key="bf-to-int")
            req["step"] = cols[2].number_input("Step", min_value=1, value=1, key="bf-step-int")
    else:
        req["keys"] = st.text_input("Values (comma-separated)", key="bf-keys", placeholder="a,b,c")
    cols = st.columns(3)
    req["concurrency"] = cols[0].number_input("Concurrency", min_value=1, value=3, step=1, key="bf-conc")
    req["only"] = cols[1].selectbox("Only", ONLY, key="bf-only",
                                    help="missing: no completed run; failed: newest run failed. "
                                         "A value with a run in progress is never relaunched.")
    mode = cols[2].selectbox("Mode", [SETTINGS_MODE, *range(16)], key="bf-mode")
    req["mode"] = None if mode == SETTINGS_MODE else int(mode)
    return req


def _values(app_env: AppEnv, req: dict[str, Any]) -> list[Any]:
    return backfill_values(app_env, req["key"], start=req.get("start"), end=req.get("end"), step=req.get("step"),
                           keys=req.get("keys"))


def _dry_run(app_env: AppEnv, req: dict[str, Any], store: RunStore) -> None:
    values = _values(app_env, req)
    preflight(app_env, req["key"], values, req["concurrency"], mode=req["mode"])
    items = plan_backfill(app_env, req["key"], values, req["only"], store)
    launch = sum(1 for i in items if i.action == "launch")
    st.caption(f"{launch} of {len(items)} values would be launched, at most {req['concurrency']} at once")
    st.dataframe(pd.DataFrame([{"value": str(i.value), "action": i.action, "reason": i.reason} for i in items]),
                 hide_index=True, width="stretch", key="bf-dry-table")


def _launch(app_env: AppEnv, req: dict[str, Any]) -> None:
    # A click callback: validation errors are shown at once, before any job starts.
    try:
        values = _values(app_env, req)
        concurrency = check_concurrency(req["concurrency"])
        preflight(app_env, req["key"], values, concurrency, mode=req["mode"])
        ui_jobs.start_call(app_env, KIND, lambda on_line: run_backfill(
            app_env, req["key"], values, concurrency=concurrency, only=req["only"], mode=req["mode"],
            on_line=on_line), summarize=lambda summary: summary)
    except SwitchyardError as e:
        st.session_state["bf-launch-error"] = e


def backfill_frame(rows: list[dict]) -> pd.DataFrame:
    """Backfills as a table: id, status, app, key, values, launched, outcomes, peak, progress."""
    return pd.DataFrame({
        "id": [r["id"] for r in rows], "status": [r["status"] for r in rows], "app": [r["app"] for r in rows],
        "key": [r["key"] for r in rows], "values": [len(r["values"]) for r in rows],
        "launched": [f"{len(r['launched'])}/{r['to_launch']}" for r in rows],
        "completed": [r["completed"] for r in rows], "failed": [r["failed"] for r in rows],
        "unfinished": [r["active"] for r in rows],
        "peak": [f"{r['peak_concurrency']}/{r['concurrency']}" for r in rows],
        "created": [_when(r["created_at"]) for r in rows], "progress": [r["progress"] for r in rows],
    })


def _table(store: RunStore) -> None:
    rows = list_backfills(store, limit=50)
    if not rows:
        st.caption("No backfills yet.")
        return
    st.dataframe(backfill_frame(rows), hide_index=True, width="stretch", key="bf-list",
                 column_config={"progress": st.column_config.ProgressColumn(
                     "progress", min_value=0.0, max_value=1.0, format="percent")})
    running = [r["id"] for r in rows if r["status"] == "running" and not r["stop_requested"]]
    if running:
        cols = st.columns([3, 1], vertical_alignment="bottom")
        bid = cols[0].selectbox("Running backfill", running, key="bf-stop-pick")
        if cols[1].button("Stop launching", key="bf-stop", help="launched runs go on; nothing new starts"):
            stop_backfill(store, bid)
            st.rerun()


def render_backfill_section(home: Path | str | None = None, apps_dir: Path | str | None = None) -> None:
    """The Backfill section: the request form, Dry run, Launch, the job's log and every backfill."""
    st.subheader("Backfill")
    apps_path = AppEnv("_", apps_dir=apps_dir).apps_path
    names = discover_apps(apps_path)
    if not names:
        st.info(f"No apps in {apps_path}.")
        return
    wanted = st.session_state.get("app")
    app = st.selectbox("App", names, index=names.index(wanted) if wanted in names else 0, key="bf-app")
    app_env = AppEnv(app, apps_dir=apps_dir, workspace=home)
    store = RunStore((Path(home) if home else workspace.home()) / "switchyard.db")
    req = _request(app_env)
    if req is not None:
        state = ui_jobs.job_state(app_env, KIND)
        busy = state is not None and state.is_running
        cols = st.columns(2)
        dry = cols[0].button("Dry run", key="bf-dry")
        cols[1].button("Launch", type="primary", key="bf-go", disabled=busy, on_click=_launch, args=(app_env, req),
                       help="runs in the background; runs already launched go on if the workbench stops")
        failed = st.session_state.pop("bf-launch-error", None)
        if failed is not None:
            show_error(failed)
        if dry:
            try:
                _dry_run(app_env, req, store)
            except SwitchyardError as e:
                show_error(e)

    def panel() -> None:
        now = ui_jobs.job_state(app_env, KIND)
        if now is not None:
            cols = st.columns([1, 6], vertical_alignment="center")
            with cols[0]:
                job_badge(now.status)
            cols[1].caption(f"backfill job of '{app}': {now.status} for {now.seconds:.0f} s"
                            + (f": {now.error}" if now.error else ""))
            log_view(ui_jobs.read_log(now, 200), key="bf-log", height=200)
        _table(store)

    current = ui_jobs.job_state(app_env, KIND)
    live(panel, active=current is not None and current.is_running, every=1.0)
