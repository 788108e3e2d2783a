"""The Analysis page in a real browser, after a real flight run and its export.

The run goes through the CLI (mode 0, small args); export.csv is cut from its
segments.parquet with pandas and given a lineage sidecar. Then: the map shows
the points, the chart is a scatter; switching the chart type to histogram
redraws it and survives a reload (kept in app_settings.toml).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import expect

from switchyard.lineage import read_lineage, write_export_lineage

from .conftest import wait_for_app

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
SWITCHYARD = Path(sys.executable).parent / "switchyard"
COLUMNS = ["aircraft", "flight_id", "timestamp", "latitude", "longitude", "altitude_m", "segment_km", "speed_kmh"]

# (trace types, points) of every Plotly figure in a view container, from the figures the browser drew
FIGURE_DATA = """(key) => Array.from(document.querySelectorAll(`.st-key-view-${key} .js-plotly-plot`))
    .map(d => (d._fullData || []).map(t => [t.type, (t.lat || t.x || []).length]))"""


def flight_run_and_export(wb) -> tuple[str, pd.DataFrame]:
    env = dict(os.environ, SWITCHYARD_HOME=str(wb.home), SWITCHYARD_APPS=str(wb.apps))
    proc = subprocess.run([str(SWITCHYARD), "run", "flight", "--mode", "0", "--arg", "files=4",
                           "--arg", "rows_per_file=400", "--json"],
                          capture_output=True, text=True, env=env, timeout=200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = json.loads(proc.stdout)
    assert run["status"] == "completed", run
    frame = pd.read_parquet(run["output"], columns=COLUMNS)
    export = wb.home / "export" / "flight" / "export.csv"
    export.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(export, index=False)
    from switchyard.runs.store import RunStore

    with RunStore(wb.home / "switchyard.db") as store:
        write_export_lineage(export, run["output"], columns=COLUMNS, store=store,
                             run_id=run["orchestration_id"])
    return run["orchestration_id"], frame


def figure_data(page, key: str) -> list:
    return page.evaluate(FIGURE_DATA, key)


def test_map_and_scatter_after_a_flight_run_and_the_chart_type_survives_a_reload(workbench, page):
    oid, frame = flight_run_and_export(workbench)
    assert read_lineage(workbench.home / "export" / "flight" / "export.csv")["run_id"] == oid
    page.goto(workbench.url + "/?app=flight")
    wait_for_app(page)
    page.locator("[data-testid='stSidebarNav']").get_by_text("Analysis", exact=True).click()
    page.get_by_role("heading", name="Analysis").wait_for()
    map_view, chart_view = page.locator(".st-key-view-map"), page.locator(".st-key-view-chart")
    map_view.locator(".js-plotly-plot").wait_for(timeout=60_000)
    chart_view.locator(".js-plotly-plot").wait_for(timeout=60_000)

    # the map: every exported point, on a drawn map canvas
    page.wait_for_function(f"() => ({FIGURE_DATA})('map').flat().length > 0")
    traces = figure_data(page, "map")[0]
    assert {t for t, _ in traces} == {"scattermap"}
    assert sum(n for _, n in traces) == len(frame) > 0
    expect(map_view.locator("canvas").first).to_be_visible()
    # the chart: a scatter (WebGL above 1,000 points) of two plain numeric columns, by aircraft
    traces = figure_data(page, "chart")[0]
    assert {t for t, _ in traces} <= {"scatter", "scattergl"} and sum(n for _, n in traces) == len(frame)
    expect(chart_view.locator("[data-testid='stRadio'] label:has(input:checked)")).to_have_text("scatter")

    # the lineage of the loaded data names the run
    page.get_by_text("Lineage", exact=True).click()
    expect(page.locator("[data-testid='stMain']")).to_contain_text(oid)

    chart_view.get_by_text("histogram", exact=True).click()
    page.wait_for_function(f"() => ({FIGURE_DATA})('chart').flat().some(t => t[0] === 'histogram')")
    settings = (workbench.apps / "flight" / "app_settings.toml").read_text()
    assert 'kind = "histogram"' in settings and "[analysis.chart]" in settings
    assert "# Settings of the flight app." in settings  # the operator's comments are kept

    page.reload()
    wait_for_app(page)
    chart_view = page.locator(".st-key-view-chart")
    chart_view.locator(".js-plotly-plot").wait_for(timeout=60_000)
    page.wait_for_function(f"() => ({FIGURE_DATA})('chart').flat().length > 0")
    assert {t for t, _ in figure_data(page, "chart")[0]} == {"histogram"}
    checked = chart_view.locator("[data-testid='stRadio'] label:has(input:checked)")
    expect(checked).to_have_text("histogram")
