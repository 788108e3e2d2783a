"""The Schedules section of the Orchestrations page: the scheduler's status, a form that adds
a schedule (showing its CLI line), the list, and one schedule's triggers with Pause /
Resume / Delete. Every action goes through :mod:`switchyard.schedule.actions`, as the CLI does.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from switchyard import workspace
from switchyard.app import AppEnv, default_apps_dir, discover_apps
from switchyard.exceptions import SwitchyardError
from switchyard.schedule import actions, scheduler
from switchyard.schedule.timing import CATCH_UP_POLICIES, OVERLAP_POLICIES
from switchyard.ui.common import show_error

KINDS = {"every": "Every N seconds", "cron": "Cron expression", "files": "New files in a folder"}
OUTCOME_COLORS = {"launched": "green", "skipped": "gray", "queued": "blue", "missed": "orange",
                  "condition false": "gray", "failed": "red"}
CHECK_EVERY = 30.0  # seconds between the workbench's checks that the scheduler runs
_last_check: dict[str, float] = {}


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def keep_scheduler_running(home: Path | None = None, now: float | None = None) -> None:
    """Start the scheduler when schedules exist and none runs; at most every CHECK_EVERY s per server."""
    home = Path(home or workspace.home())
    now = time.monotonic() if now is None else now
    if now - _last_check.get(str(home), -1e9) < CHECK_EVERY:
        return
    _last_check[str(home)] = now
    try:
        scheduler.ensure_running(home, default_apps_dir())
    except SwitchyardError:
        pass  # the Schedules section shows the scheduler as stopped, with its log


def scheduler_status(home: Path) -> None:
    st_ = actions.scheduler_status(home)
    if st_["running"]:
        st.badge(f"scheduler running: pid {st_['pid']}, last beat {_when(st_['heartbeat_at'])}",
                 color="green", icon=":material/schedule:")
        return
    st.badge("scheduler not running", color="orange" if st_["schedules"] else "gray")
    if st_["schedules"]:
        st.caption(f"{st_['schedules']} schedules wait for a scheduler; log: `{scheduler.log_path(home)}`")
    if st.button("Start scheduler", key="sched-start"):
        try:
            scheduler.start_detached(home, default_apps_dir())
        except SwitchyardError as e:
            show_error(e)


def add_form(home: Path, current: AppEnv | None) -> None:
    """Widgets for a new schedule, its CLI line, and the Add button."""
    apps_dir = default_apps_dir()
    names = discover_apps(apps_dir)
    if not names:
        st.info(f"No apps in {apps_dir}.")
        return
    c1, c2, c3 = st.columns(3)
    app = c1.selectbox("App", names, index=names.index(current.app) if current and current.app in names else 0,
                       key="sched-app")
    env = AppEnv(app, apps_dir=apps_dir, workspace=home)
    target = c2.radio("Launches", ["app run", "pipeline"], horizontal=True, key="sched-target")
    kind = c3.radio("Fires", list(KINDS), format_func=KINDS.get, key="sched-kind")
    req: dict = {"app": app, "pipeline": target == "pipeline"}
    c1, c2, c3 = st.columns(3)
    if kind == "every":
        req["every"] = float(c1.number_input("Every (seconds)", min_value=1, value=3600, step=60, key="sched-every"))
    elif kind == "cron":
        req["cron"] = c1.text_input("Cron (minute hour day month weekday)", "0 2 * * *", key="sched-cron")
        req["tz"] = c2.text_input("Time zone (IANA)", "UTC", key="sched-tz")
    else:
        req["watch"] = c1.text_input("Folder", str(actions.inbox(env)), key="sched-folder")
        req["debounce"] = float(c2.number_input("Quiet for (seconds)", min_value=0.1, value=5.0, key="sched-debounce"))
        req["pattern"] = c3.text_input("File pattern", "*", key="sched-pattern")
    c1, c2, c3 = st.columns(3)
    req["overlap"] = c1.selectbox("If its last run still runs", OVERLAP_POLICIES, key="sched-overlap")
    if kind != "files":
        req["catch_up"] = c2.selectbox("Fires missed while no scheduler ran", CATCH_UP_POLICIES,
                                       index=list(CATCH_UP_POLICIES).index("last"), key="sched-catchup")
    condition = c3.text_input("Only if (condition)", "", key="sched-condition",
                              placeholder="last_status != 'failed'",
                              help="names: files, n_files, total_bytes, last_status, last_seconds")
    if condition.strip():
        req["condition"] = condition
    st.code(_command(req), language="bash")
    if st.button("Add schedule", key="sched-add", type="primary"):
        try:
            d = actions.add(env, **{k: v for k, v in req.items() if k != "app"})
        except SwitchyardError as e:
            show_error(e)
            return
        st.session_state["sched-selected"] = d["id"]
        st.success(f"schedule {d['id']} added: {d['describe']}")
        try:
            scheduler.ensure_running(home, apps_dir)
        except SwitchyardError as e:
            show_error(e)


def _command(req: dict) -> str:
    """The CLI line of the form's request (before it is checked)."""
    when = ({"every": req["every"]} if "every" in req else
            {"cron": req["cron"], "tz": req.get("tz", "UTC")} if "cron" in req else {})
    d = {"app": req["app"], "when": when or None, "target": "pipeline" if req["pipeline"] else "app",
         "overlap": req["overlap"], "catch_up": req.get("catch_up", "last"), "condition": req.get("condition"),
         "watch": ({"folder": req["watch"], "debounce": req["debounce"], "pattern": req["pattern"]}
                   if "watch" in req else None)}
    return actions.command_line(d)


def schedule_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [r["id"] for r in rows],
        "status": [r["status"] for r in rows],
        "app": [r["app"] for r in rows],
        "launches": [r["target"] for r in rows],
        "fires": [r["describe"] for r in rows],
        "overlap": [r["overlap"] for r in rows],
        "next fire": [_when(r["next_fire_at"]) for r in rows],
        "last trigger": [f"{r['last_trigger']['outcome']} {_when(r['last_trigger']['at'])}"
                         if r["last_trigger"] else "" for r in rows],
        "running": [len(r["active_runs"]) for r in rows],
        "queued": [r["queued"] for r in rows],
    })


def trigger_frame(triggers: list[dict]) -> pd.DataFrame:
    return pd.DataFrame({
        "#": [t["id"] for t in triggers],
        "due": [_when(t["due_at"]) for t in triggers],
        "handled": [_when(t["at"]) for t in triggers],
        "outcome": [t["outcome"] for t in triggers],
        "orchestration": [t["orchestration_id"] or "" for t in triggers],
        "files": [", ".join(Path(f).name for f in t["files"]) for t in triggers],
        "message": [t["message"] for t in triggers],
    })


def selected_panel(home: Path, rows: list[dict]) -> None:
    ids = [r["id"] for r in rows]
    wanted = st.session_state.get("sched-selected")
    sid = st.selectbox("Schedule", ids, index=ids.index(wanted) if wanted in ids else 0, key="sched-pick",
                       format_func=lambda i: next(f"{i} · {r['app']} · {r['describe']}" for r in rows if r["id"] == i))
    st.session_state["sched-selected"] = sid
    d = actions.detail(sid, home, triggers=30)
    with st.container(key="sched-status"):
        st.markdown(f"**{d['status']}** · {d['target']} of `{d['app']}` · {d['describe']} · overlap "
                    f"`{d['overlap']}` · catch-up `{d['catch_up']}`"
                    + (f" · only if `{d['condition']}`" if d["condition"] else ""))
    with st.container(key="sched-last"):
        last = d["triggers"][0] if d["triggers"] else None
        if last:
            st.markdown(f"last trigger: **{last['outcome']}** at {_when(last['at'])}"
                        + (f" → orchestration `{last['orchestration_id']}`" if last["orchestration_id"] else "")
                        + (f" ({last['message']})" if last["message"] else ""))
        elif d["next_fire_at"] and d["status"] == "active":
            st.markdown(f"next fire: {_when(d['next_fire_at'])}")
    st.code(actions.command_line(d), language="bash")
    c1, c2, c3 = st.columns([1, 1, 2])
    try:
        if d["status"] == "active" and c1.button("Pause schedule", key="sched-pause", icon=":material/pause:"):
            actions.pause(sid, home)
            st.rerun()
        if d["status"] == "paused" and c1.button("Resume schedule", key="sched-resume",
                                                 icon=":material/play_arrow:"):
            actions.resume(sid, home)
            st.rerun()
        sure = c3.checkbox("I want to delete this schedule", key=f"sched-sure-{sid}")
        if c2.button("Delete schedule", key="sched-delete", disabled=not sure, icon=":material/delete:"):
            actions.delete(sid, home)
            st.session_state.pop("sched-selected", None)
            st.rerun()
    except SwitchyardError as e:
        show_error(e)
    if d["triggers"]:
        frame = trigger_frame(d["triggers"])
        styled = frame.style.map(lambda v: f"color: {OUTCOME_COLORS.get(v, 'inherit')}", subset=["outcome"])
        st.dataframe(styled, hide_index=True, width="stretch", key="sched-triggers")
    else:
        st.caption("No triggers yet.")


def render_schedules_section(current: AppEnv | None = None, home: Path | None = None) -> None:
    """The whole Schedules section."""
    home = Path(home or workspace.home())
    keep_scheduler_running(home)
    scheduler_status(home)
    with st.expander("Add a schedule", expanded=not actions.listing(home)):
        add_form(home, current)

    @st.fragment(run_every=2.0)
    def live() -> None:
        rows = actions.listing(home)
        if not rows:
            st.info("No schedules yet: add one above, or `switchyard schedule add APP --every 3600`.")
            return
        st.dataframe(schedule_frame(rows), hide_index=True, width="stretch", key="sched-list")
        selected_panel(home, rows)

    live()
