"""Fixtures for runs: a copy of the shipped apps and a workspace shared by the session.

Worker environments take seconds to build, so one workspace (and one copy of
the apps, which the environments point at) serves every test that only runs
apps; tests that edit settings take their own copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SWITCHYARD = Path(sys.executable).parent / "switchyard"


def copy_apps(dest: Path) -> Path:
    shutil.copytree(REPO / "apps", dest, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c", "build"))
    return dest


@pytest.fixture(scope="session")
def run_home(tmp_path_factory):
    """(apps_dir, home) shared by the session's run tests."""
    root = tmp_path_factory.mktemp("runs")
    return copy_apps(root / "apps"), root / "home"


def cli(*args: str, home: Path, apps: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, SWITCHYARD_HOME=str(home), SWITCHYARD_APPS=str(apps))
    return subprocess.run([str(SWITCHYARD), *args], capture_output=True, text=True, env=env, timeout=timeout)


def cli_json(*args: str, home: Path, apps: Path, timeout: float = 240) -> dict:
    proc = cli(*args, "--json", home=home, apps=apps, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


# ----------------------------------------------------------------------------- SSH workers apart
HIDDEN_HOST = "127.0.0.2"
# What the caller holds while the hidden host's cluster starts and its runs are driven: none of it
# may reach code running on that host.
CALLER_SECRETS = {"SWITCHYARD_API_TOKEN": "api-tok-H1", "SWITCHYARD_SMTP_PASSWORD": "smtp-pw-H2",
                  "AWS_SECRET_ACCESS_KEY": "aws-H3", "DB_PASSWORD": "db-pw-H4"}


@pytest.fixture(scope="module")
def hidden_ssh(tmp_path_factory):
    """(app env, scheduler address): the warm cluster of a tiny app ("hiddenapp"), two workers on
    the SSH "host" 127.0.0.2, whose sshd runs in a mount namespace where the workspace and the apps folder are
    empty tmpfs mounts. Its workers cannot read any file of the driver's, as a host without a
    shared file system: code, jobs, results and cancels reach them over Dask only. The cluster is
    started (remote install included) while the caller's environment holds ``CALLER_SECRETS``.
    A job whose one item is "environ", or a run with ``show_env=True``, returns the environment
    its batches run in."""
    from switchyard.app import AppEnv
    from switchyard.cluster import warm

    from ..conftest import TINY_INIT, make_tiny_app
    from .sshd import SSHServer, ssh_settings_toml

    root = tmp_path_factory.mktemp("hidden-ssh")
    apps, home = root / "apps", root / "home"
    init = TINY_INIT.replace("    n: int = 4\n", "    n: int = 4\n    show_env: bool = False\n")
    # its own name: a process imports an app once, and test_service's "tinyapp" has no show_env
    make_tiny_app(apps, "hiddenapp", init=init.replace(
        "    def work_item(self, item):\n",
        "    def work_item(self, item):\n        if item == \"environ\" or self.args.show_env:\n"
        "            import os\n            return dict(os.environ)\n"))
    env = AppEnv("hiddenapp", apps_dir=apps, workspace=home)
    with SSHServer(root / "sshd", [HIDDEN_HOST], hide=[apps, home]) as server:
        settings = env.settings_path.read_text().replace('"127.0.0.1" = 2', f'"{HIDDEN_HOST}" = 2')
        env.settings_path.write_text(settings.replace("[cluster]\n", '[cluster]\nscheduler = "127.0.0.1:0"\n')
                                     + "\n" + ssh_settings_toml(server, {HIDDEN_HOST: root / "host"}))
        try:
            with pytest.MonkeyPatch.context() as mp:
                for name, value in CALLER_SECRETS.items():
                    mp.setenv(name, value)
                up = warm.up_sync(env, join_timeout=180)
            yield env, up["address"]
        finally:
            warm.down_sync(env)
