"""Orchestrations page: every run with its status and progress, one run's detail and its lifecycle.

Thin: the widgets are in switchyard.ui.orchestrations, the logic in switchyard.runs.control.
"""

import streamlit as st

from switchyard.ui.common import app_picker
from switchyard.ui.orchestrations import page

app_picker()
st.title("Orchestrations")
page()
