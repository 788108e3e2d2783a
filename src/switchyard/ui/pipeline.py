"""Widgets of the Pipeline page: the step editor, adding steps, running, the DAG, logs and history.

The pipeline being edited is a draft in the session (per app), so a failed Save
(a syntax error, a cycle) loses nothing; Save writes ``pipeline.toml`` atomically.
"""

from __future__ import annotations

import time
from dataclasses import replace

import streamlit as st
from streamlit_ace import st_ace

from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError
from switchyard.pipeline import model
from switchyard.pipeline.graph import step_graph
from switchyard.pipeline.model import Pipeline, Step
from switchyard.pipeline import runs
from switchyard.ui import notebook_panel
from switchyard.ui.common import section, show_error

BADGE = {"completed": "green", "running": "blue", "pending": "gray", "failed": "orange", "dead": "red",
         "skipped": "gray", "cancelled": "violet"}
INLINE_TEMPLATE = ("import os\n\n"
                   "# $SWITCHYARD_STEP_DIR is this step's folder; $SWITCHYARD_DEP_DIRS its dependencies'.\n"
                   "print('hello from', os.environ['SWITCHYARD_STEP_DIR'])\n")


def _key(app_env: AppEnv) -> str:
    return f"pipeline-draft-{app_env.app}"


def draft(app_env: AppEnv) -> Pipeline:
    """The pipeline being edited (loaded from ``pipeline.toml`` on first use)."""
    key = _key(app_env)
    if key not in st.session_state:
        st.session_state[key] = model.load(app_env)
        st.session_state[key + "-gen"] = 0
    return st.session_state[key]


def _bump(app_env: AppEnv) -> None:
    """New editor widget keys, so editors show the draft again after a change made here."""
    st.session_state[_key(app_env) + "-gen"] = st.session_state.get(_key(app_env) + "-gen", 0) + 1


def reload(app_env: AppEnv) -> None:
    st.session_state.pop(_key(app_env), None)


def is_dirty(app_env: AppEnv, p: Pipeline) -> bool:
    path = model.pipeline_path(app_env)
    saved = model.loads(path.read_text()) if path.is_file() else Pipeline()
    return model.dumps(saved) != model.dumps(p)


# -- the steps ------------------------------------------------------------------------------

def steps_editor(app_env: AppEnv, p: Pipeline, statuses: dict[str, str], stale: dict[str, list[str]]) -> None:
    """One panel per step: status badge, staleness with Regenerate, order, remove, settings, code."""
    gen = st.session_state.get(_key(app_env) + "-gen", 0)
    ids = p.ids()
    for i, s in enumerate(list(p.steps)):
        with st.container(border=True, key=f"step-{s.id}"):
            head = st.columns([6, 1, 1, 1])
            with head[0]:
                st.markdown(f"**{s.title or s.id}** `{s.id}` · {s.source}")
                status = statuses.get(s.id)
                st.badge(status or "not run", color=BADGE.get(status, "gray"))
            if head[1].button("↑", key=f"up-{s.id}-{gen}", disabled=i == 0, help="move up"):
                p.steps[i - 1], p.steps[i] = p.steps[i], p.steps[i - 1]
                _bump(app_env)
                st.rerun()
            if head[2].button("↓", key=f"down-{s.id}-{gen}", disabled=i == len(p.steps) - 1, help="move down"):
                p.steps[i + 1], p.steps[i] = p.steps[i], p.steps[i + 1]
                _bump(app_env)
                st.rerun()
            confirm_key = f"confirm-remove-{s.id}"
            if head[3].button("Remove", key=f"remove-{s.id}-{gen}"):
                st.session_state[confirm_key] = True
            if st.session_state.get(confirm_key):
                st.warning(f"Remove step '{s.id}'? Steps that depend on it must be changed too.")
                c1, c2 = st.columns(2)
                if c1.button("Confirm remove", key=f"confirm-{s.id}-{gen}", type="primary"):
                    p.steps.remove(s)
                    st.session_state.pop(confirm_key, None)
                    _bump(app_env)
                    st.rerun()
                if c2.button("Keep it", key=f"keep-{s.id}-{gen}"):
                    st.session_state.pop(confirm_key, None)
                    st.rerun()
            if s.id in stale:
                st.warning(f"Stale: [args] changed since this step was generated: {', '.join(stale[s.id])}")
                if st.button("Regenerate", key=f"regen-{s.id}-{gen}"):
                    try:
                        p.steps[i] = model.regenerate(app_env, s)
                        _bump(app_env)
                        st.rerun()
                    except SwitchyardError as e:
                        show_error(e)
            with st.expander("Settings and code", expanded=False):
                _step_fields(p, i, s, [x for x in ids if x != s.id], gen)


def _step_fields(p: Pipeline, i: int, s: Step, others: list[str], gen: int) -> None:
    k = f"{s.id}-{gen}"
    c = st.columns(4)
    title = c[0].text_input("Title", s.title, key=f"title-{k}")
    retries = c[1].number_input("Retries", 0, 20, s.retries, key=f"retries-{k}")
    delay = c[2].number_input("Retry delay (s)", 0.0, 3600.0, float(s.retry_delay), key=f"delay-{k}")
    timeout = c[3].number_input("Timeout (s)", 0.1, 86400.0, float(s.timeout), key=f"timeout-{k}")
    c = st.columns(3)
    # An id that no longer exists stays listed, so Save names it instead of dropping it silently.
    options = others + [d for d in s.depends_on if d not in others]
    deps = c[0].multiselect("Depends on", options, list(s.depends_on), key=f"deps-{k}")
    choices = [None] + others
    fallback = c[1].selectbox("Fallback", choices, choices.index(s.fallback) if s.fallback in choices else 0,
                              key=f"fallback-{k}", format_func=lambda x: x or "none")
    enabled = c[2].checkbox("Enabled", s.enabled, key=f"enabled-{k}")
    code = st_ace(value=s.code, language="python", key=f"ace-{k}", min_lines=6, max_lines=30,
                  auto_update=True, theme="chrome")
    code = s.code if code is None else code
    err = model.syntax_error(code)
    if err:
        st.error(f"syntax error at line {err[0]}: {err[1]}")
    p.steps[i] = replace(s, title=title, retries=int(retries), retry_delay=float(delay), timeout=float(timeout),
                         depends_on=list(deps), fallback=fallback, enabled=enabled, code=code)


def add_step(app_env: AppEnv, p: Pipeline) -> None:
    """"New step" (empty pipeline) or "Add step": a fresh generation, an imported snippet file, or inline."""
    label = "New step" if not p.steps else "Add step"
    files = model.snippet_files(app_env)
    sources = ["gen step", *[str(f) for f in files], "inline"]
    with st.container(border=True, key="add-step"):
        st.markdown(f"**{label}**")
        c = st.columns([3, 2, 3])
        source = c[0].selectbox("Step source", sources, key="add-source",
                                format_func=lambda x: x if x in ("gen step", "inline") else f"snippet {x}")
        kind = c[1].selectbox("Snippet kind", ["run", "distrib", "install"], key="add-kind",
                              disabled=source != "gen step")
        suggested = _free_id(p, "run" if source == "gen step" else "step")
        sid = c[2].text_input("Step id", suggested, key=f"add-id-{len(p.steps)}")
        deps = st.multiselect("Depends on", p.ids(), key=f"add-deps-{len(p.steps)}")
        if st.button(label, key="add-button", type="primary"):
            try:
                if source == "gen step":
                    step = model.generated_step(app_env, sid, kind, depends_on=list(deps))
                elif source == "inline":
                    step = Step(id=sid, code=INLINE_TEMPLATE, title="inline step", depends_on=list(deps))
                else:
                    step = model.imported_step(source, sid, depends_on=list(deps))
                if sid in p.ids():
                    raise model.PipelineError(f"step id '{sid}' is already used: choose another id")
                p.steps.append(step)
                _bump(app_env)
                st.rerun()
            except SwitchyardError as e:
                show_error(e)


def _free_id(p: Pipeline, base: str) -> str:
    taken, n, sid = set(p.ids()), 1, base
    while sid in taken:
        n += 1
        sid = f"{base}_{n}"
    return sid


def save_bar(app_env: AppEnv, p: Pipeline) -> None:
    """Save (validated, atomic) and Revert; every problem is listed and nothing is written."""
    c = st.columns([1, 1, 4])
    if c[0].button("Save", key="save-pipeline", type="primary"):
        found = model.problems(p)
        if found:
            for msg in found:
                st.error(msg)
            st.caption("Nothing was written; your edits are kept here.")
        else:
            path = model.save(app_env, p)
            st.toast(f"saved {path}")
            st.session_state["pipeline-saved"] = str(path)
    if c[1].button("Revert", key="revert-pipeline", help="discard unsaved edits"):
        reload(app_env)
        st.rerun()
    if is_dirty(app_env, p):
        c[2].caption("unsaved changes")
    elif st.session_state.get("pipeline-saved"):
        c[2].caption(f"saved to `{st.session_state['pipeline-saved']}`")


# -- running ----------------------------------------------------------------------------------

def run_bar(app_env: AppEnv, p: Pipeline, stale: dict[str, list[str]]) -> None:
    """Run pipeline / Run selected step (the saved pipeline); stale steps need a confirmation."""
    dirty = is_dirty(app_env, p)
    allow = False
    if stale:
        st.warning(model.stale_message(stale))
        allow = st.checkbox("Run the stale steps as they are", key="allow-stale")
    c = st.columns([2, 2, 3])
    run_all = c[0].button("Run pipeline", key="run-pipeline", type="primary", disabled=dirty or not p.steps)
    only = c[2].selectbox("Step", p.ids(), key="run-step-id", label_visibility="collapsed") if p.steps else None
    run_one = c[1].button("Run selected step", key="run-step", disabled=dirty or not p.steps)
    if dirty:
        st.caption("Save first: a run uses the saved pipeline.toml.")
    if run_all or run_one:
        try:
            with st.spinner("starting the pipeline run (installs the app's environment when missing)"):
                oid = runs.start_run(app_env, only=only if run_one else None, allow_stale=allow)
            st.session_state["pipeline-run"] = oid
            st.toast(f"pipeline run {oid} started")
        except SwitchyardError as e:
            show_error(e)


def live_run(app_env: AppEnv, p: Pipeline, stale: dict[str, list[str]]) -> None:
    """The latest run: status, the DAG coloured by step status, controls and each step's log.
    Refreshes itself every second while the run is active."""
    active = False
    hist = runs.history(app_env, limit=1)
    if hist:
        active = hist[0]["status"] in ("pending", "running", "pausing", "cancelling")

    @st.fragment(run_every=1.0 if active else None)
    def body() -> None:
        from switchyard.runs import control

        store = runs.open_store(app_env)
        control.sweep(store, min_interval=2.0)
        latest = runs.history(app_env, limit=1, store=store)
        statuses = latest[0]["steps"] if latest else {}
        with st.container(key="pipeline-dag"):
            st.graphviz_chart(step_graph(p, statuses, stale))
        if not latest:
            st.caption("No run yet.")
            return
        d = runs.run_detail(store, latest[0]["orchestration_id"])
        with st.container(key="pipeline-run-status"):
            st.markdown(f"Run `{d['orchestration_id']}`: **{d['status']}** · workflow `{d['workflow_id']}`")
        if d["error"]:
            st.error(d["error"])
        cols = st.columns(4)
        for j, command in enumerate(d["commands"]):
            if command == "start":
                continue
            if cols[j % 4].button(command.capitalize(), key=f"cmd-{command}"):
                try:
                    getattr(control, command)(store, d["orchestration_id"])
                    st.rerun()
                except SwitchyardError as e:
                    show_error(e)
        for s in d["steps"]:
            with st.expander(f"{s['id']}: {s['status']}" + (f" ({s['error']})" if s["error"] else ""),
                             expanded=s["status"] in ("running", "dead")):
                with st.container(key=f"log-{s['id']}"):
                    st.code(runs.step_log_text(d["run_dir"], s["id"]) or "(no output yet)", language=None)
        if not active and d["status"] in ("pending", "running", "pausing", "cancelling"):
            st.rerun()  # a run started since the page drew: refresh so the fragment polls

    body()


def history_table(app_env: AppEnv) -> None:
    rows = runs.history(app_env, limit=30)
    if not rows:
        st.caption("No pipeline runs yet.")
        return
    st.dataframe([{"run": r["orchestration_id"], "status": r["status"], "workflow": r["workflow_id"],
                   "started": time.strftime("%H:%M:%S", time.localtime(r["started_at"])) if r["started_at"]
                   else "-", "seconds": round(r["seconds"], 2) if r["seconds"] else None,
                   "steps": ", ".join(f"{k}: {v}" for k, v in r["steps"].items())} for r in rows],
                 hide_index=True, key="pipeline-history")


def breakers_table(app_env: AppEnv, p: Pipeline) -> None:
    states = runs.breaker_states(app_env, p)
    st.dataframe([{"step kind": k, "state": v["state"], "recent failures": v["failures"],
                   "retry at": time.strftime("%H:%M:%S", time.localtime(v["retry_at"])) if v["retry_at"]
                   else "-"} for k, v in states.items()], hide_index=True)
    st.caption(f"Opens after {p.breaker.threshold} consecutive failures within {p.breaker.window:g} s; "
               f"cool-down {p.breaker.cooldown:g} s ([breaker] in pipeline.toml).")


def page(app_env: AppEnv) -> None:
    """The whole Pipeline page for ``app_env``."""
    try:
        p = draft(app_env)
    except SwitchyardError as e:  # a pipeline.toml that does not parse: say where, offer a fresh start
        show_error(e)
        if st.button("Start an empty pipeline", key="reset-pipeline"):
            st.session_state[_key(app_env)] = Pipeline()
            st.rerun()
        return
    try:
        args = model.current_args(app_env)
    except SwitchyardError as e:
        show_error(e)
        args = {}
    stale = model.stale_steps(p, args)
    statuses = runs.last_statuses(app_env)
    with section("Steps", "steps"):
        if p.steps and not model.problems(p):
            st.caption(f"entry points: {', '.join(p.entry_points())} · finish points: "
                       f"{', '.join(p.finish_points())}")
        steps_editor(app_env, p, statuses, stale)
        add_step(app_env, p)
        imported = notebook_panel.render_pipeline(app_env, p.steps, p.ids())
        if imported:
            p.steps.extend(imported)
            _bump(app_env)
            st.rerun()
        save_bar(app_env, p)
    with section("Run", "run"):
        run_bar(app_env, p, stale)
        live_run(app_env, p, stale)
    with section("Run history", "history"):
        history_table(app_env)
    with section("Circuit breakers", "breakers"):
        breakers_table(app_env, p)
