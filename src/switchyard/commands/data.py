"""``switchyard output APP`` (what LOAD DATA shows) and ``switchyard export APP`` (what EXPORT writes).

Both call :mod:`switchyard.export` as the page's buttons and ``AGI.load_data`` /
``AGI.export`` do. A bad run id or column is a one-line error, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             cluster: argparse.ArgumentParser) -> None:
    out = sub.add_parser("output", parents=[common],
                         help="preview a run's output: first rows, row count, dtypes (LOAD DATA)")
    out.add_argument("app")
    out.add_argument("--run", metavar="ID", help="orchestration id (default: the latest completed run)")
    out.add_argument("--rows", type=int, default=20, help="rows to show (default 20)")
    out.set_defaults(func=cmd_output)
    exp = sub.add_parser("export", parents=[common],
                         help="write chosen columns of a run's output to export.csv (EXPORT)")
    exp.add_argument("app")
    which = exp.add_mutually_exclusive_group(required=True)
    which.add_argument("--columns", metavar="A,B", help="comma-separated columns, in this order")
    which.add_argument("--all", action="store_true", help="every column of the output")
    exp.add_argument("--run", metavar="ID", help="orchestration id (default: the latest completed run)")
    exp.add_argument("--output", metavar="PATH", help="also copy export.csv to PATH")
    exp.set_defaults(func=cmd_export)


def _env(ns):
    from switchyard.app import AppEnv

    return AppEnv(ns.app, apps_dir=ns.apps_dir).check()


def cmd_output(ns: argparse.Namespace) -> int:
    from switchyard.agi import AGI
    from switchyard.exceptions import SwitchyardError
    from switchyard.export import preview_dict

    if ns.rows < 0:
        raise SwitchyardError(f"--rows {ns.rows}: give a whole number >= 0")
    p = asyncio.run(AGI.load_data(_env(ns), rows=ns.rows, run=ns.run))
    if ns.json:
        print(json.dumps(preview_dict(p), default=str))
        return 0
    print(f"{p.path}" + (f" (run {p.orchestration_id})" if p.orchestration_id else ""))
    print(f"{p.rows:,} rows, {len(p.columns)} columns")
    print("  ".join(f"{c}: {t}" for c, t in p.dtypes.items()))
    if ns.rows:
        print(p.head.to_string(index=False))
    return 0


def cmd_export(ns: argparse.Namespace) -> int:
    from pathlib import Path

    import pandas as pd

    from switchyard.agi import AGI
    from switchyard.lineage import sidecar_path
    from switchyard.workspace import atomic_write_bytes

    columns = None if ns.all else [c.strip() for c in ns.columns.split(",") if c.strip()]
    path = Path(asyncio.run(AGI.export(_env(ns), columns=columns, run=ns.run)))
    lineage = sidecar_path(path) if sidecar_path(path).is_file() else None
    copy = None
    if ns.output:  # a copy for whoever asked, with its sidecar; export.csv stays where pages read it
        copy = atomic_write_bytes(Path(ns.output).expanduser().resolve(), path.read_bytes())
        if lineage is not None:
            atomic_write_bytes(sidecar_path(copy), lineage.read_bytes())
    header = [str(c) for c in pd.read_csv(path, nrows=0).columns]
    doc = {"path": str(path), "columns": header, "lineage": str(lineage) if lineage else None,
           "output": str(copy) if copy else None}
    if ns.json:
        print(json.dumps(doc))
    else:
        print(f"wrote {len(header)} column(s) to {path}" + (f"; copied to {copy}" if copy else ""))
    return 0
