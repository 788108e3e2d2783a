"""pipeline.toml: round trip with tomlkit, validation naming ids, DAG order, staleness and Regenerate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from switchyard.app import AppEnv
from switchyard.pipeline import model
from switchyard.pipeline.graph import step_graph
from switchyard.pipeline.model import Pipeline, PipelineError, Step
from switchyard.settings import update_args

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def flight(tmp_path):
    apps = tmp_path / "apps"
    shutil.copytree(REPO / "apps" / "flight", apps / "flight", ignore=shutil.ignore_patterns("__pycache__"))
    return AppEnv("flight", apps_dir=apps, workspace=tmp_path / "home")


def diamond() -> Pipeline:
    return Pipeline(steps=[Step(id="a", code="print(1)"), Step(id="b", code="x = '''q'''", depends_on=["a"]),
                           Step(id="c", code="print('\\n')", depends_on=["a"], fallback="d"),
                           Step(id="d", code="pass"), Step(id="e", code="pass", depends_on=["b", "c"])])


def test_toml_round_trip_keeps_code_and_fields():
    p = diamond()
    p.steps[1].generated_args = {"files": 3, "name": "x y"}
    p.steps[1].source = "gen:run"
    text = model.dumps(p)
    assert "code = '''\nprint(1)\n'''" in text  # the code reads like code in the file
    assert model.loads(text) == p


def test_order_entry_and_finish_points():
    p = diamond()
    assert p.order() == ["a", "b", "c", "d", "e"]
    assert p.entry_points() == ["a"]  # d is only a fallback
    assert p.finish_points() == ["e"]


@pytest.mark.parametrize("steps, message", [
    ([Step(id="a", code="pass", depends_on=["c"]), Step(id="b", code="pass", depends_on=["a"]),
      Step(id="c", code="pass", depends_on=["b"])], r"dependency cycle: .*a.*->.*->.*->"),
    ([Step(id="a", code="pass"), Step(id="a", code="pass"), Step(id="b", code="pass"), Step(id="b", code="pass")],
     r"duplicate step ids: a, b"),
    ([Step(id="a", code="pass", depends_on=["ghost", "nope"])], r"step 'a' depends on unknown step ids: ghost, nope"),
    ([Step(id="a", code="pass", fallback="zz")], r"step 'a' has unknown fallback step 'zz'"),
    ([Step(id="a", code="x = (\n")], r"step 'a': syntax error at line 1"),
    ([Step(id="a b", code="pass")], r"step id 'a b' is not valid"),
])
def test_invalid_pipelines_name_the_offending_ids(steps, message):
    with pytest.raises(PipelineError, match=message):
        model.validate(Pipeline(steps=steps))


def test_save_refuses_an_invalid_pipeline_and_keeps_the_file(flight):
    before = model.pipeline_path(flight).read_text()
    bad = model.load(flight)
    bad.steps[2].code = "def broken(:\n"
    with pytest.raises(PipelineError, match="step 'report': syntax error at line 1"):
        model.save(flight, bad)
    assert model.pipeline_path(flight).read_text() == before


def test_unknown_keys_and_bad_toml_are_named():
    with pytest.raises(PipelineError, match="unknown key 'colour'"):
        model.loads('[[step]]\nid = "a"\ncolour = "red"\n')
    with pytest.raises(PipelineError, match="not valid TOML"):
        model.loads("[[step]\n")


def test_shipped_flight_pipeline_is_a_three_step_dag(flight):
    p = model.load(flight)
    model.validate(p)
    assert len(p.steps) >= 3
    assert p.order() == ["run", "per_aircraft", "report"]
    assert p.step("report").depends_on == ["run", "per_aircraft"]
    assert p.step("run").source == "gen:run"
    assert model.stale_steps(p, model.current_args(flight)) == {}


def test_stale_detection_names_the_changed_key_and_regenerate_clears_it(flight):
    p = Pipeline(steps=[model.generated_step(flight, "run")])
    assert "AGI.run(" in p.steps[0].code and "files=8" in p.steps[0].code
    model.save(flight, p)
    assert model.stale_steps(model.load(flight), model.current_args(flight)) == {}
    update_args(flight.settings_path, {"files": 3})
    p = model.load(flight)
    stale = model.stale_steps(p, model.current_args(flight))
    assert stale == {"run": ["files"]}
    assert "step 'run' is stale: [args] changed since it was generated: files" in model.stale_message(stale)
    p.steps[0] = model.regenerate(flight, p.steps[0])
    assert "files=3" in p.steps[0].code
    assert model.stale_steps(p, model.current_args(flight)) == {}


def test_imported_snippet_step(tmp_path):
    f = tmp_path / "lab_snippet.py"
    f.write_text("print('lab')\n")
    s = model.imported_step(f, "lab")
    assert s.source == f"file:{f}" and s.code == "print('lab')\n" and s.breaker_kind == "file"
    with pytest.raises(PipelineError, match="cannot import snippet"):
        model.imported_step(tmp_path / "missing.py", "x")


def test_graph_colours_steps_by_status_and_marks_stale():
    g = step_graph(diamond(), {"a": "completed", "b": "dead"}, {"c": ["files"]})
    src = g.source
    assert 'a [label="a\n[a] completed"' in src and "#2e7d32" in src
    assert "#c62828" in src  # dead
    assert "STALE: files" in src
    assert "c -> d [label=fallback style=dashed]" in src
