"""The work plan: graph, per-worker load chart, and an editor that stays fast with 1000s of partitions.

Edits go to a *draft* kept in the session: the graph, the chart and the load table
show the draft (makespan and per-worker load before saving); Save writes it with
``submit.save_plan`` (RUN then uses it), Reset re-plans. The editor shows one filtered
page of partitions at a time, and the graph is aggregated by ``plan_digraph``. Past
``BIG_PLAN`` partitions the page adds per-worker weight ranges and the largest partitions
(``plan.summary``), and the move picker lists one page, so what the page sends is bounded by
what it shows: a 100,000-partition plan draws as fast as a small one.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import replace

import graphviz
import pandas as pd
import streamlit as st

from switchyard.runs import submit
from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError
from switchyard.plan import WorkPlan, plan_digraph, reassign_many
from switchyard.plan.graph import dot_svg
from switchyard.plan.summary import largest_partitions, worker_summary
from switchyard.ui.common import show_error
from switchyard.ui.bar_chart import PEAK, Series, bars_svg

PAGE_SIZE = 50
ALL_WORKERS = "all workers"
BIG_PLAN = 2_000  # partitions; above: the summary view
MOVE_CHOICES = 1_000  # the move picker lists every matching partition up to this many, else one page


# -- pure helpers (tested without a browser) ---------------------------------------------------

def plan_rows(plan: WorkPlan) -> pd.DataFrame:
    """One row per partition, in the app's partition order: partition, weight, share %, worker."""
    total = plan.total_weight
    rows = [(p.index, p.name, p.weight, s.id) for s in plan.slots for p in s.partitions]
    rows.sort()
    frame = pd.DataFrame(rows, columns=["index", "partition", "weight", "worker"])
    frame.insert(3, "share %", (100.0 * frame["weight"] / total).round(6) if total > 0 else 0.0)
    return frame.drop(columns="index").reset_index(drop=True)


def filter_rows(rows: pd.DataFrame, text: str = "", worker: str = ALL_WORKERS) -> pd.DataFrame:
    out = rows
    if text.strip():
        out = out[out["partition"].str.contains(text.strip(), case=False, regex=False)]
    if worker and worker != ALL_WORKERS:
        out = out[out["worker"] == worker]
    return out.reset_index(drop=True)


def page_of(rows: pd.DataFrame, page: int, size: int = PAGE_SIZE) -> pd.DataFrame:
    start = (max(1, page) - 1) * size
    return rows.iloc[start:start + size].reset_index(drop=True)


def page_count(n: int, size: int = PAGE_SIZE) -> int:
    return max(1, math.ceil(n / size))


def moves_from_edit(before: pd.DataFrame, after: pd.DataFrame) -> dict[str, str]:
    """Partition -> new worker for the rows whose worker the operator changed in the table."""
    if len(before) != len(after):
        return {}
    changed = before["worker"].to_numpy() != after["worker"].to_numpy()
    return {str(n): str(w) for n, w in zip(after["partition"][changed], after["worker"][changed]) if w}


def load_table(draft: WorkPlan, saved: WorkPlan, ranges: bool = False) -> pd.DataFrame:
    """Per worker: partitions, weight and load % of the draft, and its load % in the saved plan;
    with ``ranges`` also its smallest, median and largest partition weight."""
    share, before = draft.load_percent(), saved.load_percent()
    predicted = draft.predicted_seconds() or {}
    spread = {r["worker"]: r for r in worker_summary(draft)} if ranges else {}
    return pd.DataFrame([
        {"worker": s.id, "partitions": len(s.partitions), "weight": s.weight,
         "load %": round(share[s.id], 2), "saved load %": round(before.get(s.id, 0.0), 2),
         **({"predicted s": round(predicted[s.id], 3)} if predicted else {}),
         **({k: spread[s.id][k] for k in ("min weight", "median weight", "max weight")} if ranges else {})}
        for s in draft.slots
    ])


def move_choices(shown: pd.DataFrame, view: pd.DataFrame, limit: int = MOVE_CHOICES) -> list[str]:
    """The partitions the move picker offers: every matching one up to ``limit``, else the page's."""
    return (shown if len(shown) <= limit else view)["partition"].tolist()


def moved(draft: WorkPlan, saved: WorkPlan) -> dict[str, str]:
    """Partitions whose worker differs between the draft and the saved plan."""
    if draft is saved:
        return {}
    a, b = draft.assignment(), saved.assignment()
    return {name: slot for name, slot in a.items() if b.get(name) != slot}


def ratio(plan: WorkPlan) -> float:
    bound = plan.lower_bound
    return plan.makespan / bound if bound > 0 else 1.0


# -- widgets -----------------------------------------------------------------------------------

def load_chart(draft: WorkPlan, saved: WorkPlan) -> str:
    """The load % per worker of the draft as inline SVG, the peak in orange, and the saved
    plan's as outlines over it while the draft has unsaved moves."""
    ids = [s.id for s in draft.slots]
    share = draft.load_percent()
    peak = max(share.values(), default=0.0)
    series = [Series("this plan", share, fills={i: PEAK for i in ids if share[i] >= peak - 1e-9})]
    if moved(draft, saved):
        series.append(Series("saved plan", saved.load_percent(), outline=True))
    return bars_svg("Load per worker", ids, series, "load %", unit="%", overlay=True, legend=len(series) > 1)


def _stamp(path) -> tuple[int, int, int]:
    # A save replaces the file (a new inode), so two saves within one mtime tick still differ.
    try:
        st_ = path.stat()
    except OSError:
        return (0, 0, 0)
    return (st_.st_mtime_ns, st_.st_ino, st_.st_size)


@st.cache_resource(max_entries=8, show_spinner=False)
def _saved(path: str, stamp: tuple) -> tuple[WorkPlan | None, pd.DataFrame | None]:
    # Shared by the sessions (a page load is a new session): parsing a 100,000-partition plan
    # and its editor rows takes ~1 s, once per file version. Plans are never changed in place.
    from pathlib import Path

    plan = submit.saved_plan_at(Path(path))
    return plan, (plan_rows(plan) if plan is not None else None)


def cached_plan(app_env: AppEnv) -> WorkPlan | None:
    path = submit.plan_path(app_env)
    return _saved(str(path), _stamp(path))[0]


def _rows(app_env: AppEnv, state: dict) -> pd.DataFrame:
    """The editor rows of the draft, made once per draft version."""
    if state.get("rows_version") != state["version"]:
        path = submit.plan_path(app_env)
        plan, rows = _saved(str(path), _stamp(path))
        state["rows"] = rows if state["plan"] is plan else plan_rows(state["plan"])
        state["rows_version"] = state["version"]
    return state["rows"]


def _draft(app_env: AppEnv, saved: WorkPlan) -> dict:
    key = f"plan-draft-{app_env.app}"
    base = (saved.fingerprint, saved.created_at, _stamp(submit.plan_path(app_env)))
    state = st.session_state.get(key)
    if not state or state["base"] != base:
        state = {"base": base, "plan": saved, "version": (state or {}).get("version", 0) + 1}
        st.session_state[key] = state
    return state


def _apply(state: dict, moves: dict[str, str]) -> None:
    try:
        state["plan"] = reassign_many(state["plan"], moves)
    except SwitchyardError as e:
        show_error(e)
        return
    state["version"] += 1  # a fresh editor: its old cell edits refer to rows that moved
    st.rerun()


def editor(app_env: AppEnv, state: dict) -> None:
    """Filter, page through and reassign partitions (in the table, or select and move)."""
    draft: WorkPlan = state["plan"]
    slot_ids = [s.id for s in draft.slots]
    rows = _rows(app_env, state)
    a = app_env.app
    f1, f2, f3 = st.columns([3, 2, 1])
    text = f1.text_input("Filter partitions (name contains)", key=f"plan-filter-{a}")
    worker = f2.selectbox("Worker", [ALL_WORKERS, *slot_ids], key=f"plan-worker-{a}")
    shown = filter_rows(rows, text, worker)
    pages = page_count(len(shown))
    page = int(f3.number_input("Page", 1, pages, 1, key=f"plan-page-{a}-{text}-{worker}-{pages}"))
    view = page_of(shown, page)
    edited = st.data_editor(
        view, hide_index=True, width="stretch", key=f"plan-editor-{a}-{state['version']}-{page}-{text}-{worker}",
        disabled=["partition", "weight", "share %"],
        column_config={"worker": st.column_config.SelectboxColumn("worker", options=slot_ids, required=True),
                       "weight": st.column_config.NumberColumn("weight", format="%.6g"),
                       "share %": st.column_config.NumberColumn("share %", format="%.3g")},
    )
    st.caption(f"{len(shown)} of {len(rows)} partitions match · page {page} of {pages} · "
               f"{PAGE_SIZE} per page · change a worker cell to move a partition")
    moves = moves_from_edit(view, edited)
    if moves:
        _apply(state, moves)
    choices = move_choices(shown, view)
    # Past MOVE_CHOICES matches the picker lists the page: its key follows the page so a
    # selection never outlives its options.
    names_key = f"plan-move-names-{a}" + ("" if len(choices) == len(shown) else f"-{page}-{text}-{worker}")
    if st.session_state.pop(f"plan-moved-{a}", False):
        st.session_state[names_key] = []  # the moved partitions are no longer "to move"
    with st.form(key=f"plan-move-{a}", border=False):
        c1, c2, c3 = st.columns([4, 2, 1], vertical_alignment="bottom")
        label = ("Select partitions to move" if len(choices) == len(shown) else
                 f"Select partitions to move (this page's {len(choices)}; filter to at most "
                 f"{MOVE_CHOICES:,} to pick from all that match)")
        names = c1.multiselect(label, choices, key=names_key)
        target = c2.selectbox("to worker", slot_ids, key=f"plan-move-target-{a}")
        go_move = c3.form_submit_button("Move")
    if go_move and names:
        st.session_state[f"plan-moved-{a}"] = True
        _apply(state, {n: target for n in names})


@st.cache_data(max_entries=16, show_spinner=False)
def _graph_svg(source: str) -> str:
    return dot_svg(source)


_MEMO: OrderedDict[tuple, tuple[tuple, object]] = OrderedDict()
_MEMO_LOCK = threading.Lock()
MEMO_ENTRIES = 64


def _memo(what: str, plans: tuple, compute):
    """``compute()`` once per ``what`` and plan objects, shared by the sessions: each figure of
    a 100,000-partition plan walks every partition (~20 ms each, 0.2 s a page load in all).
    Plans are never changed in place (an edit makes a new draft), so their identity is the key;
    the entry holds the plans themselves, so an id is never reused while it is cached."""
    key = (what, *(id(p) for p in plans))
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], plans)):
            _MEMO.move_to_end(key)
            return hit[1]
    value = compute()
    with _MEMO_LOCK:
        _MEMO[key] = (plans, value)
        while len(_MEMO) > MEMO_ENTRIES:
            _MEMO.popitem(last=False)
    return value


NUMBER_FORMATS = {"partitions": "{:,}", "weight": "{:,.6g}", "min weight": "{:,.6g}", "median weight": "{:,.6g}",
                  "max weight": "{:,.6g}", "load %": "{:.2f}", "saved load %": "{:.2f}", "share %": "{:.3g}",
                  "predicted s": "{:.3f}"}


def _styled(frame: pd.DataFrame, index: str):
    """A static table indexed by ``index``, its numbers formatted for reading (not 50,000,000.0000)."""
    frame = frame.set_index(index)
    return frame.style.format({c: f for c, f in NUMBER_FORMATS.items() if c in frame.columns})


def render_plan(app_env: AppEnv, saved: WorkPlan, replan) -> None:
    """Graph, chart, editor and Save/Reset for the saved plan and its draft."""
    state = _draft(app_env, saved)
    draft: WorkPlan = state["plan"]
    changes = _memo("moved", (draft, saved), lambda: moved(draft, saved))
    m = st.columns(5)
    m[0].metric("Partitions", draft.partition_count)
    m[1].metric("Workers / hosts", f"{len(draft.slots)} / {len({s.host for s in draft.slots})}")
    r_draft = _memo("ratio", (draft,), lambda: ratio(draft))
    m[2].metric("Makespan / lower bound", f"{r_draft:.3f}", delta_color="inverse",
                delta=f"{r_draft - _memo('ratio', (saved,), lambda: ratio(saved)):+.3f}" if changes else None)
    m[3].metric("Unsaved moves", len(changes))
    predicted = _memo("predicted", (draft,), lambda: draft.predicted_makespan_seconds)
    with m[4], st.container(key="plan-predicted"):
        st.metric("Predicted makespan", f"{predicted:.3f} s" if predicted is not None else "—",
                  help="the plan's seconds from the costs measured in past runs of this mode")
    if draft.cost_note:
        st.caption(f"Costs: {draft.cost_note}")
    with st.container(key="plan-graph"):
        graph = _memo("graph", (draft,), lambda: plan_digraph(draft))
        try:  # laid out here: the browser loads no Graphviz of its own
            st.markdown(_graph_svg(graph.source), unsafe_allow_html=True)
        except graphviz.ExecutableNotFound:
            st.graphviz_chart(graph, width="stretch")
    big = draft.partition_count > BIG_PLAN
    with st.container(key="plan-chart"):  # inline SVG: no chart bundle to load
        st.markdown(_memo("chart", (draft, saved), lambda: load_chart(draft, saved)), unsafe_allow_html=True)
    with st.container(key="plan-load-table"):  # static tables: no data grid to load either
        st.table(_memo("table", (draft, saved), lambda: _styled(load_table(draft, saved, ranges=big), "worker")))
    if big:
        with st.container(key="plan-largest"):
            st.caption(f"The 10 largest of {draft.partition_count:,} partitions (the editor below "
                       "pages and filters them all)")
            st.table(_memo("largest", (draft,),
                           lambda: _styled(pd.DataFrame(largest_partitions(draft, 10)), "partition")))
    st.markdown("**Work plan editor**")
    editor(app_env, state)
    b1, b2, b3 = st.columns([1, 1, 4], vertical_alignment="center")
    if b1.button("Save plan", type="primary", disabled=not changes, key=f"plan-save-{app_env.app}"):
        try:
            path = submit.save_plan(app_env, draft)
        except SwitchyardError as e:
            show_error(e)
            return
        st.session_state[f"plan-saved-{app_env.app}"] = f"Saved {len(changes)} move(s) to {path}: RUN uses this plan"
        st.rerun()
    if b2.button("Reset (re-plan)", key=f"plan-reset-{app_env.app}", help="discard edits and plan again"):
        replan()
    if changes:
        b3.caption("unsaved: " + ", ".join(f"{n} → {w}" for n, w in list(changes.items())[:5])
                   + (f" and {len(changes) - 5} more" if len(changes) > 5 else ""))
    note = st.session_state.pop(f"plan-saved-{app_env.app}", None)
    if note:
        st.success(note)


def check_distribute(app_env: AppEnv, action) -> bool:
    """Run the distrib action (what the snippet shows) in this thread; it is quick. True on success."""
    from switchyard.ui.common import show_app_failure

    try:
        with st.spinner("planning: the app lists its partitions, the planner assigns them"):
            plan = action.call()
    except SwitchyardError as e:
        show_error(e)
        return False
    except Exception as e:  # the app's own prepare()/partitions() failed
        show_app_failure(e, "listing its partitions")
        return False
    st.session_state.pop(f"plan-draft-{app_env.app}", None)
    st.session_state[f"plan-made-{app_env.app}"] = (
        f"Planned {plan.partition_count} partitions over {len(plan.slots)} workers: "
        f"makespan {ratio(plan):.3f} x lower bound; {plan.cost_note or 'planned from the app weights'}")
    return True


def render(app_env: AppEnv, action, current_fingerprint: str | None) -> None:
    """The Distribute section: snippet, CHECK DISTRIBUTE, and the saved plan with its editor."""
    from switchyard.ui.common import snippet_block

    try:
        snippet_block(action.snippet(), action.file_name, action.save_snippet, key=f"distrib-{app_env.app}")
    except SwitchyardError as e:
        show_error(e)
        return
    c1, c2, c3 = st.columns([1, 1, 3], vertical_alignment="center")
    if c1.button("CHECK DISTRIBUTE", type="primary", key=f"distrib-go-{app_env.app}"):
        if check_distribute(app_env, action):
            st.rerun()
    measured = replace(action, costs="measured")
    if c2.button("Plan from measured costs", key=f"distrib-measured-{app_env.app}",
                 help="AGI.get_distrib(..., costs='measured'): the costs measured in this app's past runs "
                      "in this mode (the weights, scaled, for partitions never measured)"):
        if check_distribute(app_env, measured):
            st.rerun()
    c3.caption("the same call with `costs=\"measured\"`: plans from the seconds past runs measured")
    made = st.session_state.pop(f"plan-made-{app_env.app}", None)
    if made:
        st.success(made)
    saved = cached_plan(app_env)
    if saved is None:
        st.info("No work plan yet: CHECK DISTRIBUTE to see how the partitions go to the workers.")
        return
    if current_fingerprint is not None and saved.fingerprint != current_fingerprint:
        st.warning("This work plan was made for other args or workers: RUN will re-plan. "
                   "CHECK DISTRIBUTE to see (and edit) the plan RUN would use.")

    def replan() -> None:
        if check_distribute(app_env, action):
            st.rerun()

    render_plan(app_env, saved, replan)
