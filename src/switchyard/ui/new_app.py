"""The New app form (sidebar): ``switchyard new`` from the workbench."""

from __future__ import annotations

import streamlit as st

from switchyard.app import default_apps_dir, discover_apps
from switchyard.exceptions import SwitchyardError
from switchyard.scaffold import create_app
from switchyard.ui.common import show_error

TEMPLATE = "(template)"


def render() -> None:
    """A form that creates an app from the template or as a clone, then selects it."""
    apps_dir = default_apps_dir()
    with st.sidebar.expander("New app", expanded=False), st.form("new-app", clear_on_submit=False):
        name = st.text_input("Name", placeholder="my_app", help="a Python identifier no installed module has")
        source = st.selectbox("From", [TEMPLATE, *discover_apps(apps_dir)],
                              help="the template, or an app to clone (package and classes renamed, settings kept)")
        st.caption(f"CLI: `switchyard new NAME [--from APP]` · goes to `{apps_dir}`")
        if st.form_submit_button("CREATE"):
            try:
                path = create_app(name.strip(), apps_dir, source=None if source == TEMPLATE else source)
            except SwitchyardError as e:
                show_error(e, "Pick another name.")
                return
            st.session_state["app"] = path.name
            st.query_params["app"] = path.name
            st.session_state.pop("app_picker", None)
            st.success(f"created {path}: INSTALL it, then RUN")
            st.rerun()
