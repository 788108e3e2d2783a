"""switchyard.notebook in process: snippets as awaited cells, cells as steps, state between steps."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import nbformat
import pytest

from switchyard import cli, notebook
from switchyard.app import AppEnv
from switchyard.notebook import NotebookError
from switchyard.pipeline import model
from switchyard.pipeline.model import Pipeline, Step

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def flight(tmp_path, monkeypatch):
    import shutil

    apps = tmp_path / "apps"
    shutil.copytree(REPO / "apps" / "flight", apps / "flight", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("SWITCHYARD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SWITCHYARD_APPS", str(apps))
    return AppEnv("flight", apps_dir=apps)


def write_nb(path: Path, *cells) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(c[3:]) if c.startswith("md:")
                                         else nbformat.v4.new_code_cell(c) for c in cells])
    path.write_text(nbformat.writes(nb))
    return path


def test_awaited_rewrites_asyncio_run_and_keeps_the_layout():
    code = "import asyncio\n\nx = asyncio.run(f(1))\ny = asyncio.run(\n    g(\n        2,\n    )\n)\n"
    assert notebook.awaited(code) == "x = await f(1)\ny = await g(\n    2,\n)\n"
    kept = "import asyncio\nasyncio.sleep(0)\nz = asyncio.run(h())\n"
    assert notebook.awaited(kept) == "import asyncio\nasyncio.sleep(0)\nz = await h()\n"
    inside = "import asyncio\n\ndef main():\n    return asyncio.run(h())\n\nif True:\n    asyncio.run(main())\n"
    assert notebook.awaited(inside) == ("import asyncio\n\ndef main():\n    return asyncio.run(h())\n\n"
                                        "if True:\n    await main()\n")


def test_orchestrate_notebook_cells_are_the_page_snippets_with_await(flight):
    from switchyard.actions import Action, snippet_call

    nb = notebook.orchestrate_notebook(flight)
    nbformat.validate(nb)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code[0] == f"from switchyard import AGI, AppEnv\n\napp_env = AppEnv('flight', apps_dir='{flight.apps_path}')"
    for cell, kind in zip(code[1:4], ("install", "distrib", "run")):
        page = Action.from_settings(kind, flight)
        # the page's snippet, parsed back, is the same call with the same arguments
        assert snippet_call(page.snippet()) == snippet_call(
            "import asyncio\n" + code[0] + "\n" + cell.replace("await AGI.", "asyncio.run(AGI.").replace(
                "\n)\nprint", "\n))\nprint"))
    assert "run=result.orchestration_id" in code[4]
    path = notebook.export(flight)
    assert path.name == "flight_orchestrate.ipynb" and nbformat.read(str(path), 4).cells[1].source == code[0]


def test_cells_become_a_chain_of_steps_and_bad_cells_are_refused_by_number(flight, tmp_path):
    nb = write_nb(tmp_path / "a.ipynb", "md:# Load", "x = 2", "", "md:## Twice", "y = x * 2\nprint(y)")
    before = model.load(flight).ids()  # the shipped pipeline's steps stay; the cells come after
    steps = notebook.import_notebook(flight, nb)
    assert [(s.id, s.depends_on, s.title) for s in steps] == [("cell_1", [], "Load"),
                                                           ("cell_2", ["cell_1"], "Twice")]
    assert model.load(flight).ids() == before + ["cell_1", "cell_2"]
    assert notebook.cell_source(steps[1].code) == "y = x * 2\nprint(y)\n"
    with pytest.raises(NotebookError, match="step id 'cell_1' is already in the pipeline"):
        notebook.import_notebook(flight, nb)
    assert [s.id for s in notebook.import_notebook(flight, nb, prefix="again")] == ["again_1", "again_2"]
    assert len(model.load(flight).steps) == len(before) + 4
    magic = write_nb(tmp_path / "m.ipynb", "x = 1", "%pip install pandas")
    with pytest.raises(NotebookError, match=r"m.ipynb cell 2 uses IPython syntax"):
        notebook.notebook_steps(magic)
    broken = write_nb(tmp_path / "b.ipynb", "def f(:\n    pass")
    with pytest.raises(NotebookError, match=r"b.ipynb cell 1: syntax error at line 1"):
        notebook.notebook_steps(broken)
    (tmp_path / "junk.ipynb").write_text("{not json")
    with pytest.raises(NotebookError, match="junk.ipynb is not a Jupyter notebook"):
        notebook.notebook_steps(tmp_path / "junk.ipynb")
    assert len(model.load(flight).steps) == len(before) + 4  # nothing written by the refused imports


def test_run_cell_passes_variables_functions_and_modules_to_the_next_cell(tmp_path, capsys):
    one, two, three = (tmp_path / n for n in ("one", "two", "three"))
    notebook.run_cell("import math\nimport threading\nlock = threading.Lock()\n"
                      "def area(r):\n    return math.pi * r * r\nsizes = [1, 2]\n", step_dir=one, dep_dirs=[])
    err = capsys.readouterr().err
    assert "variable 'lock' is not passed on to later cells: it cannot be pickled" in err
    ns = notebook.run_cell("import asyncio\nawait asyncio.sleep(0)\ntotal = sum(area(r) for r in sizes)\n",
                           step_dir=two, dep_dirs=[str(one)])
    assert ns["total"] == pytest.approx(3.141592653589793 * 5) and "lock" not in ns
    ns = notebook.run_cell("third = total + math.floor(2.5)\n", step_dir=three, dep_dirs=[str(two)])
    assert ns["third"] == pytest.approx(ns["total"] + 2)
    assert not isinstance(ns.get("lock"), type(threading.Lock()))


def test_pipeline_notebook_round_trips_the_steps(flight, tmp_path, capsys):
    p = Pipeline(steps=[Step(id="make", code="import asyncio\nv = asyncio.run(asyncio.sleep(0, 7))\n",
                             retries=2, timeout=30.0),
                        Step(id="use", code="print('got', 7)\n", depends_on=["make"], title="report")])
    model.save(flight, p)
    assert cli.main(["notebook", "export", "flight", "--pipeline", "--json",
                     "--output", str(tmp_path / "p.ipynb")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["path"] == str(tmp_path / "p.ipynb") and doc["kind"] == "pipeline"
    cells = [c for c in nbformat.read(doc["path"], 4).cells if c.cell_type == "code"]
    assert cells[0].source == "import asyncio\nv = await asyncio.sleep(0, 7)"
    assert cells[0].metadata["switchyard"]["step"]["retries"] == 2
    assert cli.main(["notebook", "import", "flight", doc["path"], "--replace", "--json"]) == 0
    back = model.load(flight)
    assert [(s.id, s.depends_on, s.retries, s.timeout) for s in back.steps] == \
        [("make", [], 2, 30.0), ("use", ["make"], 0, 600.0)]
    assert back.step("use").title == "report"
    assert cli.main(["notebook", "import", "flight", str(tmp_path / "nope.ipynb")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.ipynb" in err
