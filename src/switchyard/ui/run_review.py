"""After a run: planned against measured load per worker, the makespan against its lower bound,
and the partitions the plan mis-estimated most (:mod:`switchyard.plan.actuals`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError
from switchyard.plan.actuals import RunReview, review
from switchyard.runs.state import Orchestration
from switchyard.runs.store import RunStore
from switchyard.ui.bar_chart import BAR, LIGHT, Series, bars_svg

#: Above this many batches the review is not drawn here (the Orchestrations page pages them).
MAX_BATCHES = 20_000


def run_review(app_env: AppEnv, store: RunStore, orch: Orchestration) -> RunReview | None:
    """The review of a finished run, from its plan file and batch rows (None when too large)."""
    from switchyard.plan import WorkPlan
    from switchyard.plan.costs import measured_model

    if orch.total_batches > MAX_BATCHES:
        return None
    try:
        plan = WorkPlan.load(Path(orch.run_dir or "") / "plan.json")
    except SwitchyardError:
        plan = None
    model = measured_model(store, orch.app, int(orch.mode), orch.args or {})
    return review(plan, store.batches(orch.id), model.speeds)


def chart(rev: RunReview) -> str:
    """One pair of bars per worker, as inline SVG: planned seconds and measured busy seconds."""
    planned = "planned (predicted s)" if rev.basis == "predicted" else "planned (weight share of measured s)"
    return bars_svg("Planned vs measured load per worker", list(rev.workers),
                    [Series(planned, {w: rev.planned.get(w, 0.0) for w in rev.workers}, fill=LIGHT),
                     Series("measured", {w: rev.measured.get(w, 0.0) for w in rev.workers}, fill=BAR)],
                    "seconds", unit="s")


def render(app_env: AppEnv, store: RunStore, orch: Orchestration) -> None:
    key = f"run-review-{orch.id}"
    rev = st.session_state.get(key)
    if rev is None:
        rev = run_review(app_env, store, orch)
        if rev is None:
            return
        st.session_state[key] = rev
    m = st.columns(3)
    m[0].metric("Measured makespan", f"{rev.makespan:.2f} s", help="first batch start to last batch end")
    m[1].metric("Lower bound of the measured costs", f"{rev.lower_bound:.2f} s",
                help="max(sum of costs / sum of slot speeds, largest cost / fastest slot)")
    m[2].metric("Makespan / lower bound", f"{rev.ratio:.3f}")
    with st.container(key="run-review-chart"):
        st.markdown(chart(rev), unsafe_allow_html=True)  # inline SVG: no chart bundle to load
    if rev.misestimated:
        st.caption("Most mis-estimated partitions (measured / predicted seconds)")
        st.dataframe(pd.DataFrame(rev.misestimated).round(3), hide_index=True, width="stretch")
