"""The Pipeline page in a real browser: build a 3-step pipeline (a generated run step, an imported
snippet, an inline step depending on both), save, run it, watch the DAG turn green and read each
step's log."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from switchyard.app import AppEnv
from switchyard.pipeline import model
from switchyard.settings import update_args, update_cluster

from .conftest import REPO, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
GREEN = "#2e7d32"


def choose_source(page, option: str) -> None:
    """Pick a non-generated step source; again if a rerun still in progress replaced the box.
    The pick shows as the snippet-kind box turning disabled (it only applies to gen steps)."""
    kind = page.locator(".st-key-add-kind input")
    for _ in range(3):
        wait_for_app(page)
        page.locator(".st-key-add-source").click()
        page.get_by_role("option", name=option, exact=True).click()
        try:
            expect(kind).to_be_disabled(timeout=3000)
            break
        except AssertionError:
            page.keyboard.press("Escape")
    expect(kind).to_be_disabled()
    wait_for_app(page)


def test_build_run_and_watch_a_three_step_pipeline(workbench, page):
    env = AppEnv("flight", apps_dir=workbench.apps, workspace=workbench.home)
    update_args(env.settings_path, {"files": 2, "rows_per_file": 300})
    update_cluster(env.settings_path, dask=False)
    model.pipeline_path(env).unlink()  # start from an empty pipeline
    lab = workbench.home / "snippets" / "flight" / "lab_snippet.py"
    lab.parent.mkdir(parents=True, exist_ok=True)
    lab.write_text("print('lab snippet says hi')\n")

    page.goto(f"{workbench.url}/pipeline?app=flight")
    wait_for_app(page)
    page.get_by_role("button", name="New step").click()  # "gen step" + id "run" are the defaults
    wait_for_app(page)
    expect(page.locator(".st-key-step-run")).to_be_visible()

    choose_source(page, f"snippet {lab}")
    page.locator(".st-key-add-id-1 input").fill("lab")
    page.locator(".st-key-add-id-1 input").press("Enter")
    wait_for_app(page)
    page.get_by_role("button", name="Add step").click()
    wait_for_app(page)
    expect(page.locator(".st-key-step-lab")).to_be_visible()

    choose_source(page, "inline")
    page.locator(".st-key-add-id-2 input").fill("final")
    page.locator(".st-key-add-id-2 input").press("Enter")
    wait_for_app(page)
    for dep in ("run", "lab"):
        page.locator(".st-key-add-deps-2").click()
        page.get_by_role("option", name=dep, exact=True).click()
        wait_for_app(page)
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Add step").click()
    wait_for_app(page)
    expect(page.locator(".st-key-step-final")).to_be_visible()

    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".st-key-section-steps")).to_contain_text("saved to")
    saved = model.load(env)
    assert saved.ids() == ["run", "lab", "final"]
    assert saved.step("final").depends_on == ["run", "lab"]
    assert saved.step("run").source == "gen:run" and saved.step("lab").source == f"file:{lab}"
    assert saved.step("final").source == "inline"

    page.get_by_role("button", name="Run pipeline").click()
    status = page.locator(".st-key-pipeline-run-status")
    expect(status).to_contain_text("completed", timeout=240_000)
    dag = page.locator(".st-key-pipeline-dag svg").last  # (the first is the toolbar icon)
    expect(dag).to_contain_text("[final] completed", timeout=10_000)
    fills = dag.locator(f"[fill='{GREEN}']")
    assert fills.count() >= 3  # every node green
    for sid, text in (("run", "orchestration"), ("lab", "lab snippet says hi"), ("final", "hello from")):
        page.get_by_text(re.compile(rf"^{sid}: completed")).first.click()
        expect(page.locator(f".st-key-log-{sid}")).to_contain_text(text, timeout=10_000)
    if os.environ.get("SWITCHYARD_SCREENSHOTS") == "1":
        page.locator(".st-key-section-run").screenshot(path=str(REPO / "docs" / "screenshots" / "pipeline_run.png"))
