"""One path: each button's call has exactly the arguments its snippet shows."""

from __future__ import annotations

import ast

import pytest

from switchyard.actions import KINDS, Action, snippet_call
from switchyard.app import AppEnv
from switchyard.settings import update_args, update_cluster
from switchyard.snippets import SnippetError


@pytest.mark.parametrize("kind", KINDS)
def test_snippet_calls_the_same_agi_function_with_the_same_arguments(flight, kind):
    update_args(flight.settings_path, {"files": 3, "seed": 7})
    update_cluster(flight.settings_path, pool=True, scheduler="127.0.0.1:9999", workers={"127.0.0.1": 3})
    action = Action.from_settings(kind, flight)
    name, kwargs = snippet_call(action.snippet())
    assert name == action.agi_name
    assert kwargs == action.call_kwargs()
    assert kwargs["workers"] == {"127.0.0.1": 3}
    if kind != "install":
        assert kwargs["scheduler"] == "127.0.0.1:9999" and kwargs["files"] == 3 and kwargs["seed"] == 7
    if kind == "run":
        assert kwargs["mode"] == 5
    if kind in ("install", "benchmark"):
        assert kwargs["modes_enabled"] == 5


def test_saved_snippets_are_named_for_the_pipeline_page_and_parse(flight):
    for kind, name in (("run", "AGI_run.py"), ("benchmark", "AGI_benchmark.py"), ("install", "AGI_install.py")):
        path = Action.from_settings(kind, flight).save_snippet()
        assert path.name == name
        assert path.parent == flight.home / "snippets" / "flight"
        ast.parse(path.read_text())


def test_an_arg_that_cannot_be_a_literal_is_refused_in_the_snippet(flight):
    action = Action("benchmark", flight, mode=4, scheduler="127.0.0.1:8786", workers={"127.0.0.1": 1},
                    args={"files": float("nan")})
    with pytest.raises(SnippetError, match="arg files"):
        action.snippet()


def test_unknown_kind_is_refused():
    with pytest.raises(SnippetError, match="unknown action 'serve'"):
        Action("serve", AppEnv("flight"))


def test_distrib_call_runs_what_the_snippet_shows(flight):
    """The button's call returns the same plan the snippet's AGI.get_distrib would (and saves it)."""
    from switchyard.runs import submit

    update_args(flight.settings_path, {"files": 4, "rows_per_file": 50})
    plan = Action.from_settings("distrib", flight).call()
    assert plan.partition_count == 4
    assert submit.saved_plan(flight).fingerprint == plan.fingerprint
