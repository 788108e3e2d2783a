"""Notebooks end to end: the exported flight notebook executed by nbclient on a real ipykernel,
and the same notebook imported as pipeline steps and run by `switchyard pipeline run`, both give
the output of `switchyard run flight` with the same args."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from switchyard.app import AppEnv
from switchyard.export import read_output
from switchyard.pipeline import model
from switchyard.runs.store import RunStore
from switchyard.settings import update_args, update_cluster

from .conftest import cli, cli_json, copy_apps

pytestmark = pytest.mark.timeout(420)


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    key = list(a.columns)
    pd.testing.assert_frame_equal(a.sort_values(key).reset_index(drop=True),
                                  b.sort_values(key).reset_index(drop=True))


def test_exported_notebook_runs_on_a_kernel_and_as_pipeline_steps_like_the_cli(tmp_path, monkeypatch):
    apps, home = copy_apps(tmp_path / "apps"), tmp_path / "home"
    env = AppEnv("flight", apps_dir=apps, workspace=home)
    update_args(env.settings_path, {"files": 2, "rows_per_file": 300})
    update_cluster(env.settings_path, dask=False)  # mode 0: the quickest real run
    monkeypatch.setenv("SWITCHYARD_HOME", str(home))  # the kernel inherits it
    monkeypatch.setenv("SWITCHYARD_APPS", str(apps))

    exported = cli_json("notebook", "export", "flight", home=home, apps=apps)
    path = Path(exported["path"])
    assert path == home / "notebooks" / "flight_orchestrate.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert [re.search(r"AGI\.(\w+)", c).group(1) if "AGI." in c else None for c in code] == \
        [None, "install", "get_distrib", "run", "load_data"]
    assert all("asyncio" not in c for c in code) and "await AGI.run(" in code[3]

    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    run_out = "".join(o.get("text", "") for o in nb.cells[7].outputs)
    oid = re.search(r"orchestration (\S+): completed", run_out).group(1)
    load_out = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
    assert oid in load_out, load_out  # the load cell read the run cell's result
    store = RunStore(home / "switchyard.db")
    by_kernel = read_output(store.get(oid).output)

    by_cli = read_output(cli_json("run", "flight", home=home, apps=apps)["output"])
    assert len(by_cli) > 0
    same_rows(by_kernel, by_cli)
    # the export of the run's output, as a scripted flow writes it
    exp = cli_json("export", "flight", "--columns", "flight_id,speed_kmh", home=home, apps=apps)
    written = pd.read_csv(exp["path"])
    assert list(written.columns) == ["flight_id", "speed_kmh"] and len(written) == len(by_cli)
    bad = cli("export", "flight", "--columns", "flight_id,altitude", home=home, apps=apps)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "'altitude'" in bad.stderr
    assert "altitude_m" in bad.stderr  # the available columns are named

    # the notebook as pipeline steps: app_env (setup cell) and result (run cell) are used by later
    # cells; install and distribute ran above, so the pipeline gets the setup, run and load cells
    nb.cells = [c for c in nb.cells if not re.search(r"AGI\.(install|get_distrib)\(", c.source)]
    steps_nb = tmp_path / "flight_steps.ipynb"
    nbformat.write(nb, str(steps_nb))
    imported = cli_json("notebook", "import", "flight", str(steps_nb), "--replace", home=home, apps=apps)
    assert imported["steps"] == ["cell_1", "cell_2", "cell_3"]
    assert imported["depends_on"] == {"cell_1": [], "cell_2": ["cell_1"], "cell_3": ["cell_2"]}
    p = model.load(env)
    p.workers = 1  # the steps form a chain: one worker runs them all
    model.save(env, p)
    res = cli_json("pipeline", "run", "flight", home=home, apps=apps, timeout=360)
    assert res["status"] == "completed", res
    shown = cli_json("pipeline", "show", "flight", "--log", home=home, apps=apps)
    logs = {s["id"]: s["log_text"] for s in shown["steps"]}
    pipe_oid = re.search(r"orchestration (\S+): completed", logs["cell_2"]).group(1)
    assert pipe_oid != oid and pipe_oid in logs["cell_3"], logs["cell_3"]
    same_rows(read_output(store.get(pipe_oid).output), by_cli)
