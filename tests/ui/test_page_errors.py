"""An unexpected exception on a page: a classified error box, the traceback in a log file, no
Streamlit traceback (the entrypoint guards every page)."""

from __future__ import annotations

import tomllib

import pytest
from streamlit.testing.v1 import AppTest

from switchyard.failures import classify, record
from switchyard.ui import plan_view

from .conftest import REPO


def boom(*args, **kwargs):
    raise RuntimeError("the store went away (injected)")


def test_unexpected_exception_shows_a_classified_box_not_a_traceback(apps_home, monkeypatch):
    _, home = apps_home
    # a library call the Orchestrate page (the default page of the entrypoint) makes at its top level
    monkeypatch.setattr(plan_view, "cached_plan", boom)
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=60)
    at.query_params["app"] = "flight"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    box = "\n".join(e.value for e in at.error)
    assert "the Orchestrate page failed" in box and "internal error" in box
    assert "RuntimeError: the store went away (injected)" in box
    log = home / "logs" / "ui-errors.log"
    assert str(log) in box and "What to do" in box
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "def boom" not in box
    assert "in boom" in text  # the traceback names the failing call; the page does not


@pytest.mark.parametrize("exc, category", [
    (__import__("sqlite3").OperationalError("database is locked"), "run store"),
    (PermissionError(13, "Permission denied"), "file access"),
    (ConnectionRefusedError(111, "refused"), "connection"),
    (ModuleNotFoundError("No module named 'x'"), "environment"),
    (RuntimeError("x"), "internal"),
])
def test_classify(exc, category, tmp_path):
    assert classify(exc)[0] == category
    failure = record(exc, "the test page", home=tmp_path, now=0)
    assert failure.category == category and failure.log_path == tmp_path / "logs" / "ui-errors.log"
    assert failure.error.startswith(type(exc).__name__) and "the test page" in failure.message()


def test_streamlit_config_hides_the_deploy_toolbar_and_tracebacks():
    client = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["client"]
    assert client["toolbarMode"] == "minimal" and client["showErrorDetails"] == "none"
    assert tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["server"]["address"] == "127.0.0.1"


def test_new_app_form_creates_the_app_or_says_why_not(apps_home):
    apps, _ = apps_home
    from .conftest import open_page

    at = open_page()
    [t for t in at.text_input if t.label == "Name"][0].input("flight")
    [b for b in at.button if b.label == "CREATE"][0].click().run()
    assert "taken" in "\n".join(e.value for e in at.error) and not (apps / ".flight").exists()
    text = [t for t in at.text_input if t.label == "Name"][0]
    text.input("demo_app")
    [b for b in at.button if b.label == "CREATE"][0].click().run()
    assert (apps / "demo_app" / "demo_app" / "__init__.py").is_file()
    assert at.query_params["app"] in ("demo_app", ["demo_app"])
