"""Orchestrations page: runs with their lifecycle, schedules, backfills and alerts.

Thin: the widgets are in switchyard.ui (orchestrations, schedules, backfill, alerts), the
logic in switchyard.runs.control, switchyard.schedule and switchyard.alerts.
"""

import streamlit as st

from switchyard.ui.alerts import render_alerts_section
from switchyard.ui.backfill import render_backfill_section
from switchyard.ui.common import app_picker
from switchyard.ui.orchestrations import page
from switchyard.ui.schedules import render_schedules_section

env = app_picker()
st.title("Orchestrations")
runs, schedules, backfill, alerts = st.tabs(["Runs", "Schedules", "Backfill", "Alerts"])
with runs:
    page()
with schedules:
    render_schedules_section(env)
with backfill:
    render_backfill_section()
with alerts:
    render_alerts_section()
