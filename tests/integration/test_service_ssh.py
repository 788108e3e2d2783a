"""The service watcher on SSH workers that cannot see the workspace: a loop whose worker is killed -9
comes back with nobody calling any action.

The SSH "host" 127.0.0.2 is this machine, but its sshd runs in a mount namespace where the
workspace and the apps folder are empty tmpfs mounts: its workers cannot read any file of
the service, so jobs, results and heartbeats can only travel over Dask.
"""

from __future__ import annotations

import json
import os

import pytest

from switchyard.app import AppEnv
from switchyard.service.service import serve_sync, service_dir

from ..conftest import make_tiny_app
from .sshd import SSHServer, ssh_settings_toml
from .test_service import TIMEOUT, jobs_reach_the_new_loop, kill_and_see_the_watcher_restart

pytestmark = pytest.mark.ssh
HOST = "127.0.0.2"


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    root = tmp_path_factory.mktemp("watched-ssh")
    apps, home = root / "apps", root / "home"
    make_tiny_app(apps)
    env = AppEnv("tinyapp", apps_dir=apps, workspace=home)
    with SSHServer(root / "sshd", [HOST], hide=[apps, home]) as server:
        settings = env.settings_path.read_text().replace('"127.0.0.1" = 2', f'"{HOST}" = 2')
        env.settings_path.write_text(settings.replace("[cluster]\n", '[cluster]\nscheduler = "127.0.0.1:0"\n')
                                     + "\n" + ssh_settings_toml(server, {HOST: root / "host"}))
        try:
            yield env, serve_sync(env, "start", heartbeat_timeout=TIMEOUT, join_timeout=180)
        finally:
            serve_sync(env, "stop", stop_cluster=True)


def test_watcher_restarts_a_killed_loop_on_workers_that_cannot_see_the_workspace(remote):
    from switchyard.cluster.connect import connect

    env, started = remote
    state = service_dir(env) / "state.json"
    assert state.is_file() and started["watcher"]["running"]
    with connect(json.loads(state.read_text())["scheduler"], timeout=15, home=env.home) as client:
        there = client.run(lambda *paths: [os.listdir(paths[0]), os.listdir(paths[1]), os.path.exists(paths[2])],
                           str(env.home), str(env.apps_path), str(state))
    assert len(there) == 2 and all(v == [[], [], False] for v in there.values()), there  # empty folders there
    assert os.listdir(env.home) and os.listdir(env.apps_path)  # while here they hold the service and the app
    _, seconds = kill_and_see_the_watcher_restart(env, f"{HOST}-1")
    print(f"\nssh: killed -9 -> restarted by the watcher in {seconds:.2f} s")
    jobs_reach_the_new_loop(env, f"{HOST}-1")
