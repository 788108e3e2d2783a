"""Analysis page: the exported data as tables, charts and maps; runs as timelines and benchmarks."""

import streamlit as st

from switchyard.runs.bench import benchmark_path
from switchyard.analysis import prefs as aprefs
from switchyard.analysis.runs import runs_table
from switchyard.analysis.views import views_for
from switchyard.exceptions import SwitchyardError
from switchyard.runs.state import Status
from switchyard.runs.store import RunStore
from switchyard.ui import analysis as ui
from switchyard.ui.common import app_picker, section, show_error
from switchyard.ui.log_panel import live

RUNS_POLL_SECONDS = 2.0

app_env = app_picker()
st.title("Analysis")


def data_tab(app_env) -> None:
    prefs = aprefs.load_prefs(app_env.settings_path)
    for problem in prefs.problems:
        st.warning(problem)
    path, encoding = ui.source_picker(app_env, prefs)
    try:
        data = ui.load(path, encoding, prefs.sample_rows, app_env.home)
    except SwitchyardError as e:
        show_error(e, "Export the run output on the Orchestrate page, or pick another file in Data source.")
        return
    ui.data_header(data)
    try:
        registry = views_for(app_env.app_dir)
    except SwitchyardError as e:  # the app's own view module is broken: built-ins still work
        show_error(e)
        registry = views_for(None)
    for view in ui.views_picker(app_env, registry, data, prefs):
        ui.view_panel(app_env, view, data, prefs.per_view.get(view.name, {}))


ACTIVE = (Status.PENDING, Status.RUNNING, Status.PAUSING, Status.CANCELLING)


def runs_tab(app_env) -> None:
    store = RunStore(app_env.home / "switchyard.db")
    active = any(o.status in ACTIVE for o in store.list(app=app_env.app, kind="app", limit=5))
    # while a run is active the tab redraws itself; at its end the whole page catches up
    live(lambda: runs_body(app_env, store, active), active=active, every=RUNS_POLL_SECONDS)


def runs_body(app_env, store, was_active: bool) -> None:
    runs = store.list(app=app_env.app, kind="app", limit=50)
    if was_active and not any(o.status in ACTIVE for o in runs[:5]):
        st.rerun()
    with section("Recent runs", "runs"):
        if not runs:
            st.info(f"No runs of app '{app_env.app}' yet: RUN it on the Orchestrate page.")
        else:
            st.dataframe(runs_table(runs), hide_index=True, key="runs-table")
    if runs:
        with section("One run", "run"):
            labels = {o.id: ui.run_label(o) for o in runs}
            oid = st.selectbox("Run", list(labels), format_func=labels.get, key="run-pick")
            ui.run_detail(store, oid)
    with section("Benchmark", "benchmark"):
        ui.benchmark_panel(benchmark_path(app_env))
    with section("Compare two runs", "compare"):
        ui.compare_panel(store, runs)


if app_env is not None:
    data, runs = st.tabs(["Data", "Runs"], key="analysis-tab", bind="query-params")
    try:
        if data.open:
            with data:
                data_tab(app_env)
        if runs.open:
            with runs:
                runs_tab(app_env)
    except SwitchyardError as e:
        show_error(e)
