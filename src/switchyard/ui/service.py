"""Service mode (persistent workers): START / STATUS / HEALTH gate / STOP, the health table,
the gate verdict and the ``[cluster.service_health]`` settings."""

from __future__ import annotations

import streamlit as st

from switchyard import snippets
from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError
from switchyard.service.service import serve_sync
from switchyard.settings import AppSettings, update_cluster
from switchyard.ui.common import show_error

ACTIONS = (("start", "START"), ("status", "STATUS"), ("health", "HEALTH gate"), ("stop", "STOP"))


def _snippet(app_env: AppEnv, settings: AppSettings, action: str) -> str:
    c = settings.cluster
    return snippets.render("serve", app_env, scheduler=c.scheduler, workers=c.workers, action=action)


def _settings_form(app_env: AppEnv, settings: AppSettings) -> None:
    health = settings.cluster.service_health
    key = f"service-{app_env.app}"
    cols = st.columns(3)
    allow_idle = cols[0].checkbox("allow_idle", value=bool(health.get("allow_idle", False)),
                                  key=f"{key}-allow-idle", help="the gate passes when no loop runs")
    max_unhealthy = cols[1].number_input("max_unhealthy", min_value=0, step=1,
                                         value=int(health.get("max_unhealthy", 0)), key=f"{key}-max-unhealthy")
    max_rate = cols[2].number_input("max_restart_rate", min_value=0.0, step=0.05, format="%.2f",
                                    value=float(health.get("max_restart_rate", 0.25)), key=f"{key}-max-rate")
    if st.button("Save service settings", key=f"{key}-save"):
        try:
            update_cluster(app_env.settings_path, service_health={
                "allow_idle": bool(allow_idle), "max_unhealthy": int(max_unhealthy),
                "max_restart_rate": float(max_rate)})
            st.success(f"saved [cluster.service_health] in {app_env.settings_path}")
        except SwitchyardError as e:
            show_error(e)


def _show(payload: dict) -> None:
    st.markdown(f"**{payload['status']}**: {payload['workers_running_count']} loop(s), "
                f"{payload['workers_healthy_count']} healthy, {payload['workers_unhealthy_count']} unhealthy, "
                f"{payload['restarts_total']} restart(s) (heartbeat timeout {payload['heartbeat_timeout_sec']:g} s)")
    st.dataframe(payload["worker_health"] or [{"worker": "(no loop runs)"}], hide_index=True,
                 key="service-health-table")
    watcher = payload.get("watcher") or {"running": False}
    st.caption(f"watcher: running (pid {watcher['pid']} on {watcher['host']}): restarts unhealthy loops by itself"
               if watcher["running"] else "watcher: not running: loops are restarted only by STATUS / HEALTH")
    if payload.get("restarts"):
        st.dataframe([{k: r.get(k) for k in ("slot", "worker", "reason", "by")} for r in payload["restarts"][-10:]],
                     hide_index=True, key="service-restarts-table")
    for held in payload.get("restarts_held", []):
        st.warning(f"{held['slot']}: restart held ({held['reason']}): {held['why']}")
    gate = payload["gate"]
    if gate["passed"]:
        st.success("health gate: passed")
    else:
        st.error("health gate: failed: " + "; ".join(gate["reasons"]))
    st.caption(f"snapshot: {payload['health_path']}")


def render(app_env: AppEnv, settings: AppSettings) -> None:
    """The body of the "Service mode (persistent workers)" section (the page draws its heading)."""
    _settings_form(app_env, settings)
    state_key = f"service-payload-{app_env.app}"
    tabs = st.tabs([label for _, label in ACTIONS])
    for tab, (action, label) in zip(tabs, ACTIONS):
        with tab:
            try:
                st.code(_snippet(app_env, settings, action), language="python")
            except SwitchyardError as e:
                show_error(e)
            if st.button(label, key=f"service-{action}-{app_env.app}"):
                try:
                    with st.spinner(f"service {action}..."):
                        st.session_state[state_key] = serve_sync(app_env, action)
                except SwitchyardError as e:
                    show_error(e)
    payload = st.session_state.get(state_key)
    if payload is not None:
        _show(payload)
