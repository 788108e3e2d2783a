"""Run logs for people, in a real browser: a dask-mode run started with RUN shows the app's own print
and no `distributed.* - INFO` record in its log panel; the Engine log toggle counts and shows those
records (engine.log in the run's folder, while the panel follows the RUN job's log). No Deploy
button; a page whose library call raises an unexpected RuntimeError shows the classified box and no
stException."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import tomlkit
from playwright.sync_api import expect

from .conftest import wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

BROKEN_VIEW = """
from switchyard.analysis.views import View


class Broken(View):
    name = "broken"
    title = "Broken"

    def render(self, data, chosen):
        raise RuntimeError("the view's library call failed")


VIEWS = [Broken()]
"""


def test_dask_run_log_panel_engine_toggle_and_error_box(workbench, page):
    settings = workbench.apps / "flight" / "app_settings.toml"
    doc = tomlkit.parse(settings.read_text())
    doc["args"]["files"] = 4
    doc["args"]["rows_per_file"] = 400
    settings.write_text(tomlkit.dumps(doc))
    inst = subprocess.run([sys.executable, "-m", "switchyard.cli", "install", "flight", "--json"],
                          env=workbench.env, capture_output=True, text=True, timeout=240)
    assert inst.returncode == 0, inst.stderr[-2000:]

    page.goto(workbench.url + "/?app=flight")
    page.wait_for_selector(".st-key-section-run", timeout=90_000)
    wait_for_app(page)
    # an operator tool: no Streamlit Deploy button (.streamlit/config.toml toolbarMode = "minimal")
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
    expect(page.locator("[data-testid='stAppDeployButton']")).to_have_count(0)

    run = page.locator(".st-key-section-run")
    run.get_by_role("button", name="RUN", exact=True).click()
    expect(run).to_contain_text("Completed 4/4 batches", timeout=150_000)
    log = page.locator(".st-key-run-log")
    expect(log).to_contain_text("completed 4 batches")
    text = log.inner_text()
    assert re.search(r"\[127\.0\.0\.1-[01]\] flight_\d{4}: \d+ segments", text), text[-2000:]
    assert "driver: connecting to the Dask scheduler" in text
    assert not re.search(r"distributed\.[\w.]+ - INFO - ", text), text[:2000]

    toggle = run.get_by_text(re.compile(r"^Engine log \(\d+ lines\)$"))
    count = int(re.search(r"\((\d+) lines\)", toggle.inner_text()).group(1))
    oid = re.search(r"orchestration (\d{8}-\d{6}-[0-9a-f]{6})", run.inner_text()).group(1)
    engine_file = workbench.home / "runs" / oid / "engine.log"
    # the count read when the panel was drawn (the cluster's shutdown lines may come after it)
    assert 10 < count <= len(engine_file.read_text().splitlines())
    toggle.click()
    expect(page.locator(".st-key-engine-log")).to_contain_text(" - distributed.worker - INFO - ")
    expect(page.locator(".st-key-engine-log")).to_contain_text(" - distributed.scheduler - INFO - ")

    # an unexpected exception (here from the app's analysis view) is a classified box, not a traceback;
    # the Analysis page draws its views over export.csv, which `switchyard export` writes
    exp = subprocess.run([sys.executable, "-m", "switchyard.cli", "export", "flight", "--all", "--json"],
                         env=workbench.env, capture_output=True, text=True, timeout=120)
    assert exp.returncode == 0, exp.stderr[-2000:]
    (workbench.apps / "flight" / "analysis_views.py").write_text(BROKEN_VIEW)
    doc = tomlkit.parse(settings.read_text())
    doc.setdefault("analysis", tomlkit.table())["views"] = ["broken"]
    settings.write_text(tomlkit.dumps(doc))
    page.goto(workbench.url + "/analysis?app=flight")
    box = page.locator(".st-key-failure-box")
    expect(box).to_contain_text("the Analysis page failed", timeout=60_000)
    expect(box).to_contain_text("RuntimeError: the view's library call failed")
    expect(box).to_contain_text("ui-errors.log")
    expect(page.locator("[data-testid='stException']")).to_have_count(0)
    assert "Traceback" not in workbench.log.read_text()  # the traceback went to the log file only
    assert "the view's library call failed" in (workbench.home / "logs" / "ui-errors.log").read_text()
