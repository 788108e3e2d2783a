"""Widgets of the Orchestrations page: the list, the detail of one orchestration and its
lifecycle buttons. All reads and commands go through :mod:`switchyard.runs.control`, the
same functions as the CLI and the HTTP API."""

from __future__ import annotations

import time
import pandas as pd
import streamlit as st

from switchyard import workspace
from switchyard.exceptions import SwitchyardError
from switchyard.runs import control
from switchyard.runs.state import Orchestration, Status, allowed_commands
from switchyard.runs.store import RunStore
from switchyard.ui import batch_views
from switchyard.ui.batch_views import PLOT_COLORS, batch_frame, status_style, timeline_figure
from switchyard.ui.common import show_error
from switchyard.ui.status import badge_markdown, progress_bar, status_badge

__all__ = ["PLOT_COLORS", "batch_frame", "detail", "list_frame", "open_store", "page", "timeline_figure"]

QUERY_KEY = "orchestration"
ALL_APPS = "all apps"
BUTTONS = {"pause": ("Pause", ":material/pause:"), "resume": ("Resume", ":material/play_arrow:"),
           "retry": ("Retry", ":material/replay:"), "cancel": ("Cancel", ":material/cancel:")}


@st.cache_resource(show_spinner=False)
def _store(path: str) -> RunStore:
    return RunStore(path)


def open_store() -> RunStore:
    """The workspace's run store, one per server process (and per workspace)."""
    return _store(str(workspace.home() / "switchyard.db"))


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def is_live(rows: list[dict]) -> bool:
    """Whether anything listed may still change by itself (so the page refreshes often)."""
    return any(Status(r["status"]).is_active or r["status"] == "pending" for r in rows)


# -- list ----------------------------------------------------------------------------------------

def filters(store: RunStore) -> tuple[list[str] | None, str | None]:
    """Status and app filters (in the sidebar); returns (statuses or None, app or None)."""
    statuses = st.sidebar.multiselect("Show statuses", [s.value for s in Status],
                                      key="orch-status-filter", placeholder="all statuses")
    apps = sorted({o.app for o in store.list(limit=1000)})
    app = st.sidebar.selectbox("Show app", [ALL_APPS, *apps], key="orch-app-filter")
    return statuses or None, None if app == ALL_APPS else app


def list_frame(rows: list[dict]) -> pd.DataFrame:
    """The list as a table: status, id, app, kind, created, batches, progress."""
    return pd.DataFrame({
        "status": [r["status"] for r in rows],
        "id": [r["orchestration_id"] for r in rows],
        "app": [r["app"] for r in rows],
        "kind": [r["kind"] for r in rows],
        "created": [_when(r["created_at"]) for r in rows],
        "batches": [r["batches"] for r in rows],
        "completed": [r["completed"] for r in rows],
        "progress": [r["progress"] for r in rows],
    })


def orchestration_list(rows: list[dict]) -> None:
    if not rows:
        st.info("No orchestrations yet: RUN an app on the Orchestrate page, or "
                "`switchyard run <app> --detach`.")
        return
    styled = list_frame(rows).style.map(status_style, subset=["status"])
    st.dataframe(styled, hide_index=True, width="stretch", key="orch-list",
                 column_config={"progress": st.column_config.ProgressColumn(
                     "progress", min_value=0.0, max_value=1.0, format="percent")})


def pick(rows: list[dict]) -> str | None:
    """The orchestration to detail; kept in the URL (``?orchestration=<id>``)."""
    ids = [r["orchestration_id"] for r in rows]
    wanted = st.query_params.get(QUERY_KEY)
    if wanted and wanted not in ids:
        ids.insert(0, wanted)  # filtered out, or older than the list: still openable by its id
    if not ids:
        return None
    label = {r["orchestration_id"]: f"{r['orchestration_id']} · {r['app']}" for r in rows}
    index = ids.index(wanted) if wanted in ids else 0
    oid = st.selectbox("Orchestration", ids, index=index, format_func=lambda i: label.get(i, i),
                       key="orch-pick")
    if st.query_params.get(QUERY_KEY) != oid:
        st.query_params[QUERY_KEY] = oid
    return oid


# -- detail --------------------------------------------------------------------------------------

def lifecycle_buttons(store: RunStore, o: Orchestration) -> None:
    """Pause, Resume, Retry and Cancel (with confirmation), only where the transition is legal."""
    commands = allowed_commands(o.status)
    shown = [c for c in ("pause", "resume", "retry", "cancel") if c in commands]
    if not shown:
        return
    confirm_key = f"confirm-cancel-{o.id}"
    cols = st.columns(len(shown) + 2)
    for col, command in zip(cols, shown):
        label, icon = BUTTONS[command]
        if col.button(label, icon=icon, key=f"orch-{command}-{o.id}"):
            if command == "cancel":
                st.session_state[confirm_key] = True
            else:
                _apply(store, o.id, command)
    if st.session_state.get(confirm_key):
        st.warning(f"Cancel orchestration {o.id}? A cancelled orchestration cannot be resumed.")
        yes, no = st.columns(2)
        if yes.button("Yes, cancel it", type="primary", key=f"orch-cancel-yes-{o.id}"):
            st.session_state.pop(confirm_key, None)
            _apply(store, o.id, "cancel")
        if no.button("Keep it", key=f"orch-cancel-no-{o.id}"):
            st.session_state.pop(confirm_key, None)
            st.rerun()


def _apply(store: RunStore, oid: str, command: str) -> None:
    try:
        o = control.apply(store, oid, command)
    except SwitchyardError as e:
        show_error(e)
        return
    st.toast(f"{oid}: {command} → {o.status.value}")
    st.rerun()  # the whole page: the refresh rate depends on what is live


def detail(store: RunStore, oid: str) -> None:
    """Header, progress, counts, buttons, errors, then the tabs of :mod:`switchyard.ui.batch_views`."""
    try:
        o = store.get(oid)
    except SwitchyardError as e:
        show_error(e)
        return
    counts = store.batch_counts(oid)  # one aggregate: no page reads every batch row
    head = st.columns([1, 6], vertical_alignment="center")
    with head[0].container(key="orchestration-status"):
        status_badge(o.status)
    head[1].caption(f"`{o.id}` · app **{o.app}** · {o.kind} · mode {o.mode} · created {_when(o.created_at)}"
                    + (f" · took {o.seconds:.2f} s" if o.seconds is not None else ""))
    with st.container(key="orchestration-progress"):
        progress_bar(o.completed_batches, o.total_batches)
    st.markdown("  ".join(f"{badge_markdown(k)} {v:,}" for k, v in counts.items() if v) or "no batches")
    # Keyed containers: what appears in them comes and goes without moving the tabs below.
    with st.container(key="orchestration-actions"):
        lifecycle_buttons(store, o)
    with st.container(key="orchestration-messages"):
        if o.error:
            st.error(o.error)
        if o.status == Status.PENDING and o.lease_owner is None:
            st.info("Queued: it starts as soon as a running orchestration ends.")
    with st.container(key="orchestration-tabs"):
        batch_views.tabs(store, o, counts)


def page() -> None:
    """The whole Orchestrations page body (the page file only calls this)."""
    store = open_store()
    control.sweep(store, min_interval=1.0)
    statuses, app = filters(store)
    live = is_live(control.listing(store, limit=200))

    @st.fragment(run_every=2.0 if live else 10.0)
    def body() -> None:
        control.sweep(store, min_interval=1.0)
        rows = control.listing(store, status=statuses, app=app, limit=200)
        orchestration_list(rows)
        oid = pick(rows)
        if oid:
            st.divider()
            detail(store, oid)

    body()
