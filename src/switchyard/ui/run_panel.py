"""Run: the AGI.run (or AGI.benchmark) snippet, RUN, live run logs, progress, Cancel, results.

RUN calls the same AGI function with the same arguments as the snippet, in a
background thread (:mod:`switchyard.ui_jobs`); the run itself executes in its
driver process. The panel attaches to the app's newest orchestration in the run
store, so a reload, a second tab or a run started from the CLI shows the same
run with its log and progress.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import streamlit as st

from switchyard import ui_jobs
from switchyard.runs.bench import benchmark_path
from switchyard.actions import Action
from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError
from switchyard.modes import mode_string
from switchyard.runs.state import Orchestration, Status, allowed_commands
from switchyard.runs.store import RunStore
from switchyard.settings import AppSettings
from switchyard.ui import run_review
from switchyard.ui.bar_chart import PEAK, Series, bars_svg
from switchyard.ui.common import error_text, show_error, snippet_block
from switchyard.ui.log_panel import engine_log_view, live, log_lines, log_view
from switchyard.ui.status import progress_bar, status_badge

KIND = "run"
RUN_POLL_SECONDS = 0.3  # the first log line is what the operator waits for after RUN
_stores: dict[str, RunStore] = {}


def run_store(app_env: AppEnv) -> RunStore:
    path = str(app_env.home / "switchyard.db")
    if path not in _stores:
        _stores[path] = RunStore(path)
    return _stores[path]


def newest(store: RunStore, app: str) -> Orchestration | None:
    # A driver that died without a word must not leave the panel "running" forever.
    store.sweep()
    found = store.list(app=app, kind="app", limit=1)
    return found[0] if found else None


def summarize(value) -> dict:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict):
        return {"fastest": value.get("fastest"), "modes": len(value.get("results", []))}
    return {}


def view(job: ui_jobs.JobState | None, orch: Orchestration | None) -> dict:
    """What the run panel shows: which orchestration, which log, whether it is live, which error.

    A job that has not created its orchestration yet shows its own log; once it has,
    the orchestration's status counts (a job that lost its thread does not fail the run).
    """
    of_job = (orch is not None and job is not None
              and job.started_at - 1.0 <= orch.created_at <= (job.ended_at or float("inf")))
    if job is not None and job.is_running and not of_job:
        return {"orch": None, "log": job.log, "live": True, "error": None}
    if orch is None or (job is not None and not of_job and job.started_at > orch.created_at):
        # No orchestration, or the newest is older than a job that failed before creating one.
        error = (job.category, job.error) if job is not None and job.status == ui_jobs.FAILED else None
        return {"orch": None, "log": job.log if job else None, "live": False, "error": error}
    use_job_log = of_job and job.status != ui_jobs.FAILED
    log = job.log if use_job_log else str(Path(orch.run_dir or "") / "run.log")
    active = orch.status.is_active or orch.status == Status.PENDING or (job is not None and job.is_running)
    return {"orch": orch, "log": log, "live": active, "error": None}


def _progress(store: RunStore, orch: Orchestration, app_env: AppEnv | None = None) -> None:
    top = st.columns([1, 5, 1], vertical_alignment="center")
    with top[0]:
        status_badge(orch.status.value)
    top[1].caption(f"orchestration `{orch.id}` · mode {orch.mode} (`{mode_string(orch.mode)}`) · "
                   f"started {time.strftime('%H:%M:%S', time.localtime(orch.created_at))}")
    if "cancel" in allowed_commands(orch.status):
        if top[2].button("Cancel", key=f"run-cancel-{orch.id}"):
            try:
                store.command(orch.id, "cancel")
            except SwitchyardError as e:
                show_error(e)
    with st.container(key="run-progress"):
        progress_bar(orch.completed_batches, orch.total_batches)
        if orch.status == Status.RUNNING:
            from switchyard.analysis.runs import eta_seconds
            from switchyard.runs.eta import eta_slots, eta_text

            st.caption(eta_text(eta_seconds(store.batches(orch.id), eta_slots(orch.mode, orch.workers))),
                       help="from the completed batches' durations")
    if orch.status == Status.COMPLETED:
        st.success(f"Completed {orch.completed_batches}/{orch.total_batches} batches in "
                   f"{orch.seconds or 0:.2f} s. Output: `{orch.output}`")
        if app_env is not None:
            run_review.render(app_env, store, orch)
    elif orch.status in (Status.FAILED, Status.INTERRUPTED):
        st.error(error_text("app", f"run {orch.id} {orch.status.value}: {orch.error or 'see the log'}",
                            "The app's traceback (if any) is in the run logs: fix it, then RUN again "
                            "(or retry it on the Orchestrations page)."))
    elif orch.status == Status.CANCELLED:
        st.info(f"Run {orch.id} was cancelled after {orch.completed_batches}/{orch.total_batches} batches.")


def benchmark_results(app_env: AppEnv) -> None:
    path = benchmark_path(app_env)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    rows = pd.DataFrame(doc.get("results", []))
    if rows.empty:
        return
    fastest = doc.get("fastest")
    st.markdown(f"**Benchmark** ({time.strftime('%Y-%m-%d %H:%M', time.localtime(doc.get('created_at', 0)))})"
                + (f": fastest is mode {fastest} (`{mode_string(fastest)}`)" if fastest is not None else ""))
    shown = rows[[c for c in ("mode", "mode_string", "status", "seconds", "execution_seconds", "reason")
                  if c in rows]]
    st.dataframe(shown.style.apply(
        lambda r: ["background-color: #d4edda" if r["mode"] == fastest else "" for _ in r], axis=1),
        hide_index=True, width="stretch")
    ok = rows[rows["status"] == "completed"]
    if not ok.empty:  # inline SVG: the Orchestrate page loads no chart bundle
        names = [f"{m} ({s})" for m, s in zip(ok["mode"], ok["mode_string"])]
        seconds = Series("seconds", dict(zip(names, map(float, ok["seconds"]))),
                         fills={n: PEAK for n, m in zip(names, ok["mode"]) if m == fastest})
        with st.container(key="run-bench-chart"):
            st.markdown(bars_svg("Seconds per mode (the fastest in orange)", names, [seconds], "seconds", unit="s",
                                 legend=False), unsafe_allow_html=True)


def _start(app_env: AppEnv, action: Action) -> None:
    try:
        ui_jobs.start_call(app_env, KIND, action.call, summarize=summarize)
    except SwitchyardError as e:
        st.session_state[f"run-start-error-{app_env.app}"] = e


def render(app_env: AppEnv, settings: AppSettings, ready: bool) -> None:
    """The Run section."""
    a = app_env.app
    bench = st.toggle("Benchmark all modes", key=f"run-bench-{a}",
                      help="runs every mode the settings allow and compares them (writes benchmark.json)")
    action = Action.from_settings("benchmark" if bench else "run", app_env, settings)
    if not bench and st.toggle("Backup tasks", key=f"run-backups-{a}",
                               help="near the end, a batch running far past its expected time gets a copy on "
                                    "a free worker; the first copy to complete wins (apps with "
                                    "pure_batches = True, dask modes)"):
        action = replace(action, backups=True)
    try:
        snippet_block(action.snippet(), action.file_name, action.save_snippet, key=f"run-{a}-{action.kind}")
    except SwitchyardError as e:
        show_error(e)
        return
    store = run_store(app_env)
    # The click's callback starts the job before this script reruns: the first log lines are
    # often there by the time the panel below is drawn.
    failed = st.session_state.pop(f"run-start-error-{a}", None)
    state = view(ui_jobs.job_state(app_env, KIND), newest(store, a))
    busy = state["live"]
    why = "" if ready else "INSTALL the worker environment first"
    if busy:
        why = "a run of this app is in progress"
    st.button("RUN" if not bench else "RUN BENCHMARK", type="primary", disabled=bool(why), key=f"run-go-{a}",
              help=why or f"runs AGI.{action.agi_name}(...) exactly as shown above", on_click=_start,
              args=(app_env, action))
    if failed is not None:
        show_error(failed)

    def panel() -> None:
        now = view(ui_jobs.job_state(app_env, KIND), newest(store, a))
        if now["orch"] is not None:
            _progress(store, now["orch"], app_env)
        elif now["live"]:
            st.caption("starting: validating, planning, starting the driver…")
        if now["error"]:
            category, message = now["error"]
            st.error(error_text(category or "app", message or "the run could not start"))
        st.markdown("**Run logs**")
        log_view(log_lines(now["log"]), key="run-log", height=360)
        # engine.log lies in the run's folder, also while the panel follows the RUN job's own log
        orch = now["orch"]
        engine_log_view(Path(orch.run_dir) / "run.log" if orch is not None and orch.run_dir else now["log"],
                        key="engine-log")
        if busy and not now["live"]:
            st.rerun()  # finished: refresh the page (Load data, benchmark results)

    live(panel, active=busy, every=RUN_POLL_SECONDS)
    if bench or benchmark_path(app_env).is_file():
        with st.expander("Benchmark results", expanded=bench):
            benchmark_results(app_env)
            from switchyard.ui.analysis import benchmark_history

            benchmark_history(benchmark_path(app_env), key="bench-history")
