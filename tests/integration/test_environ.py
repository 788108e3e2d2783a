"""What app and step code sees of the caller's environment (issue 14): the allow-list of
switchyard.environ plus the app's declared names, never the caller's secrets. Checked from
inside the code itself: batches in mode 0 (in the driver), mode 4 on a per-run local cluster
and on a warm cluster, and a pipeline step on the warm cluster's workers."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from switchyard.app import AppEnv
from switchyard.cluster.env import install_local

from ..conftest import make_tiny_app
from .conftest import SWITCHYARD

SECRETS = {"SWITCHYARD_API_TOKEN": "api-tok-Q1", "SWITCHYARD_SMTP_PASSWORD": "smtp-pw-Q2",
           "AWS_SECRET_ACCESS_KEY": "aws-Q3", "DB_PASSWORD": "db-pw-Q4", "GITHUB_TOKEN": "gh-Q5",
           "SSH_AUTH_SOCK": "/tmp/agent-Q6", "PIP_INDEX_URL": "https://u:idx-Q7@pypi.example/simple",
           "HTTPS_PROXY": "http://u:proxy-Q8@proxy.example:3128"}
DECLARED = {"ENVPROBE_SERVICE_TOKEN": "declared-Q9"}  # the app asks for it: it passes
UNLISTED = {"SOME_RANDOM_SETTING": "unlisted-Q10"}  # not on the allow-list, not declared

PROBE = '''
import json
import os

from switchyard.app import App, Args, Partition


class ProbeArgs(Args):
    n: int = 2


class Probe(App):
    Args = ProbeArgs

    def partitions(self):
        return [Partition(name=f"p{i}", weight=1.0, items=(i,)) for i in range(self.args.n)]

    def work_item(self, item):
        return dict(os.environ)

    def reduce(self, results, output_dir):
        output_dir.mkdir(parents=True, exist_ok=True)
        path = output_dir / "environ.json"
        path.write_text(json.dumps(results))
        return path
'''

STEP = '''[[step]]
id = "show"
source = "inline"
code = """
import json, os, pathlib
pathlib.Path(os.environ["SWITCHYARD_STEP_DIR"], "environ.json").write_text(json.dumps(dict(os.environ)))
"""
'''


def cli(*args: str, app_env: AppEnv, env: dict) -> subprocess.CompletedProcess:
    env = dict(env, SWITCHYARD_HOME=str(app_env.home), SWITCHYARD_APPS=str(app_env.apps_path))
    return subprocess.run([str(SWITCHYARD), *args], capture_output=True, text=True, env=env, timeout=240)


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    root = tmp_path_factory.mktemp("environ")
    folder = make_tiny_app(root / "apps", "envprobe", dependencies=(), init=PROBE)
    settings = folder / "app_settings.toml"
    settings.write_text(settings.read_text().replace('"127.0.0.1" = 2', '"127.0.0.1" = 1')
                        + '\n[environment]\npass = ["ENVPROBE_SERVICE_TOKEN"]\n')
    (folder / "pipeline.toml").write_text(f"schema = 1\nworkers = 1\n\n{STEP}")
    app_env = AppEnv("envprobe", apps_dir=root / "apps", workspace=root / "home")
    assert install_local(app_env).ok
    env = dict(os.environ, **SECRETS, **DECLARED, **UNLISTED)
    yield app_env, env
    cli("cluster", "down", "envprobe", app_env=app_env, env=env)


def seen_by_batches(app_env: AppEnv, env: dict, *args: str, on: str = "") -> list[dict]:
    proc = cli("run", "envprobe", *args, "--json", app_env=app_env, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert on in proc.stderr, proc.stderr[-2000:]
    per_partition = json.loads((app_env.home / "runs" / json.loads(proc.stdout)["orchestration_id"] /
                                "output" / "environ.json").read_text())
    return [environ for items in per_partition for environ in items]


def assert_clean(environ: dict, where: str) -> None:
    values = "\n".join(f"{k}={v}" for k, v in environ.items())
    for name, value in {**SECRETS, **UNLISTED}.items():
        assert name not in environ, f"{where}: {name} reached app code"
        assert value not in values, f"{where}: the value of {name} reached app code"
    assert environ.get("ENVPROBE_SERVICE_TOKEN") == "declared-Q9", where
    assert environ.get("PATH") and environ.get("SWITCHYARD_HOME"), where


def test_batches_and_steps_never_see_the_callers_secrets(probe):
    app_env, env = probe
    for environ in seen_by_batches(app_env, env, "--mode", "0"):
        assert_clean(environ, "mode 0 batch (in the driver)")
    local = seen_by_batches(app_env, env, "--mode", "4")
    assert local and all("DASK_DISTRIBUTED__WORKER__DAEMON" in e for e in local)  # ran on Dask workers
    for environ in local:
        assert_clean(environ, "mode 4 batch on the run's local cluster")
    up = cli("cluster", "up", "envprobe", "--json", app_env=app_env, env=env)
    assert up.returncode == 0, up.stderr[-2000:]
    for environ in seen_by_batches(app_env, env, "--mode", "4", on="using the warm cluster of 'envprobe'"):
        assert_clean(environ, "mode 4 batch on the warm cluster")
    # The step runs on the warm cluster's workers (no cluster of its own to start).
    address = json.loads(up.stdout)["address"]
    step = cli("pipeline", "run", "envprobe", "--scheduler", address, "--json", app_env=app_env, env=env)
    assert step.returncode == 0, step.stderr[-2000:] + step.stdout[-2000:]
    oid = json.loads(step.stdout)["orchestration_id"]
    [seen] = (app_env.home / "runs" / oid).rglob("environ.json")
    assert_clean(json.loads(seen.read_text()), "pipeline step")
