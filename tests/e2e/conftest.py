"""Real-browser fixtures: `streamlit run` on a free port and Playwright driving Debian's chromium.

The server gets its own workspace and its own copy of the shipped apps, so a
test can change settings without touching the repository.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Workbench:
    """A running `switchyard ui` (streamlit) with its own apps copy and workspace."""

    def __init__(self, root: Path):
        self.root = root
        self.apps = root / "apps"
        self.home = root / "home"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = root / "streamlit.log"

    @property
    def env(self) -> dict[str, str]:
        return dict(os.environ, SWITCHYARD_HOME=str(self.home), SWITCHYARD_APPS=str(self.apps))

    def start(self) -> "Workbench":
        shutil.copytree(REPO / "apps", self.apps, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"))
        out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "streamlit_app.py"),
             "--server.address", "127.0.0.1", "--server.port", str(self.port), "--server.headless", "true",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"streamlit did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        # the workbench starts a scheduler when schedules exist: it must not outlive the test
        subprocess.run([sys.executable, "-m", "switchyard.cli", "scheduler", "stop"], env=self.env,
                       capture_output=True, timeout=60)
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)


@pytest.fixture(scope="module")
def workbench(tmp_path_factory):
    wb = Workbench(tmp_path_factory.mktemp("workbench")).start()
    yield wb
    wb.stop()


@pytest.fixture(scope="module")
def browser():
    # module scope: Playwright's sync API keeps an event loop in the main thread while it runs,
    # which would break asyncio.run() in tests collected after it
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make bootstrap` (installs Debian's chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def wait_for_app(page) -> None:
    """Wait until Streamlit finished its script run (no running indicator)."""
    page.wait_for_selector("[data-testid='stApp']")
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=60_000)
