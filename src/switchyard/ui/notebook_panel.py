"""Notebook buttons: download the Orchestrate flow or the pipeline as .ipynb, import a notebook's
cells as steps (the same calls as ``switchyard notebook export|import``)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from switchyard import notebook
from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError
from switchyard.ui.common import show_error
from switchyard.workspace import atomic_write_bytes


def render_orchestrate(app_env: AppEnv) -> None:
    """The Orchestrate flow of the saved settings as ``<app>_orchestrate.ipynb``."""
    try:
        text = notebook.notebook_text(notebook.orchestrate_notebook(app_env))
    except SwitchyardError as e:
        show_error(e)
        return
    c1, c2 = st.columns([1, 3], vertical_alignment="center")
    c1.download_button("Download notebook", text, file_name=f"{app_env.app}_orchestrate.ipynb",
                       mime="application/x-ipynb+json", key=f"nb-orchestrate-{app_env.app}")
    c2.caption(f"install, distribute, run and load data as notebook cells (top-level `await`). "
               f"CLI: `switchyard notebook export {app_env.app}`")


def render_pipeline(app_env: AppEnv, steps: list, taken: list[str]) -> list | None:
    """Download the saved pipeline as a notebook; import a notebook's cells. Returns the imported
    steps (for the caller's draft) when the operator imported a notebook in this rerun."""
    with st.expander("Notebook", expanded=False):
        if steps:
            try:
                text = notebook.notebook_text(notebook.pipeline_notebook(app_env))
                st.download_button("Download pipeline notebook", text, file_name=f"{app_env.app}_pipeline.ipynb",
                                   mime="application/x-ipynb+json", key=f"nb-pipeline-{app_env.app}")
            except SwitchyardError as e:
                show_error(e)
        st.caption(f"CLI: `switchyard notebook export {app_env.app} --pipeline` · "
                   f"`switchyard notebook import {app_env.app} NOTEBOOK`. Each code cell becomes a step after "
                   "the one before; a cell's variables reach the later cells (docs/notebooks.md).")
        up = st.file_uploader("Import a notebook as steps", type=["ipynb"], key=f"nb-upload-{app_env.app}")
        if up is not None and st.button("Import cells", key=f"nb-import-{app_env.app}"):
            path = atomic_write_bytes(app_env.home / "notebooks" / "imported" / Path(up.name).name, up.getvalue())
            try:
                return notebook.notebook_steps(path, taken=taken)
            except SwitchyardError as e:
                show_error(e)
    return None
