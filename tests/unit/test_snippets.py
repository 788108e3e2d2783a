import ast
import subprocess
import sys

import pytest

from switchyard.app import AppEnv
from switchyard.snippets import SnippetError, literal, render

HOSTILE = [
    'a"b', "a'b", 'x"); import os; os.system("echo pwned"); ("', "line1\nline2", "tab\tand\\backslash",
    "ünïcödé ✈ 日本", '"""triple"""', "\x00nul", "{}{{}}%s", "$(rm -rf /)",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_strings_round_trip_as_data(value):
    text = literal(value)
    assert ast.literal_eval(text) == value


def test_hostile_args_cannot_inject_code(tmp_path):
    args = {f"a{i}": v for i, v in enumerate(HOSTILE)}
    code = render("run", AppEnv("flight", apps_dir=tmp_path), mode=4, scheduler="127.0.0.1:8786",
                  workers={"127.0.0.1": 2}, args=args)
    tree = ast.parse(code)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    names = {ast.unparse(c.func) for c in calls}
    assert names == {"AppEnv", "asyncio.run", "AGI.run", "print"}
    run_call = next(c for c in calls if ast.unparse(c.func) == "AGI.run")
    got = {k.arg: ast.literal_eval(k.value) for k in run_call.keywords}
    assert {k: got[k] for k in args} == args
    assert got["mode"] == 4 and got["workers"] == {"127.0.0.1": 2}


def test_snippet_executes_its_literals(tmp_path):
    # The literals run through a real interpreter give back the same values.
    code = "vals = " + literal(HOSTILE) + "\nimport sys; sys.stdout.write(repr(vals))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert ast.literal_eval(out) == HOSTILE


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), object(), {1.5: "x"}])
def test_unrenderable_values_are_refused(bad):
    with pytest.raises(SnippetError):
        literal(bad)


def test_bad_arg_name_is_refused(tmp_path):
    with pytest.raises(SnippetError, match="identifier"):
        render("run", AppEnv("flight", apps_dir=tmp_path), mode=0, scheduler="127.0.0.1:8786",
               workers={"127.0.0.1": 1}, args={"x); import os #": 1})
    with pytest.raises(SnippetError, match="identifier"):
        render("run", AppEnv("flight", apps_dir=tmp_path), mode=0, scheduler="127.0.0.1:8786",
               workers={"127.0.0.1": 1}, args={"class": 1})


@pytest.mark.parametrize("kind,func", [("install", "AGI.install"), ("distrib", "AGI.get_distrib"),
                                       ("run", "AGI.run")])
def test_each_kind_calls_its_function(tmp_path, kind, func):
    code = render(kind, AppEnv("flight", apps_dir=tmp_path), mode=5, scheduler="127.0.0.1:8786",
                  workers={"127.0.0.1": 2}, args={"files": 3}, modes_enabled=5)
    assert f"{func}(" in code
    assert "from switchyard import AGI, AppEnv" in code
