"""Notebooks: the Orchestrate flow and a pipeline as ``.ipynb``, and a notebook as pipeline steps.

Export: the cells are the snippets the Orchestrate page shows (``AGI.install``,
``AGI.get_distrib``, ``AGI.run``, then ``AGI.load_data``), written with top-level
``await`` instead of ``asyncio.run`` (a Jupyter kernel already runs an event
loop). The first cell makes ``app_env``; the other cells use it, and the load
cell reads the output of the run cell's ``result``. A pipeline exports as one
cell per step, in dependency order, each cell's metadata keeping the step's
settings so importing it back gives the same steps.

Import: every code cell becomes a step that depends on the step of the code
cell before it. A step runs in its own process, so a cell's variables are
carried by :func:`run_cell`: it loads the variables the earlier cells left
(``notebook_state.pkl`` in the folder of the step it depends on), runs the
cell (top-level ``await`` allowed), and writes the variables it now has into
its own step folder. Variables are pickled one by one with cloudpickle (so
functions and classes defined in a cell travel too); modules travel as their
name and are imported again; a value that cannot be pickled is named in the
step's log and is not passed on.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import inspect
import os
import re
import sys
import types
from pathlib import Path
from typing import Any

from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError
from switchyard.workspace import atomic_write_bytes, atomic_write_text

STATE_FILE = "notebook_state.pkl"
META_KEY = "switchyard"
_STEP_FIELDS = ("id", "title", "depends_on", "retries", "retry_delay", "timeout", "fallback", "enabled", "kind")


class NotebookError(SwitchyardError):
    """A notebook cannot be read, written or imported; the message names the file and the cell."""

    category = "notebook"


def _nbformat():
    try:
        import nbformat
    except ImportError:  # pragma: no cover - a dependency of the project
        raise NotebookError("notebooks need the nbformat package: run scripts/bootstrap.sh") from None
    return nbformat


# -- snippets as cells -----------------------------------------------------------------------

def awaited(code: str) -> str:
    """``code`` with every ``asyncio.run(X)`` written as ``await X`` (the form a notebook cell
    needs), and ``import asyncio`` dropped when nothing else uses it; the layout is kept."""
    calls = [n for n in _top_level(ast.parse(code)) if isinstance(n, ast.Call) and len(n.args) == 1
             and not n.keywords and isinstance(n.func, ast.Attribute) and n.func.attr == "run"
             and isinstance(n.func.value, ast.Name) and n.func.value.id == "asyncio"]
    lines = code.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(lineno: int, col: int) -> int:  # ast columns are UTF-8 byte offsets
        return starts[lineno - 1] + len(lines[lineno - 1].encode("utf-8")[:col].decode("utf-8"))

    out = code
    for call in sorted(calls, key=lambda n: (n.lineno, n.col_offset), reverse=True):
        arg = call.args[0]
        inner = ast.get_source_segment(code, arg)
        if arg.lineno != call.lineno:  # asyncio.run(\n    X(...)\n): X's lines move left with it
            first = lines[call.lineno - 1]
            shift = arg.col_offset - (len(first) - len(first.lstrip(" ")))
            head, *rest = inner.split("\n")
            inner = "\n".join([head] + [ln[min(shift, len(ln) - len(ln.lstrip(" "))):] for ln in rest])
        out = out[:offset(call.lineno, call.col_offset)] + "await " + inner + \
            out[offset(call.end_lineno, call.end_col_offset):]
    if not re.search(r"\basyncio\b", re.sub(r"^import asyncio\n", "", out, flags=re.M)):
        out = re.sub(r"^import asyncio\n\n?", "", out, count=1, flags=re.M)
    compile(out, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    return out


def _top_level(tree: ast.AST):
    """The nodes of ``tree`` outside function and class bodies (where a cell may ``await``)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        yield node
        yield from _top_level(node)


def _split(snippet: str) -> tuple[str, str]:
    """(setup, body) of a generated snippet: the setup ends with the ``app_env = AppEnv(...)`` line."""
    lines = snippet.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("app_env = AppEnv("):
            return "".join(lines[:i + 1]), "".join(lines[i + 1:])
    raise NotebookError("a generated snippet has no app_env line: this is a bug in Switchyard")


def orchestrate_notebook(app_env: AppEnv):
    """The Orchestrate flow of the app's saved settings as a notebook (nbformat v4)."""
    from switchyard.actions import Action
    from switchyard.settings import load_settings

    nbf = _nbformat()
    settings = load_settings(app_env.settings_path)
    parts = {kind: _split(Action.from_settings(kind, app_env, settings).snippet())
             for kind in ("install", "distrib", "run")}
    setup = parts["install"][0]
    comment = setup.splitlines()[0]
    setup = awaited(setup[len(comment) + 1:]).lstrip("\n")
    # LOAD DATA's call (export.load_data_snippet), on the run of the cell above
    load_body = "preview = await AGI.load_data(app_env, rows=20, run=result.orchestration_id)\nprint(preview)"
    cells = [
        nbf.v4.new_markdown_cell(
            f"# {app_env.app}: the Orchestrate flow\n\n"
            f"Generated by Switchyard from `{app_env.settings_path}`. Each cell is the snippet the "
            "Orchestrate page shows for its button, with top-level `await` (the kernel already runs an "
            "event loop). Regenerate with `switchyard notebook export "
            f"{app_env.app}` after changing the settings."),
        nbf.v4.new_code_cell(setup.strip("\n")),
    ]
    titles = {"install": "## Install\n\nThe app's worker environment (skipped when up to date).",
              "distrib": "## Distribute\n\nThe work plan on the workers the run will use.",
              "run": f"## Run\n\nMode {int(settings.cluster.mode)}; waits for the end of the run."}
    for kind in ("install", "distrib", "run"):
        cells.append(nbf.v4.new_markdown_cell(titles[kind]))
        cells.append(nbf.v4.new_code_cell(awaited(parts[kind][1]).strip("\n")))
    cells.append(nbf.v4.new_markdown_cell("## Load data\n\nThe first rows, the row count and the column types "
                                          "of the output of the run above."))
    cells.append(nbf.v4.new_code_cell(load_body))
    nb = nbf.v4.new_notebook(cells=cells)
    nb.metadata[META_KEY] = {"app": app_env.app, "kind": "orchestrate"}
    _kernel_metadata(nb)
    return nb


def pipeline_notebook(app_env: AppEnv):
    """The app's pipeline as a notebook: one cell per enabled step, in dependency order."""
    from switchyard.pipeline import model

    nbf = _nbformat()
    p = model.load(app_env)
    if not p.steps:
        raise NotebookError(f"app '{app_env.app}' has no pipeline steps ({model.pipeline_path(app_env)}): "
                            "add steps on the Pipeline page first")
    cells = [nbf.v4.new_markdown_cell(
        f"# {app_env.app}: the pipeline\n\nGenerated by Switchyard from `{model.pipeline_path(app_env)}`: "
        "one cell per step, in dependency order. Each cell's metadata keeps the step's settings, so "
        f"`switchyard notebook import {app_env.app} THIS.ipynb` gives the steps back. In a notebook the "
        "steps share one kernel; `SWITCHYARD_STEP_DIR` and the other step folders are not set here.")]
    for sid in p.order():
        s = p.step(sid)
        if not s.enabled:
            continue
        after = f" after {', '.join(s.depends_on)}" if s.depends_on else ""
        cells.append(nbf.v4.new_markdown_cell(f"## {s.id}{after}\n\n{s.title or s.source} (`{s.source}`)"))
        cell = nbf.v4.new_code_cell(_plain_code(s.code).strip("\n"))
        cell.metadata[META_KEY] = {"step": {k: getattr(s, k) for k in _STEP_FIELDS}, "source": s.source}
        cells.append(cell)
    nb = nbf.v4.new_notebook(cells=cells)
    nb.metadata[META_KEY] = {"app": app_env.app, "kind": "pipeline"}
    _kernel_metadata(nb)
    return nb


def _plain_code(code: str) -> str:
    """A step's code as a cell: an imported cell's own source, else the code with ``await``."""
    inner = cell_source(code)
    if inner is not None:
        return inner
    try:
        return awaited(code)
    except SyntaxError:
        return code


def _kernel_metadata(nb) -> None:
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}


def default_path(app_env: AppEnv, pipeline: bool = False) -> Path:
    """``<workspace>/notebooks/<app>_orchestrate.ipynb`` (or ``_pipeline``)."""
    return app_env.home / "notebooks" / f"{app_env.app}_{'pipeline' if pipeline else 'orchestrate'}.ipynb"


def notebook_text(nb) -> str:
    nbf = _nbformat()
    nbf.validate(nb)
    return nbf.writes(nb)


def export(app_env: AppEnv, pipeline: bool = False, output: Path | str | None = None) -> Path:
    """Write the Orchestrate (or pipeline) notebook atomically; return its path."""
    nb = pipeline_notebook(app_env) if pipeline else orchestrate_notebook(app_env)
    path = Path(output).expanduser().resolve() if output else default_path(app_env, pipeline)
    return atomic_write_text(path, notebook_text(nb))


# -- notebook -> steps -----------------------------------------------------------------------

_OPEN = "run_cell(r'''\n"
_CLOSE = "''')\n"


def read(path: Path | str):
    """The notebook at ``path`` (nbformat v4), or a one-line NotebookError naming the file."""
    nbf = _nbformat()
    path = Path(path)
    try:
        return nbf.read(str(path), as_version=4)
    except OSError as e:
        raise NotebookError(f"cannot read notebook {path}: {e.strerror or e}: check the path") from None
    except Exception as e:
        raise NotebookError(f"{path} is not a Jupyter notebook ({type(e).__name__}: {str(e)[:200]}): "
                            "give an .ipynb file") from None


def step_code(source: str, label: str) -> str:
    """The code of a step that runs one notebook cell with the variables of the cells before it."""
    body = source if source.endswith("\n") else source + "\n"
    if "'''" in body or body.rstrip("\n").endswith("\\"):
        call = f"run_cell({body!r})\n"
    else:
        call = _OPEN + body + _CLOSE
    return (f"# Switchyard: {label}. The variables of the earlier cells come in from the step this one\n"
            "# depends on; this cell's go on to the next step (see switchyard.notebook.run_cell).\n"
            "from switchyard.notebook import run_cell\n\n" + call)


def cell_source(code: str) -> str | None:
    """The cell source inside a step made by :func:`step_code` (None for any other code)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    for node in tree.body:
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and node.value.func.id == "run_cell"
                and node.value.args and isinstance(node.value.args[0], ast.Constant)):
            return _unwrap(str(node.value.args[0].value))
    return None


def _unwrap(source: str) -> str:
    """The cell source of a ``run_cell(r'''`` literal, which starts with the newline after the quotes."""
    return source[1:] if source.startswith("\n") else source


_MAGIC = re.compile(r"^\s*(%|!)", re.M)


def notebook_steps(path: Path | str, prefix: str = "cell", taken: list[str] | tuple = ()) -> list:
    """The code cells of the notebook as pipeline steps, each depending on the one before.

    A cell exported from a pipeline keeps its step's id and settings (its metadata); the
    others get ids ``<prefix>_<n>`` (n counts code cells from 1). IPython syntax (``%``
    magics, ``!`` shell lines) and cells that do not compile are refused, naming the cell.
    """
    from switchyard.pipeline.model import PipelineError, Step, syntax_error

    path = Path(path)
    nb = read(path)
    steps: list = []
    used = set(taken)
    heading = ""
    n = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            first = next((ln.lstrip("#").strip() for ln in cell.source.splitlines() if ln.strip()), "")
            heading = first[:80]
            continue
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        n += 1
        where = f"{path.name} cell {n}"
        if _MAGIC.search(cell.source):
            raise NotebookError(f"{where} uses IPython syntax (a % magic or a ! shell line): a step runs plain "
                                "Python, so write it as Python (e.g. subprocess.run) or remove the cell")
        err = _compile_error(cell.source)
        if err:
            raise NotebookError(f"{where}: syntax error at line {err[0]}: {err[1]}: fix the cell")
        meta = dict((cell.metadata.get(META_KEY) or {}).get("step") or {})
        sid = str(meta.pop("id", "") or f"{prefix}_{n}")
        if sid in used:
            raise NotebookError(f"{where}: step id '{sid}' is already in the pipeline: import with another "
                                "--prefix or remove those steps first")
        used.add(sid)
        extra = {k: v for k, v in meta.items() if k in _STEP_FIELDS}
        extra.pop("depends_on", None)
        title = str(extra.pop("title", "") or heading or f"{path.name} cell {n}")
        code = step_code(cell.source, f"cell {n} of {path.name}")
        if syntax_error(code):  # a wrapper that does not compile would be a bug here
            raise PipelineError(f"{where}: the cell could not be wrapped as a step: report this")
        steps.append(Step(id=sid, code=code, title=title, source=f"file:{path}#cell{n}",
                          depends_on=[steps[-1].id] if steps else [], **extra))
        heading = ""
    if not steps:
        raise NotebookError(f"{path} has no code cells: nothing to import")
    return steps


def _compile_error(source: str) -> tuple[int, str] | None:
    try:
        compile(source, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError as e:
        return (e.lineno or 0, e.msg)
    return None


def import_notebook(app_env: AppEnv, path: Path | str, prefix: str = "cell", replace: bool = False) -> list:
    """Add the notebook's cells to the app's pipeline (``replace``: instead of its steps); saved
    atomically, and only when the pipeline validates. Returns the new steps."""
    from switchyard.pipeline import model

    p = model.load(app_env)
    keep = [] if replace else list(p.steps)
    steps = notebook_steps(path, prefix, [s.id for s in keep])
    p.steps = keep + steps
    model.save(app_env, p)
    return steps


# -- running one cell in a step --------------------------------------------------------------

def run_cell(source: str, step_dir: Path | str | None = None, dep_dirs: list[str] | None = None) -> dict:
    """Run one notebook cell as a step: the earlier cells' variables in, this cell's out.

    ``step_dir`` defaults to ``$SWITCHYARD_STEP_DIR``, ``dep_dirs`` to ``$SWITCHYARD_DEP_DIRS``
    (the runner sets both). Returns the cell's namespace.
    """
    here = Path(step_dir or os.environ.get("SWITCHYARD_STEP_DIR") or ".")
    if dep_dirs is None:
        dep_dirs = [d for d in os.environ.get("SWITCHYARD_DEP_DIRS", "").split(os.pathsep) if d]
    ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    for d in dep_dirs:
        ns.update(load_state(Path(d) / STATE_FILE))
    code = compile(_unwrap(source), "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(eval(code, ns))
    else:
        exec(code, ns)
    save_state(ns, here / STATE_FILE)
    return ns


def save_state(ns: dict[str, Any], path: Path) -> list[str]:
    """Pickle the cell's variables one by one into ``path``; return the names left out."""
    import cloudpickle

    state: dict[str, tuple[str, Any]] = {}
    left_out = []
    for name, value in ns.items():
        if name.startswith("_") or value is builtins:
            continue
        if isinstance(value, types.ModuleType):
            state[name] = ("module", value.__name__)
            continue
        try:
            state[name] = ("value", cloudpickle.dumps(value))
        except Exception as e:
            left_out.append(name)
            print(f"switchyard: variable '{name}' is not passed on to later cells: it cannot be pickled "
                  f"({type(e).__name__}: {str(e)[:120]})", file=sys.stderr)
    atomic_write_bytes(path, cloudpickle.dumps(state))
    return left_out


def load_state(path: Path) -> dict[str, Any]:
    """The variables an earlier cell left in ``path`` (empty when there is no such file)."""
    import importlib
    import pickle

    if not path.is_file():
        return {}
    out: dict[str, Any] = {}
    for name, (kind, data) in pickle.loads(path.read_bytes()).items():
        try:
            out[name] = importlib.import_module(data) if kind == "module" else pickle.loads(data)
        except Exception as e:
            print(f"switchyard: variable '{name}' from an earlier cell could not be restored "
                  f"({type(e).__name__}: {str(e)[:120]})", file=sys.stderr)
    return out
