"""Generated, runnable Python for install, get_distrib, run (and serve).

A snippet calls the same ``AGI`` function with the same arguments as the UI
button and the CLI command. Values are rendered as Python literals and checked
by parsing them back, so quotes, newlines or unicode in an arg can neither break
the snippet nor inject code.
"""

from __future__ import annotations

import ast
import keyword
import math
from pathlib import Path
from typing import Any

from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError
from switchyard.modes import mode_string
from switchyard.workspace import atomic_write_text

KINDS = ("install", "distrib", "run", "serve")
FILE_NAMES = {"install": "AGI_install.py", "distrib": "AGI_get_distrib.py", "run": "AGI_run.py",
              "serve": "AGI_serve.py"}


class SnippetError(SwitchyardError):
    category = "args"


def literal(value: Any, where: str = "value") -> str:
    """Render ``value`` as a Python literal that evaluates back to an equal value."""
    _check_literal(value, where)
    text = repr(value)
    if ast.literal_eval(text) != value:  # belt and braces: never emit what does not read back
        raise SnippetError(f"{where}: {value!r} cannot be written as a Python literal")
    return text


def _check_literal(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SnippetError(f"{where}: {value!r} is not a finite number: give a finite value")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_literal(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise SnippetError(f"{where}: key {k!r} must be a string or an integer")
            _check_literal(v, f"{where}[{k!r}]")
        return
    raise SnippetError(f"{where}: {type(value).__name__} values cannot go into a snippet: "
                       "use strings, numbers, booleans, lists or dicts")


def _kwarg_name(name: str) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise SnippetError(f"arg name {name!r} is not a Python identifier: rename it in [args]")
    return name


def render(kind: str, app_env: AppEnv, *, mode: int | None = None, scheduler: str | None = None,
           workers: dict[str, int] | None = None, args: dict[str, Any] | None = None,
           modes_enabled: int | None = None, action: str | None = None, costs: str | None = None,
           backups: bool = False) -> str:
    """The snippet text for ``kind`` (install, distrib, run, serve); ``costs`` is a distrib's cost
    source when not the default weights; ``backups`` a run's straggler backups when on."""
    if kind not in KINDS:
        raise SnippetError(f"unknown snippet kind {kind!r}: choose one of {', '.join(KINDS)}")
    env_args = [literal(app_env.app, "app")]
    env_args.append(f"apps_dir={literal(str(app_env.apps_path), 'apps_dir')}")
    if app_env.workspace:
        env_args.append(f"workspace={literal(str(app_env.home), 'workspace')}")
    call_args = ["app_env"]
    comment = f"# Switchyard: {kind} app {app_env.app!r}"
    if kind == "install":
        call_args.append(f"modes_enabled={literal(int(modes_enabled or 0), 'modes_enabled')}")
        call_args.append(f"workers={literal(dict(workers or {}), 'workers')}")
        func, result = "install", "result"
    elif kind == "distrib":
        call_args.append(f"scheduler={literal(scheduler, 'scheduler')}")
        call_args.append(f"workers={literal(dict(workers or {}), 'workers')}")
        if costs and costs != "weights":
            call_args.append(f"costs={literal(costs, 'costs')}")
        func, result = "get_distrib", "plan"
    elif kind == "run":
        comment += f" in mode {int(mode or 0)} ({mode_string(int(mode or 0))})"
        call_args.append(f"mode={literal(int(mode or 0), 'mode')}")
        call_args.append(f"scheduler={literal(scheduler, 'scheduler')}")
        call_args.append(f"workers={literal(dict(workers or {}), 'workers')}")
        if backups:
            call_args.append("backups=True")
        func, result = "run", "result"
    else:
        call_args.append(f"action={literal(action or 'status', 'action')}")
        call_args.append(f"scheduler={literal(scheduler, 'scheduler')}")
        call_args.append(f"workers={literal(dict(workers or {}), 'workers')}")
        func, result = "serve", "result"
    if kind in ("distrib", "run", "serve"):
        for name, value in (args or {}).items():
            call_args.append(f"{_kwarg_name(name)}={literal(value, f'arg {name}')}")
    body = ",\n        ".join(call_args)
    text = (
        f"{comment}\n"
        "import asyncio\n\n"
        "from switchyard import AGI, AppEnv\n\n"
        f"app_env = AppEnv({', '.join(env_args)})\n"
        f"{result} = asyncio.run(\n"
        f"    AGI.{func}(\n"
        f"        {body},\n"
        "    )\n"
        ")\n"
        f"print({result})\n"
    )
    ast.parse(text)  # a snippet that does not parse is a bug here, not the operator's
    return text


def render_from_settings(kind: str, app_env: AppEnv) -> str:
    """The snippet for the app's current ``app_settings.toml``."""
    from switchyard.settings import load_settings

    s = load_settings(app_env.settings_path)
    c = s.cluster
    return render(kind, app_env, mode=int(c.mode), scheduler=c.scheduler, workers=c.workers,
                  args=s.args, modes_enabled=int(c.mode))


def save(app_env: AppEnv, kind: str, text: str) -> Path:
    """Write a snippet to ``<workspace>/snippets/<app>/AGI_<kind>.py`` atomically."""
    path = app_env.home / "snippets" / app_env.app / FILE_NAMES[kind]
    return atomic_write_text(path, text)
