"""The Orchestrate page around one dask-mode RUN of flight (2 local workers), in a real browser.

- Run logs are for people: the log panel shows the app's own print and no ``distributed.* - INFO``
  record; the Engine log toggle counts and shows those records (engine.log in the run's folder,
  while the panel follows the RUN job's log). No Deploy button.
- Plans that learn: after the run the planned-vs-measured chart has one pair of bars per worker,
  and "Plan from measured costs" changes the predicted makespan shown to what
  ``switchyard distrib flight --costs measured --json`` prints.
- A page whose library call raises an unexpected RuntimeError shows the classified box and no
  stException.

One install, one Streamlit and one run serve all three (each is a browser test of its own issue).
The worker environment is installed through the CLI (the Orchestrate flow test covers INSTALL in
the browser); the settings get a free scheduler port, so a scheduler another test left on 8786 is
never planned on.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomlkit
from playwright.sync_api import expect

from .conftest import free_port, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SWITCHYARD = Path(sys.executable).parent / "switchyard"
FILES = 4

# (series, x) of each bar of the review chart, from the SVG the browser shows
REVIEW_BARS = """() => Array.from(document.querySelectorAll('.st-key-run-review-chart svg rect.bar'))
    .map(r => [r.dataset.series, r.dataset.x])"""

BROKEN_VIEW = """
from switchyard.analysis.views import View


class Broken(View):
    name = "broken"
    title = "Broken"

    def render(self, data, chosen):
        raise RuntimeError("the view's library call failed")


VIEWS = [Broken()]
"""


def cli(workbench, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(SWITCHYARD), *args], env=workbench.env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


def test_a_dask_run_its_logs_its_review_and_a_failing_view(workbench, page):
    settings = workbench.apps / "flight" / "app_settings.toml"
    doc = tomlkit.parse(settings.read_text())
    doc["args"]["files"], doc["args"]["rows_per_file"] = FILES, 400
    doc["cluster"]["scheduler"] = f"127.0.0.1:{free_port()}"
    doc["cluster"]["dask"], doc["cluster"]["pool"], doc["cluster"]["cython"] = True, False, False
    doc["cluster"]["workers"] = {"127.0.0.1": 2}
    settings.write_text(tomlkit.dumps(doc))
    cli(workbench, "install", "flight")
    try:
        page.goto(workbench.url + "/?app=flight")
        page.wait_for_selector(".st-key-section-run", timeout=90_000)
        wait_for_app(page)
        expect.set_options(timeout=30_000)
        # an operator tool: no Streamlit Deploy button (.streamlit/config.toml toolbarMode = "minimal")
        expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
        expect(page.locator("[data-testid='stAppDeployButton']")).to_have_count(0)

        dist = page.locator(".st-key-section-distribute")
        dist.get_by_role("button", name="CHECK DISTRIBUTE", exact=True).click()
        predicted = page.locator(".st-key-plan-predicted")
        expect(predicted).to_contain_text("—")  # no run of flight in mode 4 yet: nothing measured

        run = page.locator(".st-key-section-run")
        run.get_by_role("button", name="RUN", exact=True).click()
        expect(run).to_contain_text(f"Completed {FILES}/{FILES} batches", timeout=180_000)

        # -- run logs: the app's print, no engine INFO record; the toggle counts and shows them
        log = page.locator(".st-key-run-log")
        expect(log).to_contain_text(f"completed {FILES} batches")
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

        # -- the review: one pair of bars (planned, measured) per worker
        review = page.locator(".st-key-run-review-chart")
        expect(review).to_be_visible()
        page.wait_for_function(f"() => ({REVIEW_BARS})().length == 4")
        drawn = page.evaluate(REVIEW_BARS)
        series = sorted({name for name, _ in drawn})
        assert len(series) == 2 and "measured" in series, drawn
        assert [x for _, x in drawn] == ["127.0.0.1-0", "127.0.0.1-0", "127.0.0.1-1", "127.0.0.1-1"], drawn
        expect(run).to_contain_text("Lower bound of the measured costs")

        # "Plan from measured costs": the predicted makespan the CLI prints for the same plan
        dist.get_by_role("button", name="Plan from measured costs", exact=True).click()
        expect(dist).to_contain_text(f"planned from measured costs: {FILES} of {FILES} partitions measured")
        expect(predicted).not_to_contain_text("—")
        shown = predicted.inner_text()
        seconds = json.loads(cli(workbench, "distrib", "flight", "--costs", "measured", "--json").stdout)[
            "predicted_makespan_seconds"]
        assert f"{seconds:.3f} s" in shown, (seconds, shown)
        assert "Traceback" not in workbench.log.read_text()

        # -- an unexpected exception (here from the app's analysis view) is a classified box, not a
        # traceback; the Analysis page draws its views over export.csv, which `switchyard export` writes
        cli(workbench, "export", "flight", "--all", "--json", timeout=120)
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
    finally:  # the run agent that RUN started must not outlive the test
        subprocess.run([str(SWITCHYARD), "agent", "stop"], env=workbench.env, capture_output=True, timeout=60)
