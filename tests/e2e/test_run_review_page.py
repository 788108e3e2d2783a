"""Plans that learn, in a real browser: after a flight run (RUN on the Orchestrate page, mode 4,
2 local workers), the planned-vs-measured chart has one pair of bars per worker, and
"Plan from measured costs" changes the predicted makespan shown to what
``switchyard distrib flight --costs measured --json`` prints.

The worker environment is installed through the CLI first (the Orchestrate flow test
covers INSTALL in the browser); the settings get a free scheduler port, so a scheduler
another test left on 8786 is never planned on.
"""

from __future__ import annotations

import json
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

# (type, x) of each trace of the review chart, from the figure Plotly drew in the browser
REVIEW_TRACES = """() => Array.from(document.querySelectorAll('.st-key-run-review-chart .js-plotly-plot'))
    .map(d => (d._fullData || []).map(t => [t.type, Array.from(t.x || [])]))"""


def cli(workbench, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(SWITCHYARD), *args], env=workbench.env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc


def test_review_chart_after_a_run_and_the_plan_from_measured_costs(workbench, page):
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
        dist = page.locator(".st-key-section-distribute")
        dist.get_by_role("button", name="CHECK DISTRIBUTE", exact=True).click()
        predicted = page.locator(".st-key-plan-predicted")
        expect(predicted).to_contain_text("—")  # no run of flight in mode 4 yet: nothing measured

        run = page.locator(".st-key-section-run")
        run.get_by_role("button", name="RUN", exact=True).click()
        expect(run).to_contain_text(f"Completed {FILES}/{FILES} batches", timeout=180_000)

        # one pair of bars (planned, measured) per worker
        review = page.locator(".st-key-run-review-chart")
        expect(review).to_be_visible()
        page.wait_for_function(f"() => ({REVIEW_TRACES})().flat().length == 2")
        (traces,) = page.evaluate(REVIEW_TRACES)
        assert traces == [["bar", ["127.0.0.1-0", "127.0.0.1-1"]]] * 2, traces
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
    finally:  # the run agent that RUN started must not outlive the test
        subprocess.run([str(SWITCHYARD), "agent", "stop"], env=workbench.env, capture_output=True, timeout=60)
