"""The warm-cluster panel of the Orchestrate page: Start / Status / Stop.

Start and Stop run as background jobs (``ui_jobs``), so the page never waits
for workers to join; their log and the cluster status refresh while they run.
The buttons call the same functions as ``switchyard cluster up|status|down``.
"""

from __future__ import annotations

import streamlit as st

from switchyard import ui_jobs
from switchyard.app import AppEnv
from switchyard.cluster import warm
from switchyard.exceptions import SwitchyardError
from switchyard.runs import agent
from switchyard.ui.common import show_error

KIND = "cluster"


def _start(app_env: AppEnv, action: str) -> None:
    fn = ((lambda on_line: warm.up_sync(app_env, on_line=on_line)) if action == "up"
          else (lambda on_line: warm.down_sync(app_env, on_line=on_line)))
    try:
        ui_jobs.start_call(app_env, KIND, fn, summarize=lambda value: {"action": action})
    except SwitchyardError as e:
        show_error(e)


def _status_rows(st_: dict) -> list[dict]:
    rows = []
    for host, h in st_.get("hosts", {}).items():
        for w in h["workers"]:
            rows.append({"host": host, "worker": w["name"], "address": w["address"],
                         "memory MB": round((w.get("memory") or 0) / 2**20, 1),
                         "processing": w.get("processing", 0)})
        for name in h.get("missing", []):
            rows.append({"host": host, "worker": name, "address": "missing", "memory MB": None,
                         "processing": None})
    return rows


def job_rows(st_: dict) -> list[dict]:
    """A batch-system cluster's jobs: SLURM id, state, node, the workers each runs."""
    return [{"job": j["id"], "state": j["state"], "node": j.get("node") or "",
             "workers": ", ".join(j.get("workers") or []) or "none yet",
             "reason": "" if j.get("reason") in (None, "None") else j["reason"]} for j in st_.get("jobs") or []]


def render(app_env: AppEnv) -> None:
    """Start, inspect and stop the app's warm cluster; RUN uses it while it is up."""
    st.caption("A warm cluster stays up between runs; RUN uses it instead of starting one. "
               f"CLI: `switchyard cluster up|status|down {app_env.app}`")
    job = ui_jobs.job_state(app_env, KIND)
    busy = job is not None and job.is_running
    c1, c2, c3 = st.columns(3)
    if c1.button("Start cluster", key=f"cluster-up-{app_env.app}", disabled=busy):
        _start(app_env, "up")
        st.rerun()
    c2.button("Status", key=f"cluster-status-{app_env.app}")  # a rerun refreshes the status below
    if c3.button("Stop cluster", key=f"cluster-down-{app_env.app}", disabled=busy):
        _start(app_env, "down")
        st.rerun()
    _live(app_env)
    _agent_line(app_env)


def _agent_line(app_env: AppEnv) -> None:
    """The app's run agent (the resident process that forks drivers): status and Stop."""
    rows = [r for r in agent.status(app_env.home, app_env.app) if r["state"] != "not running"]
    c1, c2 = st.columns([5, 1])
    c1.caption("Run agent: " + ("; ".join(agent.describe(r) for r in rows) if rows else
                                "not running (the next RUN starts it)") + ". CLI: `switchyard agent status`")
    if c2.button("Stop agent", key=f"agent-stop-{app_env.app}", disabled=not rows):
        out = agent.stop(app_env.home, app_env.app)
        if out["left"]:
            st.warning(f"Run agent still running: {', '.join(out['left'])}")
        else:
            st.rerun()


@st.fragment(run_every=1.0)
def _live(app_env: AppEnv) -> None:
    job = ui_jobs.job_state(app_env, KIND)
    if job is not None:
        what = job.result.get("action", "") if job.result else ""
        label = f"cluster job {what}: {job.status}".replace("  ", " ")
        if job.error:
            st.error(f"{label}: {job.error}")
        else:
            st.caption(label)
        lines = ui_jobs.read_log(job, n=40)
        if lines and job.is_running:
            st.code("\n".join(lines), language=None)
    try:
        status = warm.status(app_env)
    except SwitchyardError as e:
        show_error(e)
        return
    state = status["state"]
    if state == "down":
        st.info("Cluster: down. RUN starts a cluster for the run (or press Start cluster).")
        return
    dash = f" · [dashboard]({status['dashboard']})" if status.get("dashboard") else ""
    st.success(f"Cluster: {state} at `{status['address']}` with {status['workers']} worker(s){dash}")
    st.caption(f"Traffic: {warm.traffic_of(status)}")
    rows = _status_rows(status)
    if rows:
        st.dataframe(rows, hide_index=True, use_container_width=True)
    if status.get("kind") == "slurm":
        jobs = job_rows(status)
        st.caption(f"SLURM jobs: {len(jobs)} (job name {status.get('tag') or 'sy-' + app_env.app}; "
                   f"`squeue --name` lists them)")
        if jobs:
            st.dataframe(jobs, hide_index=True, use_container_width=True)
