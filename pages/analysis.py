"""Analysis page (placeholder until its issue lands)."""

import streamlit as st

from switchyard.ui.common import app_picker

app_env = app_picker()
st.title("Analysis")
st.info("This page is not built yet.")
