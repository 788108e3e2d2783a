"""The Pipeline page in AppTest: steps listed, add / remove (confirmed) / reorder / regenerate, Save."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from switchyard.pipeline import model
from switchyard.settings import update_args

PAGE = Path(__file__).resolve().parents[2] / "pages" / "pipeline.py"


def open_page(app: str = "flight") -> AppTest:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.query_params["app"] = app
    return at.run()


def markdown(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in at.markdown)


def test_lists_the_shipped_steps_and_draws_the_dag(flight):
    at = open_page()
    assert not at.exception
    text = markdown(at)
    for sid in ("run", "per_aircraft", "report"):
        assert f"`{sid}`" in text
    assert "entry points: run · finish points: report" in "\n".join(str(c.value) for c in at.caption)
    assert at.button(key="add-button").label == "Add step"
    assert at.get("graphviz_chart")


def test_empty_pipeline_offers_new_step_and_adds_an_inline_step_then_saves(apps_home):
    at = open_page("montecarlo")
    assert at.button(key="add-button").label == "New step"
    at.selectbox(key="add-source").set_value("inline").run()
    at.text_input(key="add-id-0").set_value("hello").run()
    at.button(key="add-button").click().run()
    assert not at.exception
    assert "`hello`" in markdown(at)
    assert "unsaved changes" in "\n".join(str(c.value) for c in at.caption)
    at.button(key="save-pipeline").click().run()
    apps, _ = apps_home
    saved = model.loads((apps / "montecarlo" / "pipeline.toml").read_text())
    assert saved.ids() == ["hello"] and "print('hello from'" in saved.steps[0].code


def test_remove_needs_a_confirmation_and_save_writes_the_file(flight):
    at = open_page()
    at.button(key="remove-per_aircraft-0").click().run()
    assert "Remove step 'per_aircraft'?" in "\n".join(str(w.value) for w in at.warning)
    at.button(key="confirm-per_aircraft-0").click().run()
    assert "`per_aircraft`" not in markdown(at)
    at.button(key="save-pipeline").click().run()
    # report depended on per_aircraft: Save refuses, names it, and writes nothing
    errors = "\n".join(str(e.value) for e in at.error)
    assert "step 'report' depends on unknown step ids: per_aircraft" in errors
    assert model.load(flight).ids() == ["run", "per_aircraft", "report"]


def test_reorder_moves_a_step(flight):
    at = open_page()
    at.button(key="down-run-0").click().run()
    at.button(key="save-pipeline").click().run()
    assert not at.error
    assert model.load(flight).ids() == ["per_aircraft", "run", "report"]


def test_a_stale_generated_step_is_flagged_and_regenerate_clears_it(flight):
    update_args(flight.settings_path, {"files": 3})
    at = open_page()
    warnings = "\n".join(str(w.value) for w in at.warning)
    assert "Stale: [args] changed since this step was generated: files" in warnings
    assert at.button(key="run-pipeline").disabled is False
    at.button(key="regen-run-0").click().run()
    assert not any("Stale:" in str(w.value) for w in at.warning)
    at.button(key="save-pipeline").click().run()
    step = model.load(flight).step("run")
    assert step.generated_args["files"] == 3 and "files=3" in step.code


def test_a_broken_pipeline_toml_is_reported_and_nothing_is_overwritten(flight):
    path = model.pipeline_path(flight)
    path.write_text("[[step]\nid = 'x'\n")
    at = open_page()
    assert not at.exception
    assert "not valid TOML" in "\n".join(str(e.value) for e in at.error)
    assert path.read_text() == "[[step]\nid = 'x'\n"


def test_last_run_statuses_history_and_retry_button(flight):
    from switchyard.pipeline.runs import create_run, open_store

    store = open_store(flight)
    oid = create_run(flight, store=store)
    store.command(oid, "start")
    store.record_results(oid, [{"idx": 0, "status": "completed"}, {"idx": 1, "status": "dead", "error": "boom"},
                               {"idx": 2, "status": "skipped", "error": "upstream step 'per_aircraft'"}])
    store.command(oid, "fail", error="1 steps failed (per_aircraft): boom")
    at = open_page()
    assert not at.exception
    badges = [b.proto.markdown.body for b in at.get("badge")] if at.get("badge") else []
    text = markdown(at) + "\n".join(badges)
    assert f"Run `{oid}`: **failed**" in text
    assert "1 steps failed (per_aircraft): boom" in "\n".join(str(e.value) for e in at.error)
    assert at.button(key="cmd-retry").label == "Retry"
    assert [e.label for e in at.expander if e.label.startswith("per_aircraft")] == ["per_aircraft: dead (boom)"]
    history = at.dataframe[0].value
    assert list(history["run"]) == [oid] and history["status"][0] == "failed"
