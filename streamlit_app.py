"""Switchyard workbench entrypoint: registers the pages and keeps the scheduler running
when schedules exist; nothing else."""

import streamlit as st

from switchyard.ui.errors import guarded
from switchyard.ui.schedules import keep_scheduler_running

st.set_page_config(page_title="Switchyard", page_icon=":material/train:", layout="wide")
keep_scheduler_running()

pages = [
    st.Page("pages/orchestrate.py", title="Orchestrate", icon=":material/play_circle:", default=True),
    st.Page("pages/pipeline.py", title="Pipeline", icon=":material/account_tree:"),
    st.Page("pages/analysis.py", title="Analysis", icon=":material/insights:"),
    st.Page("pages/orchestrations.py", title="Orchestrations", icon=":material/list_alt:"),
]
page = st.navigation(pages)
guarded(page.run, f"the {page.title} page")  # an unexpected exception: a classified box, not a traceback
