"""Fixtures for the page tests: a copy of the shipped apps and a workspace, set for the process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from switchyard.app import AppEnv

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "pages" / "orchestrate.py"


@pytest.fixture
def apps_home(tmp_path, monkeypatch):
    """(apps dir, workspace home): the shipped apps copied to tmp_path, both set in the environment."""
    apps, home = tmp_path / "apps", tmp_path / "home"
    shutil.copytree(REPO / "apps", apps, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"))
    home.mkdir()
    monkeypatch.setenv("SWITCHYARD_APPS", str(apps))
    monkeypatch.setenv("SWITCHYARD_HOME", str(home))
    monkeypatch.delenv("SWITCHYARD_EXPORT", raising=False)
    return apps, home


@pytest.fixture
def flight(apps_home) -> AppEnv:
    apps, _ = apps_home
    return AppEnv("flight", apps_dir=apps)


def open_page(app: str = "flight", timeout: float = 60):
    """The Orchestrate page in AppTest, run once, with ``app`` picked."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PAGE), default_timeout=timeout)
    at.query_params["app"] = app
    return at.run()


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)
