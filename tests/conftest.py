"""Shared fixtures: a throwaway workspace, a tiny app factory, one provisioned worker env per session."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from switchyard.app import AppEnv

# Each workspace a test runs something in gets a run agent; let them go soon after the test
# instead of holding ~150 MB each for the default 15 idle minutes.
os.environ.setdefault("SWITCHYARD_AGENT_IDLE", "20")

TINY_INIT = '''
from switchyard.app import App, Args, Partition


class TinyArgs(Args):
    n: int = 4


class Tiny(App):
    Args = TinyArgs
    compiled_modules = ("kernel",)

    def partitions(self):
        return [Partition(name=f"p{i}", weight=1.0, items=(i,)) for i in range(self.args.n)]

    def work_item(self, item):
        from {name}.kernel import total
        return total(item + 10)

    def reduce(self, results, output_dir):
        output_dir.mkdir(parents=True, exist_ok=True)
        path = output_dir / "out.txt"
        path.write_text(repr(results))
        return path
'''

TINY_KERNEL = '''
def total(n):
    s = 0
    for i in range(n):
        s += i
    return s
'''

TINY_WORKER = '''
import sys


def info():
    from {name} import kernel
    return {{"python": sys.executable, "kernel": kernel.__file__}}
'''


def make_tiny_app(apps_dir: Path, name: str = "tinyapp", dependencies: tuple[str, ...] = ("blinker",),
                  init: str | None = None) -> Path:
    """Write a tiny app (App subclass, kernel.py compiled in cython mode, worker.py) and return its folder."""
    folder = Path(apps_dir) / name
    package = folder / name
    package.mkdir(parents=True, exist_ok=True)
    (folder / "app_settings.toml").write_text(
        '[args]\nn = 4\n\n[cluster]\ndask = true\n\n[cluster.workers]\n"127.0.0.1" = 2\n'
    )
    deps = ", ".join(f'"{d}"' for d in dependencies)
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\ndependencies = [{deps}]\n'
    )
    (package / "__init__.py").write_text(textwrap.dedent(init if init is not None else TINY_INIT)
                                         .replace("{name}", name))
    (package / "kernel.py").write_text(TINY_KERNEL)
    (package / "worker.py").write_text(TINY_WORKER.format(name=name))
    return folder


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Put back the test process's ``__main__`` after each test. Streamlit's AppTest installs its
    page script as ``sys.modules["__main__"]`` and leaves it there; a process started later with
    the spawn method (the worker of an in-process ``distributed.LocalCluster``'s nanny) re-runs
    ``__main__.__file__`` first, so it ran a deleted AppTest script and died."""
    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """A fresh workspace folder, set as SWITCHYARD_HOME for the test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SWITCHYARD_HOME", str(home))
    return home


@pytest.fixture
def make_app(tmp_path):
    """Factory: ``make_app(name, dependencies=..., init=...)`` -> AppEnv of a tiny app in tmp_path."""

    def make(name: str = "tinyapp", dependencies: tuple[str, ...] = ("blinker",),
             init: str | None = None) -> AppEnv:
        apps = tmp_path / "apps"
        make_tiny_app(apps, name, dependencies, init)
        return AppEnv(name, apps_dir=apps, workspace=tmp_path / "home")

    return make


@dataclass
class ProvisionedEnv:
    app_env: AppEnv
    result: object  # switchyard.cluster.env.InstallResult of the first install
    lines: list[tuple[float, str]] = field(default_factory=list)  # (monotonic time, line)
    finished_at: float = 0.0


@pytest.fixture(scope="session")
def provisioned_env(tmp_path_factory) -> ProvisionedEnv:
    """The tiny app ('tinyapp') installed once per session in its own workspace (cython off).

    Tests may install it again (e.g. with cython) but must not break it.
    """
    from switchyard.cluster.env import install_local

    root = tmp_path_factory.mktemp("provisioned")
    make_tiny_app(root / "apps")
    app_env = AppEnv("tinyapp", apps_dir=root / "apps", workspace=root / "home")
    lines: list[tuple[float, str]] = []
    result = install_local(app_env, on_line=lambda s: lines.append((time.monotonic(), s)))
    assert result.ok, result.error
    return ProvisionedEnv(app_env, result, lines, time.monotonic())


_ORDER = {"unit": 0, "ui": 1, "integration": 2, "e2e": 3}


def pytest_collection_modifyitems(config, items):
    """Fast tests first; browser tests last (and together, sharing one Playwright)."""
    def rank(item):
        parts = item.nodeid.split("/")
        return _ORDER.get(parts[1] if len(parts) > 1 else "", 1)

    items.sort(key=rank)


def pytest_sessionstart(session):
    session.config._switchyard_started = time.time()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    """After every fixture is torn down, stop what the session's tests left running (see reaper)."""
    from tests.reaper import reap

    factory = getattr(session.config, "_tmp_path_factory", None)
    started = getattr(session.config, "_switchyard_started", None)
    if factory is None or started is None:
        return
    session.config._switchyard_reaped = reap(factory.getbasetemp(), started)


def pytest_terminal_summary(terminalreporter, config):
    reaped = getattr(config, "_switchyard_reaped", None)
    if reaped:
        noun = "process" if len(reaped) == 1 else "processes"
        terminalreporter.write_sep("-", f"{len(reaped)} {noun} left behind by tests stopped")
        for line in reaped:
            terminalreporter.write_line(line)
