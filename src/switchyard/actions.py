"""What each Orchestrate button runs: one AGI call, shown as a snippet and executed as is.

An :class:`Action` is an ``AGI`` function plus the exact arguments of one call.
``snippet()`` renders that call as Python (through :mod:`switchyard.snippets`)
and ``call()`` runs the synchronous twin of the same ``AGI`` function with the
same arguments, so a button can never run something other than what its
snippet shows. ``call_kwargs()`` is that shared argument list; the tests parse
the snippet back and compare.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from switchyard import snippets
from switchyard.app import AppEnv
from switchyard.modes import mode_string
from switchyard.settings import AppSettings, load_settings
from switchyard.workspace import atomic_write_text

KINDS = ("install", "distrib", "run", "benchmark")
#: The AGI method each kind calls (the snippet's ``AGI.<name>(...)``).
AGI_NAMES = {"install": "install", "distrib": "get_distrib", "run": "run", "benchmark": "benchmark"}
FILE_NAMES = {**snippets.FILE_NAMES, "benchmark": "AGI_benchmark.py"}
Line = Callable[[str], None]


@dataclass(frozen=True)
class Action:
    """One AGI call of an app.

    Attributes:
        kind: ``install``, ``distrib``, ``run`` or ``benchmark``.
        app_env: The app.
        mode: The mode of a run; the enabled modes of an install or a benchmark.
        scheduler: Dask scheduler address (not used by install).
        workers: Host -> worker count.
        args: The app args passed as keywords (not used by install).
        costs: A distrib's cost source, ``"measured"`` (None: the app's weights).
        backups: A run's straggler backups (``AGI.run(..., backups=True)``).
    """

    kind: str
    app_env: AppEnv
    mode: int = 0
    scheduler: str | None = None
    workers: dict[str, int] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)
    costs: str | None = None
    backups: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise snippets.SnippetError(f"unknown action {self.kind!r}: choose one of {', '.join(KINDS)}")

    @classmethod
    def from_settings(cls, kind: str, app_env: AppEnv, settings: AppSettings | None = None) -> "Action":
        """The call for the app's saved ``app_settings.toml`` (what the page's buttons run)."""
        s = settings or load_settings(app_env.settings_path)
        c = s.cluster
        return cls(kind, app_env, mode=int(c.mode), scheduler=c.scheduler, workers=dict(c.workers),
                   args=dict(s.args))

    @property
    def agi_name(self) -> str:
        return AGI_NAMES[self.kind]

    @property
    def file_name(self) -> str:
        return FILE_NAMES[self.kind]

    def call_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of the AGI call (besides ``app_env`` and ``on_line``)."""
        if self.kind == "install":
            return {"modes_enabled": int(self.mode), "workers": dict(self.workers)}
        head = {"scheduler": self.scheduler, "workers": dict(self.workers)}
        if self.kind == "run":
            head = {"mode": int(self.mode), **head, **({"backups": True} if self.backups else {})}
        elif self.kind == "benchmark":
            head = {"modes_enabled": int(self.mode), **head}
        elif self.kind == "distrib" and self.costs and self.costs != "weights":
            head = {**head, "costs": self.costs}
        return {**head, **self.args}

    def snippet(self) -> str:
        """The runnable Python of this call."""
        if self.kind == "benchmark":
            return render_benchmark(self.app_env, self.mode, self.scheduler, self.workers, self.args)
        return snippets.render(self.kind, self.app_env, mode=int(self.mode), scheduler=self.scheduler,
                               workers=self.workers, args=self.args, modes_enabled=int(self.mode),
                               costs=self.costs, backups=self.backups)

    def save_snippet(self) -> Path:
        """Write the snippet to ``<workspace>/snippets/<app>/AGI_<kind>.py`` (the Pipeline page imports it)."""
        text = self.snippet()
        if self.kind in snippets.FILE_NAMES:
            return snippets.save(self.app_env, self.kind, text)
        return atomic_write_text(self.app_env.home / "snippets" / self.app_env.app / self.file_name, text)

    def call(self, on_line: Line | None = None) -> Any:
        """Run the call in this thread: the synchronous twin of ``AGI.<name>`` with the same arguments."""
        from switchyard.runs import bench, install, submit

        kw = self.call_kwargs()
        if self.kind == "install":
            return install.install_sync(self.app_env, kw["modes_enabled"], kw["workers"], on_line)
        if self.kind == "distrib":
            return submit.get_distrib(self.app_env, kw.pop("scheduler"), kw.pop("workers"), True, None,
                                      kw.pop("costs", None), **kw)
        if self.kind == "run":
            options = {"backups": True} if kw.pop("backups", False) else None
            return submit.run_sync(self.app_env, kw.pop("mode"), kw.pop("scheduler"), kw.pop("workers"),
                                   False, on_line, options=options, **kw)
        return bench.benchmark_sync(self.app_env, kw.pop("modes_enabled"), kw.pop("scheduler"),
                                    kw.pop("workers"), on_line, **kw)


def render_benchmark(app_env: AppEnv, modes_enabled: int, scheduler: str | None,
                     workers: dict[str, int], args: dict[str, Any]) -> str:
    """The ``AGI.benchmark`` snippet, laid out like the other snippets."""
    env_args = [snippets.literal(app_env.app, "app"),
                f"apps_dir={snippets.literal(str(app_env.apps_path), 'apps_dir')}"]
    if app_env.workspace:
        env_args.append(f"workspace={snippets.literal(str(app_env.home), 'workspace')}")
    call_args = ["app_env",
                 f"modes_enabled={snippets.literal(int(modes_enabled), 'modes_enabled')}",
                 f"scheduler={snippets.literal(scheduler, 'scheduler')}",
                 f"workers={snippets.literal(dict(workers), 'workers')}"]
    for name, value in args.items():
        call_args.append(f"{snippets._kwarg_name(name)}={snippets.literal(value, f'arg {name}')}")
    body = ",\n        ".join(call_args)
    text = (
        f"# Switchyard: benchmark app {app_env.app!r} in every mode within {int(modes_enabled)} "
        f"({mode_string(int(modes_enabled))})\n"
        "import asyncio\n\n"
        "from switchyard import AGI, AppEnv\n\n"
        f"app_env = AppEnv({', '.join(env_args)})\n"
        "result = asyncio.run(\n"
        "    AGI.benchmark(\n"
        f"        {body},\n"
        "    )\n"
        ")\n"
        "print(result)\n"
    )
    ast.parse(text)
    return text


def snippet_call(text: str) -> tuple[str, dict[str, Any]]:
    """The AGI method name and keyword arguments of a snippet (literals only), e.g. for checks."""
    for node in ast.walk(ast.parse(text)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "AGI"):
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
            return node.func.attr, kwargs
    raise snippets.SnippetError("the snippet calls no AGI method")
