"""The Schedules section in AppTest: a bad cron is refused in one line, a good one is stored
with its CLI line shown, the scheduler is started, and Pause / Resume / Delete act on the store."""

from __future__ import annotations

from switchyard.runs.store import RunStore
from switchyard.schedule import scheduler
from switchyard.schedule.book import Book


def section():
    from switchyard.ui.schedules import render_schedules_section

    render_schedules_section()


def test_add_pause_resume_delete(apps_home):
    from streamlit.testing.v1 import AppTest

    _, home = apps_home
    try:
        at = AppTest.from_function(section, default_timeout=60).run()
        assert not at.exception
        assert "No schedules yet" in at.info[0].value
        at.radio(key="sched-kind").set_value("cron").run()
        at.text_input(key="sched-cron").set_value("0 25 * * *").run()
        at.button(key="sched-add").click().run()
        assert "hour 25 is out of range 0-23" in at.error[0].value
        assert not Book(RunStore(home / "switchyard.db")).list()

        at.text_input(key="sched-cron").set_value("30 2 * * *").run()
        at.text_input(key="sched-tz").set_value("Europe/Paris").run()
        at.selectbox(key="sched-overlap").set_value("queue").run()
        assert any("--cron '30 2 * * *' --tz Europe/Paris --overlap queue" in c.value for c in at.code)
        at.button(key="sched-add").click().run()
        assert not at.error, [e.value for e in at.error]
        book = Book(RunStore(home / "switchyard.db"))
        [s] = book.list()
        assert (s.when.cron, s.when.tz, s.overlap, s.app) == ("30 2 * * *", "Europe/Paris", "queue", "flight")
        assert book.lease() is not None  # adding a schedule starts the scheduler

        at.run()
        assert any(m.value.startswith("**active**") for m in at.markdown)
        at.button(key="sched-pause").click().run()
        assert book.get(s.id).paused
        assert any(m.value.startswith("**paused**") for m in at.markdown)
        at.button(key="sched-resume").click().run()
        assert not book.get(s.id).paused
        assert at.button(key="sched-delete").disabled  # needs the confirmation first
        at.checkbox(key=f"sched-sure-{s.id}").check().run()
        at.button(key="sched-delete").click().run()
        assert book.list() == []
    finally:
        scheduler.stop_running(home)
