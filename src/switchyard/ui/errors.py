"""The guard around every page and live fragment: an unexpected exception becomes a short,
classified error box (what failed, the log file with the traceback, what to do), never
Streamlit's traceback. ``st.rerun`` / ``st.stop`` pass through."""

from __future__ import annotations

from typing import Callable

import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from switchyard.exceptions import SwitchyardError
from switchyard.failures import Failure, record


def show_failure(failure: Failure) -> None:
    with st.container(key="failure-box"):
        st.error(f"**{failure.where} failed** ({failure.category} error): {failure.error}\n\n"
                 f"The traceback is in `{failure.log_path}`.\n\n**What to do:** {failure.todo}.",
                 icon=":material/error:")


def guarded(body: Callable[[], None], where: str) -> None:
    """Run ``body``; a Switchyard error shows its own message, anything else a classified box."""
    from switchyard.ui.common import show_error

    try:
        body()
    except ScriptControlException:
        raise
    except SwitchyardError as e:
        show_error(e)
    except Exception as e:
        show_failure(record(e, where))
