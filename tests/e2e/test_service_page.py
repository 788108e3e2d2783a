"""Service mode in a real browser: START, STATUS (health table), HEALTH gate, STOP."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import wait_for_app


def click_action(page, label: str, key: str) -> None:
    section = page.locator(".st-key-section-service")
    section.get_by_role("tab", name=label).click()
    section.locator(f".st-key-service-{key}-flight button").click()
    wait_for_app(page)


def test_service_start_status_health_stop(workbench, page):
    try:
        walk_through(workbench, page)
    finally:  # never leave the service's cluster behind, even when an assertion failed
        # (a subprocess: Playwright's event loop runs in this thread)
        subprocess.run([sys.executable, "-m", "switchyard.cli", "cluster", "down", "flight"],
                       env=workbench.env, capture_output=True, timeout=120)


def walk_through(workbench, page):
    page.goto(workbench.url + "/?app=flight")
    wait_for_app(page)
    section = page.locator(".st-key-section-service")
    section.scroll_into_view_if_needed()
    health_file = workbench.home / "service" / "flight" / "health.json"

    click_action(page, "START", "start")
    section.get_by_text("health gate: passed").wait_for(timeout=120_000)
    started = json.loads(health_file.read_text())
    assert started["schema"] == "agi.service.health.v1"
    assert started["workers_healthy_count"] == started["workers_running_count"] == 2

    click_action(page, "STATUS", "status")
    table = section.locator("[data-testid='stDataFrame']")
    table.wait_for()
    assert table.is_visible()
    rows = json.loads(health_file.read_text())["worker_health"]
    assert len(rows) == 2 and all(r["healthy"] for r in rows)

    click_action(page, "HEALTH gate", "health")
    section.get_by_text("health gate: passed").wait_for()

    click_action(page, "STOP", "stop")
    section.get_by_text("0 loop(s)").wait_for(timeout=60_000)
    stopped = json.loads(health_file.read_text())
    assert stopped["workers_running_count"] == 0
