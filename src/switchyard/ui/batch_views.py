"""The tabs of an orchestration's detail: batches, timeline, errors, dead letters, log.

Every tab costs what it shows, not what the run holds: the batch table is one page
filtered in the store, the timeline of a large run is the busy share per worker and
time bucket (an inline SVG, ``busy_chart``; single bars once filtered to a few thousand batches), errors are grouped
by signature with counts, the log is a byte-capped tail. Only the open tab is drawn.
"""

from __future__ import annotations

import time

import pandas as pd
import plotly.express as px  # here, not on the first Timeline click (~1 s of imports)
import streamlit as st

from switchyard.exceptions import SwitchyardError
from switchyard.logs import tail_bytes
from switchyard.runs import control
from switchyard.runs.batch_reads import BatchFilter
from switchyard.runs.state import Batch, BatchStatus, Orchestration
from switchyard.runs.store import RunStore
from switchyard.ui.busy_chart import busy_svg
from switchyard.ui.common import show_error
from switchyard.ui.status import color_of

PLOT_COLORS = {"blue": "#1c83e1", "green": "#21c354", "red": "#ff4b4b", "orange": "#ffa421",
               "violet": "#803df5", "gray": "#a3a8b8"}
SINGLE_BARS_MAX = 2000  # above this many batches the timeline is aggregated
BUCKETS = 60
LOG_BYTES = 64 * 1024
ALL_WORKERS = "all workers"
TABS = ["Batches", "Timeline", "Errors", "Dead letters", "Log"]


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def status_style(status: str) -> str:
    return f"color: {PLOT_COLORS[color_of(status)]}; font-weight: 600"


def batch_frame(batches: list[Batch]) -> pd.DataFrame:
    """Per batch: status, worker, attempts, start, duration, error."""
    return pd.DataFrame({
        "batch": [b.idx for b in batches], "name": [b.name for b in batches],
        "status": [b.status.value for b in batches], "worker": [b.worker or "" for b in batches],
        "attempts": [b.attempts for b in batches], "start": [_when(b.started_at) for b in batches],
        "seconds": [round(b.seconds, 2) if b.seconds is not None else None for b in batches],
        "error": [b.error or "" for b in batches],
    })


STOPPED_COPY = "stopped copy"  # the losing copy of a straggler backup, on the timeline


def timeline_figure(batches: list[Batch], now: float | None = None, stopped: list[dict] = ()):
    """A Plotly timeline: one bar per batch attempt that started, one row per worker; ``stopped``:
    the losing copies of straggler backups (:func:`switchyard.runs.backups.stopped_copies`)."""
    now = time.time() if now is None else now
    shown = [b for b in batches if b.started_at]
    names = {b.name for b in shown}
    stopped = [c for c in stopped if c["name"] in names]  # of the batches shown
    frame = pd.DataFrame({
        "worker": [b.worker or "?" for b in shown] + [c["worker"] for c in stopped],
        "start": pd.to_datetime([b.started_at for b in shown] + [c["start"] for c in stopped], unit="s"),
        "end": pd.to_datetime([b.ended_at or now for b in shown] + [c["end"] for c in stopped], unit="s"),
        "batch": [b.name for b in shown] + [f"{c['name']} ({c['copy']}, stopped)" for c in stopped],
        "status": [b.status.value for b in shown] + [STOPPED_COPY] * len(stopped),
    })
    colors = {s: PLOT_COLORS[color_of(s)] for s in frame["status"].unique() if s != STOPPED_COPY}
    colors[STOPPED_COPY] = "#9e9e9e"
    fig = px.timeline(frame, x_start="start", x_end="end", y="worker", color="status",
                      hover_name="batch", color_discrete_map=colors)
    fig.update_yaxes(categoryorder="category ascending", title=None)
    fig.update_layout(height=120 + 40 * max(1, frame["worker"].nunique()), margin=dict(t=20, b=20),
                      legend_title_text="")
    return fig


def _stamp(o: Orchestration, counts: dict[str, int]) -> tuple:
    """Changes whenever what the tabs show may have changed (keys the cached aggregates)."""
    return (o.status.value, o.completed_batches, o.ended_at, tuple(sorted(counts.items())))


@st.cache_data(show_spinner=False, max_entries=32, ttl=600)
def _aggregate(path: str, oid: str, stamp: tuple, worker: str | None, first: int | None,
               span: tuple) -> tuple:
    store = _open(path)
    filt = BatchFilter.of(worker=worker, first=first)
    return store.busy_buckets(oid, BUCKETS, filt, span=span), store.slowest_batches(oid, 10, filt)


def _open(path: str) -> RunStore:
    from switchyard.ui.orchestrations import _store

    return _store(path)


def tabs(store: RunStore, o: Orchestration, counts: dict[str, int]) -> None:
    """The detail's tabs; only the selected one reads the store."""
    shown = st.tabs(TABS, key=f"orch-tabs-{o.id}", on_change="rerun")
    views = (batches_tab, timeline_tab, errors_tab, dead_tab, log_tab)
    for tab, view in zip(shown, views):
        if tab.open:
            with tab:
                view(store, o, counts)


def batches_tab(store: RunStore, o: Orchestration, counts: dict[str, int]) -> None:
    oid = o.id
    cols = st.columns([3, 2, 2, 2])
    wanted = cols[0].multiselect("Status", [s.value for s in BatchStatus], key=f"bt-status-{oid}",
                                 placeholder="all statuses")
    workers = [ALL_WORKERS, *store.workers(oid)]
    worker = cols[1].selectbox("Worker", workers, key=f"bt-worker-{oid}")
    name = cols[2].text_input("Name contains", key=f"bt-name-{oid}")
    error = cols[3].text_input("Error contains", key=f"bt-error-{oid}")
    filt = BatchFilter.of(wanted or None, worker=None if worker == ALL_WORKERS else worker,
                          name=name.strip(), error=error.strip())
    total = store.batch_total(oid, filt)
    nav = st.columns([1, 1, 4])
    size = nav[0].selectbox("Rows per page", [50, 100, 500], index=1, key=f"bt-size-{oid}")
    pages = max(1, -(-total // size))
    number = nav[1].number_input("Page", min_value=1, max_value=pages, value=1, step=1, key=f"bt-page-{oid}")
    number = min(int(number), pages)
    page = store.batch_page(oid, filt, limit=size, offset=(number - 1) * size)
    first = (number - 1) * size + 1 if page else 0
    nav[2].caption(f"batches {first:,}–{first + len(page) - 1 if page else 0:,} of {total:,} matching "
                   f"(page {number} of {pages:,}; {o.total_batches:,} in the run)")
    with st.container(key="orch-batch-table"):
        st.dataframe(batch_frame(page).style.map(status_style, subset=["status"]), hide_index=True,
                     width="stretch",
                     column_config={"seconds": st.column_config.NumberColumn("seconds", format="%.2f")})


def timeline_tab(store: RunStore, o: Orchestration, counts: dict[str, int]) -> None:
    oid = o.id
    cols = st.columns([2, 1, 1])
    worker = cols[0].selectbox("Worker", [ALL_WORKERS, *store.workers(oid)], key=f"tl-worker-{oid}")
    first = cols[1].number_input("From batch #", min_value=0, max_value=max(0, o.total_batches - 1),
                                 value=0, step=1, key=f"tl-first-{oid}")
    window = cols[2].number_input(f"Window (batches, 0 = all; single bars up to {SINGLE_BARS_MAX:,})",
                                  min_value=0, max_value=SINGLE_BARS_MAX, value=0, step=100,
                                  key=f"tl-window-{oid}")
    worker = None if worker == ALL_WORKERS else worker
    filt = BatchFilter.of(worker=worker, first=int(first) or None)
    span = store.batch_span(oid, filt)
    started = span[0]
    if not started:
        st.caption("No batch has started yet." if not worker else f"No batch has started on {worker}.")
        return
    if window or started <= SINGLE_BARS_MAX:
        shown = _started_page(store, oid, filt, int(window) or SINGLE_BARS_MAX)
        st.caption(f"{len(shown):,} batches from #{shown[0].idx if shown else first}"
                   + (f" on {worker}" if worker else "") + ": one bar per batch")
        with st.container(key="orch-timeline-bars"):
            from switchyard.runs.backups import stopped_copies

            st.plotly_chart(timeline_figure(shown, stopped=stopped_copies(o.run_dir or "")), width="stretch",
                            key=f"timeline-{oid}")
        return
    agg, slowest = _aggregate(str(store.path), oid, _stamp(o, counts), worker, int(first) or None, span)
    st.caption(f"{started:,} batches: busy share per worker over {agg['buckets']} buckets of "
               f"{agg['width']:.2f} s (1.0 = one batch executing all along). Choose a window of at most "
               f"{SINGLE_BARS_MAX:,} batches for one bar per batch.")
    with st.container(key="orch-timeline-aggregated"):
        colors = {r[2]: PLOT_COLORS[color_of(r[2])] for r in agg["rows"]}
        # Inline SVG (markdown keeps it; st.html's sanitizer drops svg): no chart bundle to load.
        st.markdown(busy_svg(agg, colors), unsafe_allow_html=True)
    st.markdown("**Slowest batches**")
    st.dataframe(batch_frame(slowest), hide_index=True, width="stretch", key=f"slowest-{oid}")


def _started_page(store: RunStore, oid: str, filt: BatchFilter, n: int) -> list[Batch]:
    """Up to ``n`` batches matching ``filt`` from its first index, read a page at a time."""
    out: list[Batch] = []
    after = None
    while len(out) < n:
        page = store.batch_page(oid, filt, limit=min(1000, n - len(out)), after=after)
        if not page:
            break
        out += page
        after = page[-1].idx
    return [b for b in out if b.started_at]


def errors_tab(store: RunStore, o: Orchestration, counts: dict[str, int]) -> None:
    groups = store.error_groups(o.id, limit=20)
    if not groups:
        st.caption("No failed batches.")
        return
    errors = sum(counts.get(s, 0) for s in ("failed", "dead", "cancelled"))
    st.caption(f"{errors:,} failed, dead or cancelled batches in {len(groups)} error groups"
               + (" (the 20 largest)" if len(groups) == 20 else "") + ", largest first.")
    for n, g in enumerate(groups):
        with st.container(border=True, key=f"orch-error-group-{n}"):
            st.markdown(f"**{g['count']:,}** × `{g['signature']}` · {g['dead']:,} dead · first "
                        f"{g['first_name']} (batch {g['first_idx']}, worker {g['worker'] or '?'})")
            st.code(g["example"], language=None)
            if g["dead"] and st.button(f"Reprocess these {g['dead']:,} dead letters", icon=":material/replay:",
                                       key=f"orch-reprocess-group-{o.id}-{n}"):
                idxs = store.batch_indices(o.id, BatchFilter.of("dead", signature=g["signature"]))
                _reprocess(store, o.id, idxs)


def dead_tab(store: RunStore, o: Orchestration, counts: dict[str, int]) -> None:
    dead = store.batch_page(o.id, BatchFilter.of("dead"), limit=100)
    if not dead:
        st.caption("No dead letters: every batch either completed or still has attempts left.")
        return
    st.caption(f"{counts.get('dead', 0):,} dead letters" + (" (the first 100)" if counts.get("dead", 0) > 100 else ""))
    st.dataframe(pd.DataFrame({"batch": [b.idx for b in dead], "name": [b.name for b in dead],
                               "items": [b.items for b in dead], "attempts": [b.attempts for b in dead],
                               "last error": [b.error or "" for b in dead]}),
                 hide_index=True, width="stretch")
    if st.button("Reprocess dead letters", icon=":material/replay:", key=f"orch-reprocess-{o.id}"):
        _reprocess(store, o.id, None)


def _reprocess(store: RunStore, oid: str, idxs: list[int] | None) -> None:
    try:
        again = control.reprocess(store, oid, idxs)
    except SwitchyardError as e:
        show_error(e)
        return
    st.toast(f"{len(again)} batches back to work")
    st.rerun()


def log_tab(store: RunStore, o: Orchestration, counts: dict[str, int]) -> None:
    key = f"log-bytes-{o.id}"
    cap = st.session_state.get(key, LOG_BYTES)
    try:
        text, shown, size = tail_bytes(control.log_path(store, o.id), cap)
    except SwitchyardError:
        text, shown, size = "", 0, 0
    if size > shown:
        st.caption(f"the last {shown / 1024:,.0f} KiB of {size / 1024:,.0f} KiB")
    with st.container(key="orch-log"):
        st.code(text or "(no log yet)", language=None)
    if size > shown and st.button("Load more", icon=":material/expand_less:", key=f"log-more-{o.id}"):
        st.session_state[key] = cap * 4
        st.rerun()
