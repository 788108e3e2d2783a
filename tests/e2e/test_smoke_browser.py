"""Smoke test of the browser stack: the workbench loads and shows its pages."""

from .conftest import wait_for_app


def test_workbench_loads_with_pages_and_app_picker(workbench, page):
    page.goto(workbench.url)
    wait_for_app(page)
    page.get_by_role("heading", name="Orchestrate").wait_for()
    nav = page.locator("[data-testid='stSidebarNav']").inner_text()
    for name in ("Orchestrate", "Pipeline", "Analysis", "Orchestrations"):
        assert name in nav
    assert "app=flight" in page.url  # the default app, kept in the URL so reloads keep it
    picker = page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").first  # the app picker (the New app form has one too)
    assert "flight" in picker.inner_text() or picker.locator("input").input_value() == "flight"
