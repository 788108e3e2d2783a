"""The Orchestrations page in a real browser: pause a long run, see it paused, resume it,
see it complete at 100 %."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .conftest import wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
SWITCHYARD = Path(sys.executable).parent / "switchyard"


def start_long_run(workbench) -> str:
    """A dask run of 12 batches of ~0.5 s each, started like an operator would from a shell."""
    proc = subprocess.run(
        [str(SWITCHYARD), "run", "montecarlo", "--mode", "4", "--detach", "--workers", "127.0.0.1:2",
         "--arg", "tasks=12", "--arg", "samples_per_task=600000", "--arg", "chunks=1", "--json"],
        capture_output=True, text=True, env=workbench.env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)["orchestration_id"]


def test_pause_and_resume_from_the_orchestrations_page(workbench, page):
    oid = start_long_run(workbench)
    page.goto(f"{workbench.url}/orchestrations?orchestration={oid}")
    wait_for_app(page)
    status = page.locator(".st-key-orchestration-status")
    progress = page.locator(".st-key-orchestration-progress")
    expect(status).to_contain_text("running", timeout=60_000)
    # wait for a batch to complete (the page updates by itself), then pause
    expect(progress).not_to_contain_text(" 0/12", timeout=90_000)
    page.get_by_role("button", name="Pause").click()
    expect(status).to_contain_text("paused", timeout=60_000)
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    paused_progress = progress.inner_text()
    assert "100%" not in paused_progress

    page.get_by_role("button", name="Resume").click()
    expect(status).to_contain_text("completed", timeout=120_000)
    expect(progress).to_contain_text("100% · 12/12 batches completed", timeout=10_000)
    # a completed orchestration offers no lifecycle button
    for name in ("Pause", "Resume", "Cancel", "Retry"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    wait_for_app(page)
    page.locator(".st-key-orchestration-tabs").get_by_role("tab", name="Timeline").first.click()
    expect(page.locator(".js-plotly-plot")).to_have_count(1, timeout=20_000)
