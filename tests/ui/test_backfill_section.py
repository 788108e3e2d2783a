"""The Backfill section in AppTest: the dry run shows the plan, launch errors show, running
backfills can be stopped (fixtures shared with tests/unit/test_backfill.py)."""

from __future__ import annotations

from switchyard.schedule import backfill as bf
from tests.unit.test_backfill import APP, T0, add_run, apps, env, store  # noqa: F401 - fixtures


def test_ui_dry_run_shows_the_plan(env, store):
    from streamlit.testing.v1 import AppTest

    add_run(store, {"n": 2}, "completed", T0)

    def page(home, apps):
        from switchyard.ui.backfill import render_backfill_section

        render_backfill_section(home=home, apps_dir=apps)

    at = AppTest.from_function(page, args=(str(env.home), str(env.apps_path)), default_timeout=30).run()
    assert not at.exception
    at.selectbox(key="bf-key").set_value("n").run()
    at.number_input(key="bf-from-int").set_value(1)
    at.number_input(key="bf-to-int").set_value(3)
    at.selectbox(key="bf-only").set_value("missing")
    at.button(key="bf-dry").click().run()
    assert not at.exception
    assert "2 of 3 values would be launched" in "\n".join(c.value for c in at.caption)
    frame = at.dataframe[0].value
    assert list(frame["action"]) == ["launch", "skip", "launch"]


def test_ui_launch_errors_show_and_running_backfills_can_be_stopped(env, store):
    from streamlit.testing.v1 import AppTest

    bid = bf.create_backfill(store, APP, "n", [1, 2], "all", 2)  # controlled by this (live) process

    def page(home, apps):
        from switchyard.ui.backfill import render_backfill_section

        render_backfill_section(home=home, apps_dir=apps)

    at = AppTest.from_function(page, args=(str(env.home), str(env.apps_path)), default_timeout=30).run()
    at.selectbox(key="bf-key").set_value("region").run()
    at.text_input(key="bf-keys").set_value(" , ")
    at.button(key="bf-go").click().run()
    assert not at.exception
    assert "--keys is empty" in "\n".join(e.value for e in at.error)
    assert not (env.home / "jobs" / APP / "backfill.json").exists()  # nothing started
    assert list(at.dataframe[0].value["id"]) == [bid]
    at.button(key="bf-stop").click().run()
    assert bf.get_backfill(store, bid)["stop_requested"] is True
