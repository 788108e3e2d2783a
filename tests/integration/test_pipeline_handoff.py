"""Snippet handoff through the CLI and the real driver process: the run snippet saved as on the
Orchestrate page, imported as a pipeline step, run by `switchyard pipeline run`, gives the same
output as running the snippet directly."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from switchyard.app import AppEnv
from switchyard.export import latest_output, read_output
from switchyard.pipeline import model
from switchyard.pipeline.model import Pipeline, Step
from switchyard.settings import update_args, update_cluster

from .conftest import cli, cli_json, copy_apps

pytestmark = pytest.mark.timeout(400)


def test_imported_run_snippet_gives_the_same_output_as_running_it_directly(tmp_path):
    apps, home = copy_apps(tmp_path / "apps"), tmp_path / "home"
    env = AppEnv("flight", apps_dir=apps, workspace=home)
    update_args(env.settings_path, {"files": 2, "rows_per_file": 300})
    update_cluster(env.settings_path, dask=False)  # mode 0: one process, the quickest real run
    saved = cli_json("snippet", "flight", "run", "--save", home=home, apps=apps)
    path = saved["path"]
    assert path.endswith("AGI_run.py") and "AGI.run(" in saved["code"]

    direct = subprocess.run([sys.executable, path], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, SWITCHYARD_HOME=str(home), SWITCHYARD_APPS=str(apps)))
    assert direct.returncode == 0, direct.stderr[-2000:]
    oid_direct, out_direct = latest_output(env)

    p = Pipeline(steps=[
        model.imported_step(path, "handoff"),
        Step(id="count", depends_on=["handoff"], code=(
            "import os\nfrom switchyard import AppEnv\nfrom switchyard.export import latest_output, read_output\n"
            "oid, path = latest_output(AppEnv('flight', apps_dir=os.environ['SWITCHYARD_APPS']))\n"
            "print('rows', len(read_output(path)), 'of', oid)\n")),
    ])
    model.save(env, p)
    listed = cli_json("pipeline", "list", "flight", home=home, apps=apps)
    assert [s["id"] for s in listed["steps"]] == ["handoff", "count"] and listed["entry_points"] == ["handoff"]

    res = cli_json("pipeline", "run", "flight", home=home, apps=apps, timeout=360)
    assert res["status"] == "completed", res
    assert res["steps"] == {"handoff": "completed", "count": "completed"}
    oid_pipe, out_pipe = latest_output(env)
    assert oid_pipe != oid_direct
    a, b = read_output(out_direct), read_output(out_pipe)
    key = list(a.columns)
    pd.testing.assert_frame_equal(a.sort_values(key).reset_index(drop=True),
                                  b.sort_values(key).reset_index(drop=True))

    shown = cli_json("pipeline", "show", "flight", "--log", home=home, apps=apps)
    logs = {s["id"]: s["log_text"] for s in shown["steps"]}
    assert f"rows {len(a)} of {oid_pipe}" in logs["count"]
    assert "completed" in logs["handoff"]
    assert shown["history"][0]["orchestration_id"] == res["orchestration_id"]

    # one step on its own, detached: the id comes back at once
    detached = cli_json("pipeline", "run", "flight", "--step", "count", "--detach", home=home, apps=apps)
    assert detached["steps"] == {"count": detached["steps"]["count"]}

    bad = cli("pipeline", "run", "flight", "--step", "nope", home=home, apps=apps)
    assert bad.returncode == 2 and "no step 'nope' in the pipeline: choose one of handoff, count" in bad.stderr
