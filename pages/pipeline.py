"""Pipeline page: the app's steps (edit, add, reorder, remove, save), run them, watch the DAG and logs."""

import streamlit as st

from switchyard.ui.common import app_picker
from switchyard.ui.pipeline import page

app_env = app_picker()
st.title("Pipeline")
if app_env is not None:
    page(app_env)
