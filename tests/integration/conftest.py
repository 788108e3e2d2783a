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
