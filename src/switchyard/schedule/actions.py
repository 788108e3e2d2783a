"""Schedule actions shared by the CLI, the Orchestrations page and the HTTP API.

Each action checks its input against the app (it exists, its args validate, a file trigger's
argument is one of its args, a pipeline exists) before anything is stored, and returns
plain dicts. :func:`command_line` gives the ``switchyard schedule add`` line of a request,
which the page shows next to its form.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

from switchyard.app import AppEnv, data_dir
from switchyard.exceptions import ScheduleError
from switchyard.schedule.book import open_book
from switchyard.schedule.model import INBOX, Schedule, Watch, new_schedule
from switchyard.schedule import watch as watching


def inbox(app_env: AppEnv) -> Path:
    """The app's input folder, the folder a file trigger watches unless told otherwise."""
    return data_dir(app_env) / INBOX


def add(app_env: AppEnv, *, every: float | None = None, cron: str | None = None, tz: str = "UTC",
        watch: str | Path | bool | None = None, pattern: str = "*", debounce: float = 5.0,
        files_arg: str = "inputs", pipeline: bool = False, overlap: str = "skip", catch_up: str = "last",
        catch_up_window: float | None = None, condition: str | None = None,
        args: dict[str, Any] | None = None, mode: int | str | None = None, name: str = "",
        now: float | None = None) -> dict[str, Any]:
    """Check and store a new schedule; return it as a dict (with its ``id``).

    ``watch=True`` watches the app's input folder (``<home>/data/<app>/inbox``); a path
    watches that folder.

    Raises:
        ScheduleError, ArgsError, AppNotFound, SettingsError: with a one-line message.
    """
    from switchyard.runs.request import resolve

    now = time.time() if now is None else float(now)
    ctx = resolve(app_env, mode=mode, args=args or {})
    overrides = {k: ctx.args_dict[k] for k in (args or {})}
    w = None
    if watch is not None and watch is not False:
        if pipeline:
            raise ScheduleError("a file trigger passes the new files to an app run as an argument: "
                                "leave out --pipeline (a pipeline takes no run arguments)")
        fields = ctx.app_cls.Args.model_fields
        if files_arg not in fields:
            raise ScheduleError(f"app '{app_env.app}' has no argument '{files_arg}' to receive the new files: "
                                f"choose one of {', '.join(fields)} with --files-arg")
        folder = inbox(app_env) if watch is True or str(watch) == "" else Path(watch).expanduser()
        folder = folder.resolve()
        if folder.exists() and not folder.is_dir():
            raise ScheduleError(f"--watch {folder}: not a folder: give a folder to watch")
        folder.mkdir(parents=True, exist_ok=True)
        w = Watch(folder=str(folder), pattern=pattern or "*", debounce=float(debounce), arg=files_arg)
    if pipeline:
        from switchyard.pipeline import model as pipeline_model

        p = pipeline_model.load(app_env)
        if not p.steps:
            raise ScheduleError(f"app '{app_env.app}' has no pipeline steps to schedule: add steps on the "
                                f"Pipeline page or in {pipeline_model.pipeline_path(app_env)}")
    s = new_schedule(app_env.app, now=now, every=every, cron=cron, tz=tz or "UTC", watch=w,
                     target="pipeline" if pipeline else "app", overlap=overlap, catch_up=catch_up,
                     catch_up_window=catch_up_window, condition=condition, args=overrides,
                     mode=None if mode is None else int(ctx.mode), apps_dir=str(app_env.apps_path), name=name)
    book = open_book(app_env.home)
    state = watching.initial_state(watching.scan(w.folder, w.pattern)) if w else None
    book.add(s, state=state)
    return s.to_dict()


def listing(home: Path | str | None = None, app: str | None = None, now: float | None = None) -> list[dict]:
    """Every schedule with its last trigger and whether its runs are active."""
    book = open_book(home)
    out = []
    for s in book.list(app):
        d = s.to_dict()
        last = book.triggers(s.id, limit=1)
        d["last_trigger"] = last[0] if last else None
        d["active_runs"] = book.active_runs(s.id)
        d["queued"] = len(book.queued(s.id))
        out.append(d)
    return out


def detail(sid: str, home: Path | str | None = None, triggers: int = 20) -> dict[str, Any]:
    book = open_book(home)
    d = book.get(sid).to_dict()
    d["triggers"] = book.triggers(sid, limit=triggers)
    d["active_runs"] = book.active_runs(sid)
    return d


def pause(sid: str, home: Path | str | None = None) -> dict[str, Any]:
    return open_book(home).set_paused(sid, True).to_dict()


def resume(sid: str, home: Path | str | None = None) -> dict[str, Any]:
    return open_book(home).set_paused(sid, False).to_dict()


def delete(sid: str, home: Path | str | None = None) -> dict[str, Any]:
    return open_book(home).delete(sid).to_dict()


def scheduler_status(home: Path | str | None = None) -> dict[str, Any]:
    """Whether a scheduler runs for this store: its pid, host, start and last heartbeat."""
    book = open_book(home)
    lease = book.lease()
    return {"running": lease is not None, "schedules": book.count(),
            **({k: lease[k] for k in ("pid", "host", "started_at", "heartbeat_at")} if lease else {})}


def command_line(s: Schedule | dict[str, Any]) -> str:
    """The ``switchyard schedule add`` command that creates the same schedule."""
    d = s.to_dict() if isinstance(s, Schedule) else s
    parts = ["switchyard", "schedule", "add", d["app"]]
    if d.get("watch"):
        w = d["watch"]
        parts += ["--watch", w["folder"], "--debounce", f"{w['debounce']:g}"]
        if w.get("pattern", "*") != "*":
            parts += ["--pattern", w["pattern"]]
        if w.get("arg", "inputs") != "inputs":
            parts += ["--files-arg", w["arg"]]
    elif d["when"].get("cron"):
        parts += ["--cron", d["when"]["cron"], "--tz", d["when"].get("tz") or "UTC"]
    else:
        parts += ["--every", f"{d['when']['every']:g}"]
    if d.get("target") == "pipeline":
        parts.append("--pipeline")
    if d.get("overlap", "skip") != "skip":
        parts += ["--overlap", d["overlap"]]
    if d.get("catch_up", "last") != "last":
        parts += ["--catch-up", d["catch_up"]]
    if d.get("catch_up_window"):
        parts += ["--catch-up-window", f"{d['catch_up_window']:g}"]
    if d.get("condition"):
        parts += ["--when", d["condition"]]
    if d.get("mode") is not None:
        parts += ["--mode", str(d["mode"])]
    for k, v in (d.get("args") or {}).items():
        parts += ["--arg", f"{k}={v}"]
    if d.get("name"):
        parts += ["--name", d["name"]]
    return shlex.join(parts)
