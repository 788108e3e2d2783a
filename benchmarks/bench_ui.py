"""Browser latency of the Orchestrate page, measured in a real Chromium against `streamlit run`.

1. RUN -> first run-log line visible: click RUN and wait until the "Run logs"
   panel shows a line (also: until the driver's first line shows).
2. Work plan rendering for 1,000 partitions (montecarlo, tasks=1000): a page
   load with the saved plan until graph, load chart and editor are drawn; and
   CHECK DISTRIBUTE (planning included) until the new plan is drawn.

Each run is cancelled once its driver's first line showed (which also exercises Cancel).

Each figure is the median of ``--repeat`` measurements; targets 1.5 s and 2 s.

Usage: .venv/bin/python benchmarks/bench_ui.py [--repeat 3] [--partitions 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, scratch  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
RUN_TARGET, PLAN_TARGET = 1.5, 2.0

# True once the run-log panel shows a real line (not the placeholder) of a new run: its text
# differs from what it showed before the click (the previous run's log).
LOG_LINE_JS = """([before, needle]) => {
  const box = document.querySelector('.st-key-run-log');
  if (!box || box.innerText === before) return false;
  const text = box.innerText.split('\\n').filter(s => s.trim() && !s.includes('no output yet'));
  return needle ? text.some(s => s.includes(needle)) : text.length > 0;
}"""
# True once the plan's graph (an svg with the scheduler node), chart and editor are drawn.
PLAN_DRAWN_JS = """(partitions) => {
  const g = document.querySelector('.st-key-plan-graph svg g.node');
  const svg = g && g.closest('svg');
  const chart = document.querySelector('.st-key-plan-chart svg rect.bar');
  const editor = document.querySelector('.st-key-section-distribute [data-testid="stDataFrame"] canvas, '
    + '.st-key-section-distribute [data-testid="stDataFrameResizable"]');
  return !!(svg && svg.textContent.includes(partitions + ' partitions') && chart && editor);
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_streamlit(port: int, log: Path) -> subprocess.Popen:
    out = open(log, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "streamlit_app.py"), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=REPO, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                return proc
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"streamlit did not start: {log.read_text()[-2000:]}")


def wait_idle(page) -> None:
    page.wait_for_selector(".st-key-section-export", timeout=60_000)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=1000)
    ns = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from switchyard.settings import update_args, update_cluster

    load_before = os.getloadavg()[0]
    app_env, root = scratch("montecarlo")
    update_args(app_env.settings_path, {"tasks": ns.partitions, "samples_per_task": 2000, "chunks": 1})
    update_cluster(app_env.settings_path, dask=True, pool=False, cython=False,
                   scheduler=f"127.0.0.1:{free_port()}", workers={"127.0.0.1": 2})
    port = free_port()
    server = start_streamlit(port, root / "streamlit.log")
    url = f"http://127.0.0.1:{port}/?app=montecarlo"
    first_line, driver_line, page_load, replan = [], [], [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(url)
            wait_idle(page)
            dist = page.locator(".st-key-section-distribute")
            dist.get_by_role("button", name="CHECK DISTRIBUTE", exact=True).click()
            page.wait_for_function(PLAN_DRAWN_JS, arg=ns.partitions, polling="raf")
            for _ in range(ns.repeat):
                t0 = time.monotonic()
                page.goto(url)
                page.wait_for_function(PLAN_DRAWN_JS, arg=ns.partitions, polling="raf")
                page_load.append(time.monotonic() - t0)
                wait_idle(page)
                button = dist.get_by_role("button", name="CHECK DISTRIBUTE", exact=True)
                button.wait_for()
                t0 = time.monotonic()
                button.click()
                page.get_by_text(f"Planned {ns.partitions} partitions").wait_for()
                page.wait_for_function(PLAN_DRAWN_JS, arg=ns.partitions, polling="raf")
                replan.append(time.monotonic() - t0)
            run = page.locator(".st-key-section-run")
            for i in range(ns.repeat):
                page.goto(url)
                wait_idle(page)
                button = run.get_by_role("button", name="RUN", exact=True)
                page.wait_for_function("() => { const b = [...document.querySelectorAll("
                                       "'.st-key-section-run button')].find(b => b.innerText.trim() == 'RUN');"
                                       " return b && !b.disabled; }")
                box = page.locator(".st-key-run-log")
                before = box.inner_text() if box.count() else ""
                t0 = time.monotonic()
                button.click()
                page.wait_for_function(LOG_LINE_JS, arg=[before, None], polling="raf")
                first_line.append(time.monotonic() - t0)
                page.wait_for_function(LOG_LINE_JS, arg=[before, "driver: orchestration"], polling="raf")
                driver_line.append(time.monotonic() - t0)
                # Cancel rather than wait for 1000 batches: the next RUN needs the app idle.
                run.get_by_role("button", name="Cancel", exact=True).click()
                page.get_by_text("was cancelled after").wait_for(timeout=120_000)
            browser.close()
    finally:
        os.killpg(server.pid, 15)
        server.wait(10)
        shutil.rmtree(root, ignore_errors=True)

    def line(name: str, xs: list[float], target: float | None = None) -> str:
        s = f"{name}: median {median(xs):.2f} s (runs: {', '.join(f'{x:.2f}' for x in xs)})"
        if target:
            s += f"; {median(xs) / target:.2f} x the {target:g} s target"
        return s

    print(f"machine: {os.cpu_count()} cores, load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after (other processes slow every figure down)")
    print(line("RUN -> first run-log line visible", first_line, RUN_TARGET))
    print(line("RUN -> first driver line visible", driver_line))
    print(line(f"page load -> work plan of {ns.partitions} partitions drawn", page_load, PLAN_TARGET))
    print(line(f"CHECK DISTRIBUTE -> {ns.partitions}-partition plan made and drawn", replan, PLAN_TARGET))


if __name__ == "__main__":
    main()
