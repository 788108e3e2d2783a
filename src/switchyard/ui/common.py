"""Sidebar app picker and error display shared by every page."""

from __future__ import annotations

import streamlit as st

from switchyard.app import AppEnv, default_apps_dir, discover_apps
from switchyard.exceptions import SwitchyardError


def app_picker() -> AppEnv | None:
    """The sidebar app choice; kept in the session and in the URL so it survives pages and reloads."""
    apps_dir = default_apps_dir()
    names = discover_apps(apps_dir)
    if not names:
        st.sidebar.error(f"No apps in {apps_dir}: set SWITCHYARD_APPS or pass --apps-dir.")
        return None
    wanted = st.query_params.get("app") or st.session_state.get("app") or (
        "flight" if "flight" in names else names[0])
    index = names.index(wanted) if wanted in names else 0
    name = st.sidebar.selectbox("App", names, index=index, key="app_picker")
    st.session_state["app"] = name
    if st.query_params.get("app") != name:
        st.query_params["app"] = name
    st.sidebar.caption(f"apps folder: {apps_dir}")
    return AppEnv(name, apps_dir=apps_dir)


def show_error(e: SwitchyardError, next_step: str = "") -> None:
    """An operator error: its one-line message and category, never a traceback."""
    st.error(f"**{e.category} error**: {e}" + (f"\n\n{next_step}" if next_step else ""))
