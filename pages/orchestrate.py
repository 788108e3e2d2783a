"""Orchestrate page: from settings to exported results.

Each section shows the snippet its button runs, and the button runs exactly
that (same AGI function, same arguments). Long work (install, run) happens in
a subprocess, a background thread or the run's driver; the page only polls.
"""

import streamlit as st

from switchyard.actions import Action
from switchyard.app import load_app, validate_args
from switchyard.exceptions import SwitchyardError
from switchyard.plan import plan_fingerprint
from switchyard.settings import check_workers, load_settings
from switchyard.ui import (args_form, cluster_panel, data_panel, install_panel, new_app, notebook_panel, plan_view,
                           run_panel, service, settings_form)
from switchyard.ui.common import app_picker, section, show_app_failure, show_error

app_env = app_picker()
new_app.render()
st.title("Orchestrate")
if app_env is None:
    st.stop()
st.caption(f"App **{app_env.app}** · settings `{app_env.settings_path}` · workspace `{app_env.home}`")

try:
    settings = load_settings(app_env.settings_path)
except SwitchyardError as e:
    show_error(e, "Fix app_settings.toml (the message names the key and the fix), then reload the page.")
    st.stop()

app_cls, app_problem = None, None
try:
    app_cls = load_app(app_env)
except SwitchyardError as e:
    app_problem = e
except Exception as e:  # the app's own module failed in a way load_app did not wrap
    app_problem = e

fingerprint = None
if app_cls is not None:
    try:
        args = validate_args(app_cls, settings.args).model_dump(mode="json")
        fingerprint = plan_fingerprint(app_env.app, args, check_workers(settings.cluster.workers))
    except SwitchyardError:
        pass  # the App args section shows what is wrong
plan = plan_view.cached_plan(app_env)
partitions = plan.partition_count if plan is not None and plan.fingerprint == fingerprint else None

with section("System settings", "settings"):
    settings_form.render(app_env, settings, partitions)

with section("Install", "install"):
    ready = install_panel.render(app_env, settings)


def app_missing() -> None:
    if isinstance(app_problem, SwitchyardError):
        show_error(app_problem)
    else:
        show_app_failure(app_problem, "being imported")


with section("Cluster", "cluster"):
    cluster_panel.render(app_env)

with section("App args", "args"):
    if app_cls is None:
        app_missing()
    else:
        args_form.render(app_env, app_cls, settings)

with section("Distribute", "distribute"):
    if app_cls is None:
        app_missing()
    else:
        plan_view.render(app_env, Action.from_settings("distrib", app_env, settings), fingerprint)

with section("Run", "run"):
    run_panel.render(app_env, settings, ready and app_cls is not None)

with section("Load data", "load"):
    data_panel.render_load(app_env, run_panel.run_store(app_env))

with section("Export", "export"):
    data_panel.render_export(app_env, run_panel.run_store(app_env))
    notebook_panel.render_orchestrate(app_env)

with section("Service mode (persistent workers)", "service"):
    service.render(app_env, settings)
