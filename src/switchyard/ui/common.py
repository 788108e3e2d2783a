"""Sidebar app picker, error display, sections, snippet blocks and job badges shared by pages."""

from __future__ import annotations

import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import streamlit as st

from switchyard.app import AppEnv, default_apps_dir, discover_apps
from switchyard.exceptions import SwitchyardError

#: What the operator does next, per error category.
NEXT_STEPS = {
    "settings": "Fix the value in System settings (or in app_settings.toml) and try again.",
    "args": "Correct the arg in App args, save, and try again.",
    "cluster": "Check the scheduler and workers in System settings, then INSTALL again.",
    "app": "The app's own traceback is in the log panel: fix the app's code and try again.",
    "plan": "Run CHECK DISTRIBUTE again to make a fresh work plan.",
    "store": "Reload the page to see the run's current status, then try again.",
    "export": "RUN the app, then LOAD DATA again.",
    "pipeline": "Fix the step named in the message (its code, id or depends_on), Save, and run again.",
}


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


def error_text(category: str, message: str, next_step: str | None = None) -> str:
    step = NEXT_STEPS.get(category, "") if next_step is None else next_step
    return f"**{category} error**: {message}" + (f"\n\n{step}" if step else "")


def show_error(e: SwitchyardError, next_step: str | None = None) -> None:
    """An operator error: its one-line message, its category and the next step; never a traceback.

    When the error was caused by the app's own code (a chained exception), that
    traceback is shown in a log panel under the message, where the operator needs it.
    """
    st.error(error_text(e.category, str(e), next_step))
    cause = e.__cause__
    if e.category == "app" and cause is not None and not isinstance(cause, SwitchyardError):
        show_app_traceback(cause)


def show_app_traceback(exc: BaseException) -> None:
    """The app's own traceback, in a log panel (for exceptions raised by app code)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    with st.expander("App traceback", expanded=True):
        st.code(text, language=None)


def show_app_failure(exc: BaseException, doing: str) -> None:
    """An exception from the app's own code: a one-line message, then its traceback."""
    st.error(error_text("app", f"the app's code failed while {doing}: {type(exc).__name__}: {exc}"))
    show_app_traceback(exc)


@contextmanager
def section(title: str, key: str) -> Iterator[None]:
    """A bordered section with a heading; ``st-key-section-<key>`` locates it in a browser."""
    with st.container(border=True, key=f"section-{key}"):
        st.subheader(title)
        yield


def snippet_block(text: str, file_name: str, save, key: str) -> None:
    """The snippet (with Streamlit's copy button) and a button that saves it as ``file_name``.

    Args:
        text: The snippet.
        file_name: Shown on the save button, e.g. ``AGI_run.py``.
        save: Called without arguments to write the file; returns its path.
        key: Widget key prefix.
    """
    st.code(text, language="python")
    saved_key = f"{key}-saved"
    if st.button(f"Save as {file_name}", key=f"{key}-save", help="for the Pipeline page to import as a step"):
        try:
            st.session_state[saved_key] = str(save())
        except SwitchyardError as e:
            show_error(e)
    if st.session_state.get(saved_key):
        st.caption(f"saved to `{st.session_state[saved_key]}`")


def job_badge(status: str) -> None:
    """The badge of a background job (running, succeeded, failed)."""
    st.badge(status, color={"running": "blue", "succeeded": "green", "failed": "red"}.get(status, "gray"))


def file_mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0
