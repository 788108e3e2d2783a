"""`switchyard new`: a working app from the template, clones under a new name, names refused in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from switchyard import cli
from switchyard.app import App, AppEnv, discover_apps, load_app, validate_args

from .conftest import REPO, cli_json

ARGS = {"tasks": 3, "samples_per_task": 3000, "chunks": 2}


def run_in_process(app_env: AppEnv, args: dict, out: Path) -> pd.DataFrame:
    """partitions -> work -> reduce of the app's own code, in this process (mode 0's calls)."""
    cls = load_app(app_env)
    app: App = cls(validate_args(cls, args), data_dir=out / "data")
    app.prepare()
    results = [app.work(p) for p in app.partitions()]
    return pd.read_parquet(app.reduce(results, out / "output"))


def test_bad_names_are_one_line_and_create_nothing_and_a_clone_outlives_its_source(tmp_path, capsys):
    apps = tmp_path / "apps"
    shutil.copytree(REPO / "apps" / "montecarlo", apps / "montecarlo",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c", "build"))
    (apps / "flight").mkdir()  # taken, even if not an app
    before = sorted(os.listdir(apps))
    for name, says in (("flight", "taken"), ("9x", "not a Python identifier"), ("pandas", "importable module"),
                       ("json", "importable module")):
        assert cli.main(["new", name, "--apps-dir", str(apps)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"'{name}'" in err and says in err, err
        assert sorted(os.listdir(apps)) == before  # nothing half-created, no temp folder left
    assert cli.main(["new", "mc2", "--from", "nope", "--apps-dir", str(apps)]) == 2
    assert "montecarlo" in capsys.readouterr().err and sorted(os.listdir(apps)) == before

    assert cli.main(["new", "mc2", "--from", "montecarlo", "--apps-dir", str(apps)]) == 0
    assert "created app 'mc2'" in capsys.readouterr().out
    init = (apps / "mc2" / "mc2" / "__init__.py").read_text()
    assert "class Mc2(App)" in init and "class Mc2Args(Args)" in init and "from mc2 import worker" in init
    assert (apps / "mc2" / "app_settings.toml").read_text() == (apps / "montecarlo" / "app_settings.toml").read_text()
    assert 'packages = ["mc2"]' in (apps / "mc2" / "pyproject.toml").read_text()
    reference = run_in_process(AppEnv("montecarlo", apps_dir=apps), ARGS, tmp_path / "ref")
    shutil.rmtree(apps / "montecarlo")
    sys.modules.pop("montecarlo", None), sys.modules.pop("montecarlo.worker", None)
    clone = run_in_process(AppEnv("mc2", apps_dir=apps), ARGS, tmp_path / "clone")
    assert len(clone) == 3
    pd.testing.assert_frame_equal(clone, reference)
    assert discover_apps(apps) == ["mc2"]


@pytest.mark.timeout(600)  # an env build and three runs, two of them on a fresh local cluster
def test_new_app_runs_in_dask_mode_and_its_own_test_passes(run_home, tmp_path):
    _, home = run_home
    apps = tmp_path / "apps"
    env = dict(os.environ, SWITCHYARD_HOME=str(home), SWITCHYARD_APPS=str(apps))
    made = subprocess.run([str(Path(sys.executable).parent / "switchyard"), "new", "demo", "--json"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    files = set(__import__("json").loads(made.stdout)["files"])
    assert files >= {"app_settings.toml", "pyproject.toml", "README.md", "demo/__init__.py", "tests/test_demo.py"}
    # the generated test installs the app and runs it in mode 0 and mode 4 (same output)
    own = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(apps / "demo" / "tests")],
                         env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert own.returncode == 0 and "1 passed" in own.stdout, own.stdout[-3000:] + own.stderr[-2000:]
    out = cli_json("run", "demo", "--mode", "4", "--arg", "parts=2", "--arg", "numbers=500", home=home, apps=apps)
    assert out["status"] == "completed" and out["completed"] == out["batches"] == 2
    frame = pd.read_parquet(out["output"])
    assert frame["part"].tolist() == [0, 0, 1, 1] and frame["mean_sq"].between(0.2, 0.5).all()
    log = (Path(out["output"]).parents[1] / "run.log").read_text()
    assert "part-0000: 2 items done" in log  # the app's own print reached the run log
