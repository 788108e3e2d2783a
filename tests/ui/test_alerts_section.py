"""The alerts section in AppTest: the table with delivery markers, Check now, Send test,
adding a channel and saving rules (the same library calls as the CLI)."""

from __future__ import annotations

from switchyard.alerts import config, edits
from switchyard.runs.store import RunStore


def section():
    from switchyard.ui.alerts import render_alerts_section

    render_alerts_section()


def failed(home):
    with RunStore(home / "switchyard.db") as s:
        oid = s.create_orchestration(kind="app", app="flight", mode=4, args={}, workers={}, scheduler=None,
                                     plan_fingerprint=None, run_dir=None, batches=[{"name": "b"}])
        s.acquire_lease(oid, "drv", ttl=600)
        s.command(oid, "start")
        s.command(oid, "fail", error="boom")
    return oid


def test_alerts_section_checks_tests_adds_channels_and_saves_rules(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SWITCHYARD_HOME", str(tmp_path))
    (tmp_path / "blocked").mkdir()
    edits.add_channel({"name": "bad", "kind": "file", "path": "blocked"}, tmp_path)
    oid = failed(tmp_path)
    at = AppTest.from_function(section, default_timeout=30).run()
    assert not at.exception
    assert any("No alerts yet" in c.value for c in at.caption)

    at.button(key="alerts-check").click().run()
    assert at.success[0].value == "checked: 1 new alert(s), 0 retried"
    assert at.warning[0].value.startswith("bad FAILED (1 attempt, retrying): channel 'bad' (file): IsADirectoryError")
    table = at.dataframe[0].value
    assert list(table["subject"]) == [oid] and list(table["rule"]) == ["failure"]
    assert table["delivery"][0].startswith("bad FAILED (1 attempt, retrying)") and "; log OK" in table["delivery"][0]

    at.button(key="alerts-test-log").click().run()
    assert any(s.value.startswith("test alert delivered through log") for s in at.success)
    at.button(key="alerts-test-bad").click().run()
    assert any(e.value.startswith("test alert through bad FAILED") for e in at.error)

    at.text_input(key="alerts-new-name").input("ops-hook")
    at.radio(key="alerts-new-kind").set_value("webhook").run()
    at.text_input(key="alerts-new-url").input("http://127.0.0.1:9000/hook?token=SECRET").run()
    at.button(key="alerts-new-add").click().run()
    assert not at.exception
    assert [c.name for c in config.load(tmp_path).channels] == ["log", "bad", "ops-hook"]
    shown = "\n".join(m.value for m in at.markdown)
    assert "`ops-hook` · webhook · http://127.0.0.1:9000/hook" in shown and "SECRET" not in shown

    at.number_input(key="alerts-rule-factor").set_value(5.0)
    at.checkbox(key="alerts-rule-health").uncheck()
    at.button[-1].click().run()  # the form's "Save rules"
    rules = config.load(tmp_path).rules
    assert (rules.duration_factor, rules.health_gate, rules.on_failure) == (5.0, False, True)

    at.button(key="alerts-remove-bad").click().run()
    assert [c.name for c in config.load(tmp_path).channels] == ["log", "ops-hook"]
