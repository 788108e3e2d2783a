"""Orchestrate page: settings, install, distribute, run (minimal until its issue lands)."""

import streamlit as st

from switchyard import snippets
from switchyard.exceptions import SwitchyardError
from switchyard.modes import mode_hint
from switchyard.settings import load_settings
from switchyard.ui.common import app_picker, show_error

app_env = app_picker()
st.title("Orchestrate")
if app_env is not None:
    try:
        settings = load_settings(app_env.settings_path)
        c = settings.cluster
        st.caption(mode_hint(int(c.mode), partitions=None, workers=c.workers, pool_size=c.pool_size))
        for kind in ("install", "distrib", "run"):
            st.subheader(kind.capitalize())
            st.code(snippets.render_from_settings(kind, app_env), language="python")
    except SwitchyardError as e:
        show_error(e, "Fix the file and reload the page.")
