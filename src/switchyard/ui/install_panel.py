"""Install: the install snippet, INSTALL (runs that snippet file in a subprocess) and live install logs."""

from __future__ import annotations

import streamlit as st

from switchyard import ui_jobs
from switchyard.actions import Action
from switchyard.app import AppEnv
from switchyard.cluster.env import env_dir, is_current
from switchyard.exceptions import SwitchyardError
from switchyard.modes import Mode
from switchyard.settings import AppSettings
from switchyard.ui.common import error_text, job_badge, show_error, snippet_block
from switchyard.ui.log_panel import live, log_view

KIND = "install"


def _status(app_env: AppEnv, state: ui_jobs.JobState | None) -> None:
    if state is None:
        return
    cols = st.columns([1, 6], vertical_alignment="center")
    with cols[0]:
        job_badge(state.status)
    if state.is_running:
        cols[1].caption(f"installing for {state.seconds:.0f} s: lines appear below as they are printed")
    elif state.status == ui_jobs.SUCCEEDED:
        cols[1].caption(f"installed in {state.seconds:.1f} s into {env_dir(app_env)}")
    else:
        cols[1].caption(f"failed after {state.seconds:.1f} s")
        st.error(error_text(state.category or "cluster", state.error or "install failed"))


def _start(app_env: AppEnv, action: Action) -> None:
    # A click callback: runs before the script reruns, so the rerun already shows the job.
    try:
        ui_jobs.start_snippet(app_env, KIND, action.save_snippet())
    except SwitchyardError as e:
        st.session_state[f"install-start-error-{app_env.app}"] = e


def render(app_env: AppEnv, settings: AppSettings) -> bool:
    """The Install section; returns whether the worker environment is ready (enables Run)."""
    action = Action.from_settings(KIND, app_env, settings)
    try:
        snippet_block(action.snippet(), action.file_name, action.save_snippet, key=f"install-{app_env.app}")
    except SwitchyardError as e:
        show_error(e)
        return False
    failed = st.session_state.pop(f"install-start-error-{app_env.app}", None)
    state = ui_jobs.job_state(app_env, KIND)
    running = state is not None and state.is_running  # the click's callback has already started it
    st.button("INSTALL", type="primary", disabled=running, key=f"install-go-{app_env.app}",
              help="runs the snippet above (saved as AGI_install.py) in a subprocess",
              on_click=_start, args=(app_env, action))
    if failed is not None:
        show_error(failed)

    def panel() -> None:
        now = ui_jobs.job_state(app_env, KIND)
        _status(app_env, now)
        log_view(ui_jobs.read_log(now), key="install-log", height=260)
        if running and (now is None or not now.is_running):
            st.rerun()  # the install ended: let the whole page see it (the Run section)

    st.markdown("**Install logs**")
    live(panel, active=running)
    cython = bool(settings.cluster.mode & Mode.CYTHON)
    ready = not running and is_current(app_env, cython)
    if ready:
        st.caption(f"worker environment ready: {env_dir(app_env)}" + (" (with the Cython build)" if cython else ""))
    elif not running:
        st.caption("the worker environment is missing or stale: INSTALL it to enable RUN")
    return ready
