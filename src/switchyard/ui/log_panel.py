"""Live log panels: a polling fragment and a scrolled view of a log's last lines."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import streamlit as st

from switchyard.logs import tail

POLL_SECONDS = 0.5
MAX_LINES = 300


def live(body: Callable[[], None], *, active: bool, every: float = POLL_SECONDS) -> None:
    """Draw ``body`` as a fragment that redraws itself every ``every`` seconds while ``active``.

    The script thread never waits: each redraw reads files and the store, then returns.
    When ``body`` sees that the work it follows has finished it calls ``st.rerun()`` so the
    whole page catches up (e.g. enabling the next section); the next full run is not active.
    """
    st.fragment(run_every=every if active else None)(body)()


def log_lines(path: Path | str | None, n: int = MAX_LINES) -> list[str]:
    return tail(path, n) if path else []


def log_view(lines: Iterable[str], key: str, height: int = 320, empty: str = "(no output yet)") -> None:
    """The lines in a fixed-height, bottom-anchored code box (``st-key-<key>`` in the browser)."""
    text = "\n".join(lines)
    with st.container(height=height, key=key, autoscroll=True, border=True):
        st.code(text or empty, language=None, wrap_lines=True)
