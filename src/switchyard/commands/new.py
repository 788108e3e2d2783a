"""``switchyard new APP [--from flight|montecarlo|<app>] [--apps-dir DIR]``: a working app in one command."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             cluster: argparse.ArgumentParser) -> None:
    p = sub.add_parser("new", parents=[common],
                       help="create an app from the template, or clone one (--from)")
    p.add_argument("app", help="the new app's name: a Python identifier no installed module has")
    p.add_argument("--from", dest="source", metavar="APP",
                   help="clone this app of the apps folder (package and classes renamed, settings kept)")
    p.set_defaults(func=cmd_new)


def cmd_new(ns: argparse.Namespace) -> int:
    from switchyard.app import AppEnv
    from switchyard.scaffold import create_app

    apps = AppEnv(ns.app, apps_dir=ns.apps_dir).apps_path
    path = create_app(ns.app, apps, source=ns.source)
    files = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    if ns.json:
        print(json.dumps({"app": ns.app, "path": str(path), "from": ns.source, "files": files}))
    else:
        print(f"created app '{ns.app}' in {path}" + (f" (a clone of '{ns.source}')" if ns.source else ""))
        print(f"next: switchyard install {ns.app} && switchyard run {ns.app} --mode 0")
    return 0
