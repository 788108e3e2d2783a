"""Live log panels: a polling fragment and a scrolled view of a log's last lines."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import streamlit as st

from switchyard.logs import count_lines, tail

POLL_SECONDS = 0.5
MAX_LINES = 300


def live(body: Callable[[], None], *, active: bool, every: float = POLL_SECONDS) -> None:
    """Draw ``body`` as a fragment that redraws itself every ``every`` seconds while ``active``.

    The script thread never waits: each redraw reads files and the store, then returns.
    When ``body`` sees that the work it follows has finished it calls ``st.rerun()`` so the
    whole page catches up (e.g. enabling the next section); the next full run is not active.
    """
    from switchyard.ui.errors import guarded

    def guarded_body() -> None:  # a fragment's rerun does not pass through the page's guard
        guarded(body, "the live panel")

    st.fragment(run_every=every if active else None)(guarded_body)()


def log_lines(path: Path | str | None, n: int = MAX_LINES) -> list[str]:
    return tail(path, n) if path else []


def log_view(lines: Iterable[str], key: str, height: int = 320, empty: str = "(no output yet)") -> None:
    """The lines in a fixed-height, bottom-anchored code box (``st-key-<key>`` in the browser)."""
    text = "\n".join(lines)
    with st.container(height=height, key=key, autoscroll=True, border=True):
        st.code(text or empty, language=None, wrap_lines=True)


def engine_log_view(run_log: Path | str | None, key: str, height: int = 320) -> None:
    """A toggle over the run's full engine output (``engine.log`` beside ``run_log``), with its line count.

    run.log leaves out the engine's records below WARNING; this is where they are."""
    if not run_log:
        return
    path = Path(run_log).parent / "engine.log"
    count = count_lines(path)
    if st.toggle(f"Engine log ({count} lines)", key=f"{key}-toggle",
                 help=f"everything the Dask scheduler and workers printed: {path}"):
        log_view(log_lines(path), key=key, height=height, empty="(the engine printed nothing)")
