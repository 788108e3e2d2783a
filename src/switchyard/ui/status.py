"""Status badges and progress bars for orchestrations and batches, reusable by every page.

Colours follow one rule: blue is working, orange is on its way to stopping (or stopped
and resumable), green is done, red needs the operator, gray is waiting or gone.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

COLORS = {
    # orchestrations
    "pending": "gray", "running": "blue", "pausing": "orange", "paused": "violet",
    "cancelling": "orange", "cancelled": "gray", "completed": "green", "failed": "red",
    "interrupted": "orange",
    # batches (the ones not listed above)
    "dead": "red", "skipped": "gray",
}
ICONS = {
    "pending": ":material/schedule:", "running": ":material/play_arrow:",
    "pausing": ":material/pause_circle:", "paused": ":material/pause:",
    "cancelling": ":material/cancel:", "cancelled": ":material/block:",
    "completed": ":material/check_circle:", "failed": ":material/error:",
    "interrupted": ":material/power_off:", "dead": ":material/report:",
    "skipped": ":material/redo:",
}


def color_of(status: Any) -> str:
    """The badge colour of an orchestration or batch status (its text or enum)."""
    return COLORS.get(str(getattr(status, "value", status)), "gray")


def badge_markdown(status: Any) -> str:
    """The status as a Markdown badge (``:green-badge[completed]``) for text and tables."""
    text = str(getattr(status, "value", status))
    return f":{color_of(text)}-badge[{text}]"


def status_badge(status: Any, container: Any = None) -> None:
    """A coloured badge with an icon for ``status``."""
    text = str(getattr(status, "value", status))
    (container or st).badge(text, icon=ICONS.get(text), color=color_of(text))


def progress_text(completed: int, total: int) -> str:
    pct = 100.0 * completed / total if total else 0.0
    return f"{pct:.0f}% · {completed}/{total} batches completed"


def progress_bar(completed: int, total: int, container: Any = None) -> None:
    """A progress bar of completed batches with ``<pct>% · <done>/<total> batches completed``."""
    value = min(1.0, completed / total) if total else 0.0
    (container or st).progress(value, text=progress_text(completed, total))
