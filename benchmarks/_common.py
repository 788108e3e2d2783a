"""Shared set-up for the run benchmarks: a scratch workspace with a provisioned env."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def scratch(app: str, cython: bool = False):
    """(app_env, home): a copy of the shipped apps in a temp workspace, env installed."""
    from switchyard.app import AppEnv
    from switchyard.cluster.env import install_local

    root = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    apps = root / "apps"
    shutil.copytree(REPO / "apps", apps, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"))
    os.environ["SWITCHYARD_HOME"] = str(root / "home")
    os.environ["SWITCHYARD_APPS"] = str(apps)
    app_env = AppEnv(app, apps_dir=apps, workspace=root / "home")
    res = install_local(app_env, cython=cython, on_line=lambda line: None)
    assert res.ok, res.error
    return app_env, root


def quiet(line: str) -> None:
    pass
