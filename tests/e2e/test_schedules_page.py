"""Schedules in a real browser: add a schedule every 30 s, see it trigger a run, pause it.

(30 s, not a minute: an interval fires on multiples of itself, so the wait for the first
fire is half as long; the pause still lands well before a second one.)"""

from __future__ import annotations

import subprocess
import sys
import time

from playwright.sync_api import expect

from switchyard.runs.store import RunStore
from switchyard.schedule.book import Book

from .conftest import wait_for_app


def test_schedule_every_30_s_triggers_and_pauses(workbench, page):
    try:
        walk_through(workbench, page)
    finally:  # a subprocess: Playwright's event loop runs in this thread
        subprocess.run([sys.executable, "-m", "switchyard.cli", "scheduler", "stop"],
                       env=workbench.env, capture_output=True, timeout=60)


def walk_through(workbench, page):
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
        time.sleep(1)
    assert store.get(oid).status.value == "completed", store.get(oid).error
    assert len(book.triggers(schedule.id)) == 1  # paused: no second fire
    store.close()
