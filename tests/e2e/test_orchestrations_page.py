"""The Orchestrations page in a real browser, one workbench for two walks:

1. its Schedules tab: add a schedule every 30 s, see it trigger a run, pause it (30 s, not a
   minute: an interval fires on multiples of itself, so the wait for the first fire is half
   as long; the pause still lands well before a second one);
2. pause a long run, see it paused, resume it, see it complete at 100 %.

One Streamlit server and browser serve both. The montecarlo environment is installed from a
shell (``switchyard install``) while the test waits for the schedule's first fire, so the long
run does not install it first; the schedule launches flight, not montecarlo.
"""

from __future__ import annotations

import json
import subprocess
import re
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from switchyard.runs.store import RunStore
from switchyard.schedule.book import Book

from .conftest import wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]
SWITCHYARD = Path(sys.executable).parent / "switchyard"


def start_long_run(workbench) -> str:
    """A dask run of 12 batches of ~0.5 s each, started like an operator would from a shell."""
    proc = subprocess.run(
        [str(SWITCHYARD), "run", "montecarlo", "--mode", "4", "--detach", "--workers", "127.0.0.1:2",
         "--arg", "tasks=12", "--arg", "samples_per_task=600000", "--arg", "chunks=1", "--json"],
        capture_output=True, text=True, env=workbench.env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)["orchestration_id"]


def test_schedule_every_30_s_triggers_and_pauses_then_a_long_run_pauses_and_resumes(workbench, page):
    install = subprocess.Popen([str(SWITCHYARD), "install", "montecarlo", "--json"], env=workbench.env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        schedule_walk_through(workbench, page)
        out, err = install.communicate(timeout=240)
        assert install.returncode == 0 and json.loads(out)["ok"], err[-2000:]
        pause_and_resume(workbench, page, start_long_run(workbench))
    finally:
        if install.poll() is None:
            install.kill()
            install.wait()
        # a subprocess: Playwright's event loop runs in this thread
        subprocess.run([sys.executable, "-m", "switchyard.cli", "scheduler", "stop"],
                       env=workbench.env, capture_output=True, timeout=60)


def schedule_walk_through(workbench, page) -> None:
    page.goto(f"{workbench.url}/orchestrations?app=flight")
    wait_for_app(page)
    page.get_by_role("tab", name="Schedules").click()
    every = page.locator(".st-key-sched-every input")
    every.fill("30")
    every.press("Enter")
    wait_for_app(page)
    expect(page.get_by_text("switchyard schedule add flight --every 30")).to_be_visible()
    page.get_by_role("button", name="Add schedule").click()
    wait_for_app(page)
    expect(page.get_by_text("added: every 30 s")).to_be_visible()

    store = RunStore(workbench.home / "switchyard.db")
    book = Book(store)
    [schedule] = book.list()
    assert schedule.when.every == 30 and schedule.app == "flight" and not schedule.paused
    # the page starts the scheduler in the same script run, just after showing "added"
    deadline = time.monotonic() + 30
    while book.lease() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert book.lease() is not None, "the workbench starts the scheduler once a schedule exists"

    # The next fire is at most 30 s away; the line updates by itself (a 2 s fragment).
    last = page.locator(".st-key-sched-last")
    expect(last).to_contain_text("launched", timeout=100_000)
    expect(last).to_contain_text("orchestration", timeout=120_000)
    [trigger] = [t for t in book.triggers(schedule.id) if t["outcome"] == "launched"]
    oid = trigger["orchestration_id"]
    assert store.get(oid).options["origin"]["schedule"] == schedule.id
    assert trigger["due_at"] % 30 == 0  # an interval fires on multiples of itself

    page.get_by_role("button", name="Pause schedule").click()
    wait_for_app(page)
    expect(page.locator(".st-key-sched-status").filter(has_text="paused")).to_be_visible()
    expect(page.get_by_role("button", name="Resume schedule")).to_be_visible()
    # nothing stale is left on the page once the rerun settled
    expect(page.locator(".st-key-sched-status")).to_have_count(1, timeout=10_000)
    expect(page.get_by_role("button", name="Pause schedule")).to_have_count(0)
    assert book.get(schedule.id).paused

    # Let the triggered run finish so nothing outlives the test.
    deadline = time.monotonic() + 120
    while store.get(oid).status.value not in ("completed", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert store.get(oid).status.value == "completed", store.get(oid).error
    assert len(book.triggers(schedule.id)) == 1  # paused: no second fire
    store.close()


def pause_and_resume(workbench, page, oid: str) -> None:
    page.goto(f"{workbench.url}/orchestrations?orchestration={oid}")
    wait_for_app(page)
    status = page.locator(".st-key-orchestration-status")
    progress = page.locator(".st-key-orchestration-progress")
    expect(status).to_contain_text("running", timeout=60_000)
    # wait for a batch to complete (the page updates by itself), then pause
    # (a positive match: "not 0/12" also held before the progress line was drawn at all)
    expect(progress).to_contain_text(re.compile(r"\b([1-9]|1[01])/12 batches completed"), timeout=90_000)
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
