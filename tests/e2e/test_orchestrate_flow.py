"""The Orchestrate page in a real browser: the whole operator flow for the flight app.

Settings (mode hint, scheduler, save) -> INSTALL with live logs -> args (a
validation error, then a valid change) -> CHECK DISTRIBUTE -> move a partition
and save the plan -> RUN in dask mode with 2 local workers (live log, reload
mid-run, progress to 100 %) -> the run used the edited plan -> LOAD DATA ->
export two columns. Screenshots of each section go to a temp folder, or to
docs/screenshots/ (the committed ones) with SWITCHYARD_SCREENSHOTS=1.
"""

from __future__ import annotations

import csv
import json
import os
import re
import time
from pathlib import Path

import pytest
import tomlkit
from playwright.sync_api import expect

from switchyard.runs.store import RunStore

from .conftest import REPO, free_port, wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def shots_dir(workbench) -> Path:
    """docs/screenshots when SWITCHYARD_SCREENSHOTS=1 (to refresh the committed PNGs), else a temp folder,
    so an ordinary test run leaves the repository untouched."""
    if os.environ.get("SWITCHYARD_SCREENSHOTS") == "1":
        return REPO / "docs" / "screenshots"
    return workbench.root / "screenshots"


def section(page, key: str):
    return page.locator(f".st-key-section-{key}")


def shot(page, folder: Path, key: str, name: str) -> None:
    """A PNG of one section; the viewport grows to fit it (Streamlit scrolls inside its main area)."""
    folder.mkdir(parents=True, exist_ok=True)
    box = section(page, key)
    size = page.viewport_size
    height = int(box.bounding_box()["height"]) + 200
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], height)})
    try:
        box.scroll_into_view_if_needed()
        page.wait_for_timeout(300)  # let charts settle after the resize
        box.screenshot(path=str(folder / f"{name}.png"), animations="disabled")
    finally:
        page.set_viewport_size(size)


def log_text(page, key: str) -> str:
    box = page.locator(f".st-key-{key}")
    return box.inner_text() if box.count() else ""


def test_orchestrate_flow_for_flight(workbench, page):
    try:
        _flow(workbench, page, shots_dir(workbench))
    except BaseException:
        # What the page showed when it failed, next to the server's log.
        page.screenshot(path=str(workbench.root / "failure.png"), full_page=True)
        (workbench.root / "failure.txt").write_text(page.locator("[data-testid='stMain']").inner_text())
        print(f"page at failure: {workbench.root / 'failure.png'}, server log: {workbench.log}")
        raise


def _flow(workbench, page, shots: Path):
    t0 = time.monotonic()
    phases: dict[str, float] = {}
    settings_file = workbench.apps / "flight" / "app_settings.toml"
    # A loaded 2-core machine can take seconds per rerun: wait for what should appear, generously.
    expect.set_options(timeout=20_000)
    page.goto(workbench.url + "/?app=flight")
    page.wait_for_selector(".st-key-section-export", timeout=90_000)
    wait_for_app(page)

    # -- System settings: the mode hint follows the toggles; a save keeps the file's comments
    settings = section(page, "settings")
    hint = page.locator(".st-key-mode-hint")
    expect(hint).to_contain_text("mode 4")
    settings.get_by_text("pool", exact=True).click()
    expect(hint).to_contain_text("mode 5")
    expect(hint).to_contain_text("pool of 2 processes")
    shot(page, shots, "settings", "1-system-settings")
    settings.get_by_text("pool", exact=True).click()
    expect(hint).to_contain_text("mode 4")
    # A free port: a scheduler another test left on 8786 must not be mistaken for ours.
    port = free_port()
    box = settings.get_by_label("Scheduler address (host:port)")
    box.fill(f"127.0.0.1:{port}")
    box.press("Enter")
    settings.get_by_role("button", name="Save settings", exact=True).click()
    expect(settings).to_contain_text("Saved scheduler")
    saved = settings_file.read_text()
    assert f'scheduler = "127.0.0.1:{port}"' in saved
    assert "# Dask scheduler address, host:port" in saved  # tomlkit kept the comment

    phases["settings"] = time.monotonic()

    # -- Install: log lines appear while the install runs
    install = section(page, "install")
    install.get_by_role("button", name="INSTALL", exact=True).click()
    seen_live = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = install.inner_text()
        running = "installing for" in text
        lines = [s for s in log_text(page, "install-log").splitlines() if s.strip() and "no output yet" not in s]
        if running and lines:
            seen_live = True
        if "installed in" in text or "failed after" in text:
            break
        time.sleep(0.1)
    assert seen_live, "no install log line was visible while the install was running"
    expect(install).to_contain_text("installed in")
    expect(install).to_contain_text("worker environment ready")
    shot(page, shots, "install", "2-install")

    phases["install"] = time.monotonic()

    # -- App args: a bad value gets a message under its field, then a valid change is saved
    args = section(page, "args")
    files = args.get_by_label("files", exact=True)
    files.fill("0")
    args.get_by_role("button", name="Save args", exact=True).click()
    expect(args).to_contain_text("files: 0: Input should be greater than or equal to 1")
    assert "files = 8" in settings_file.read_text()
    files = args.get_by_label("files", exact=True)
    files.fill("12")
    rows = args.get_by_label("rows_per_file", exact=True)
    rows.fill("40000")
    args.get_by_role("button", name="Save args", exact=True).click()
    expect(args).to_contain_text("[args] saved: files, rows_per_file")
    doc = tomlkit.parse(settings_file.read_text())
    assert doc["args"]["files"] == 12 and doc["args"]["rows_per_file"] == 40000
    shot(page, shots, "args", "3-app-args")

    phases["args"] = time.monotonic()

    # -- Distribute: the graph, then move one partition to the other worker and save
    dist = section(page, "distribute")
    dist.get_by_role("button", name="CHECK DISTRIBUTE", exact=True).click()
    graph = page.locator(".st-key-plan-graph").get_by_role("img")
    expect(graph).to_be_visible(timeout=60_000)
    expect(graph).to_contain_text("127.0.0.1-1")
    plan_file = workbench.home / "plans" / "flight" / "plan.json"
    plan = json.loads(plan_file.read_text())
    where = {p["name"]: s["id"] for s in plan["slots"] for p in s["partitions"]}
    moved, source = "flight_0000", where["flight_0000"]
    target = next(s["id"] for s in plan["slots"] if s["id"] != source)
    shot(page, shots, "distribute", "4-distribute")
    picker = dist.locator(".st-key-plan-move-names-flight")
    picker.click()
    page.keyboard.type(moved)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    dist.locator(".st-key-plan-move-target-flight").click()
    page.get_by_role("option", name=target, exact=True).click()
    dist.get_by_role("button", name="Move", exact=True).click()
    expect(dist).to_contain_text(f"{moved} → {target}")
    wait_for_app(page)
    dist.get_by_role("button", name="Save plan", exact=True, disabled=False).click()
    expect(dist).to_contain_text("Saved 1 move(s)")
    saved_plan = json.loads(plan_file.read_text())
    assert saved_plan["edited"] is True
    assert {p["name"]: s["id"] for s in saved_plan["slots"] for p in s["partitions"]}[moved] == target

    phases["distribute"] = time.monotonic()

    # -- Run: live log, reload mid-run, progress to 100 %
    run = section(page, "run")
    t_click = time.monotonic()
    run.get_by_role("button", name="RUN", exact=True).click()
    expect(page.locator(".st-key-run-log")).to_contain_text("using the saved work plan", timeout=30_000)
    first_line_s = time.monotonic() - t_click
    expect(run).to_contain_text("orchestration", timeout=30_000)
    oid = re.search(r"orchestration (\d{8}-\d{6}-[0-9a-f]{6})", run.inner_text()).group(1)
    expect(run.get_by_text(re.compile(r"^(play_arrow\s*)?running$"))).to_be_visible(timeout=30_000)
    page.reload()
    run = section(page, "run")
    expect(run).to_contain_text(oid, timeout=30_000)
    progress_seen = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        bar = page.locator(".st-key-run-progress")
        if bar.count():
            m = re.search(r"(\d+)/(\d+) batches", bar.inner_text())
            if m:
                progress_seen.add(int(m.group(1)))
        if "Completed 12/12 batches" in run.inner_text():
            break
        time.sleep(0.2)
    expect(run).to_contain_text("Completed 12/12 batches")
    expect(page.locator(".st-key-run-progress")).to_contain_text("100% · 12/12 batches completed")
    assert min(progress_seen) < 12, f"never saw the run in progress after the reload: {progress_seen}"
    expect(page.locator(".st-key-run-log")).to_contain_text("completed 12 batches")
    expect(run.get_by_role("button", name="RUN", exact=True)).to_be_enabled()  # the page caught up
    shot(page, shots, "run", "5-run")

    phases["run"] = time.monotonic()

    # -- the run used the edited plan
    run_dir = workbench.home / "runs" / oid
    assert "using the saved work plan with the operator's edits" in (run_dir / "run.log").read_text()
    store = RunStore(workbench.home / "switchyard.db")
    batch = next(b for b in store.batches(oid) if b.name == moved)
    assert batch.planned_worker == target and batch.worker == target

    # -- Load data and export two columns
    load = section(page, "load")
    load.get_by_role("button", name="LOAD DATA", exact=True).click()
    expect(load).to_contain_text("segments.parquet")
    expect(page.locator(".st-key-load-preview [data-testid='stDataFrame']")).to_be_visible()
    shot(page, shots, "load", "6-load-data")
    exp = section(page, "export")
    picker = exp.locator("[data-testid='stMultiSelect']")
    for column in ("latitude", "longitude"):
        picker.click()
        page.keyboard.type(column)
        page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    exp.get_by_role("button", name="EXPORT", exact=True).click()
    expect(exp).to_contain_text("Wrote 2 column(s)")
    out = workbench.home / "export" / "flight" / "export.csv"
    with open(out, newline="") as f:
        header = next(csv.reader(f))
    assert header == ["latitude", "longitude"]
    shot(page, shots, "export", "7-export")

    assert "Traceback" not in workbench.log.read_text()  # no exception escaped a script, fragment or job
    phases["export"] = time.monotonic()
    marks, last = [], t0
    for name, at in phases.items():
        marks.append(f"{name} {at - last:.1f} s")
        last = at
    # Bounded by the test's timeout; on an idle 2-core machine the whole flow takes about a minute.
    print(f"flow took {time.monotonic() - t0:.1f} s ({', '.join(marks)}); "
          f"RUN -> first run-log line {first_line_s:.2f} s")
