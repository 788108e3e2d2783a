"""``switchyard notebook export|import APP``: the Orchestrate flow or the pipeline as a notebook,
and a notebook's cells as pipeline steps (:mod:`switchyard.notebook`)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             cluster: argparse.ArgumentParser) -> None:
    from switchyard.cli import add_group

    actions = add_group(sub, "notebook", "export the Orchestrate flow or the pipeline as .ipynb; import one")
    ex = actions.add_parser("export", parents=[common], help="write <app>_orchestrate.ipynb (or _pipeline)")
    ex.add_argument("app")
    ex.add_argument("--pipeline", action="store_true", help="the app's pipeline steps instead of the Orchestrate flow")
    ex.add_argument("--output", metavar="PATH", help="where to write it (default: <workspace>/notebooks/)")
    ex.set_defaults(func=cmd_export)
    im = actions.add_parser("import", parents=[common], help="add a notebook's code cells as pipeline steps")
    for name, kw in (("app", {}), ("notebook", {"help": "the .ipynb file"}),
                     ("--prefix", {"default": "cell", "help": "step ids are PREFIX_1, PREFIX_2, ... (default: cell)"}),
                     ("--replace", {"action": "store_true", "help": "replace the pipeline's steps instead of adding"})):
        im.add_argument(name, **kw)
    im.set_defaults(func=cmd_import)


def cmd_export(ns: argparse.Namespace) -> int:
    from switchyard import notebook
    from switchyard.cli import _app_env

    path = notebook.export(_app_env(ns), pipeline=ns.pipeline, output=ns.output)
    cells = len(notebook.read(path).cells)
    doc = {"path": str(path), "kind": "pipeline" if ns.pipeline else "orchestrate", "cells": cells}
    print(json.dumps(doc) if ns.json else f"wrote {cells} cells to {path}")
    return 0


def cmd_import(ns: argparse.Namespace) -> int:
    from switchyard import notebook
    from switchyard.cli import _app_env
    from switchyard.pipeline import model

    env = _app_env(ns)
    steps = notebook.import_notebook(env, ns.notebook, prefix=ns.prefix, replace=ns.replace)
    doc = {"path": str(model.pipeline_path(env)), "steps": [s.id for s in steps],
           "depends_on": {s.id: s.depends_on for s in steps}}
    print(json.dumps(doc) if ns.json else
          f"added {len(steps)} steps to {doc['path']}: {' -> '.join(doc['steps'])}")
    return 0
