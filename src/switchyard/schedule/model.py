"""What a schedule is: what it launches, when, and what it does when runs overlap or were missed.

A schedule launches a run of an app or of its pipeline. It fires on a cron expression in a
time zone, on a fixed interval, or when new files appear in a watched folder (a file
trigger). :class:`Schedule` is the record; :func:`to_row` / :meth:`Schedule.from_row` are
the one place it maps to the store.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from switchyard.exceptions import ScheduleError
from switchyard.schedule.timing import When, check_policy

SCHEMA = 1
KINDS = ("cron", "interval", "files")
TARGETS = ("app", "pipeline")
DEFAULT_DEBOUNCE = 5.0
DEFAULT_FILES_ARG = "inputs"
INBOX = "inbox"  # the app's input folder, under its data folder: the default watched folder


@dataclass(frozen=True)
class Watch:
    """A file trigger: new files in ``folder`` matching ``pattern`` start a run once no new
    file appeared for ``debounce`` seconds; the run gets them in its ``arg`` argument."""

    folder: str
    pattern: str = "*"
    debounce: float = DEFAULT_DEBOUNCE
    arg: str = DEFAULT_FILES_ARG

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Watch":
        return cls(folder=str(d["folder"]), pattern=str(d.get("pattern", "*")),
                   debounce=float(d.get("debounce", DEFAULT_DEBOUNCE)), arg=str(d.get("arg", DEFAULT_FILES_ARG)))


@dataclass(frozen=True)
class Schedule:
    """One schedule as stored. Times are epoch seconds."""

    id: str
    app: str
    kind: str                      # cron | interval | files
    target: str = "app"            # app | pipeline
    when: When | None = None       # cron and interval schedules
    watch: Watch | None = None     # file triggers
    overlap: str = "skip"          # skip | queue | cancel
    catch_up: str = "last"         # none | last | all
    catch_up_window: float | None = None
    condition: str | None = None   # see switchyard.schedule.condition
    args: dict[str, Any] = field(default_factory=dict)  # overrides of the app's [args]
    mode: int | None = None
    apps_dir: str | None = None
    name: str = ""
    paused: bool = False
    created_at: float = 0.0
    updated_at: float = 0.0
    checked_at: float = 0.0        # fire times up to here are handled
    next_fire_at: float | None = None
    last_fire_at: float | None = None

    @property
    def label(self) -> str:
        return self.name or f"{self.target} of {self.app}"

    def describe(self) -> str:
        """When it fires, in an operator's words."""
        if self.kind == "files":
            w = self.watch
            return f"new files '{w.pattern}' in {w.folder} (quiet for {w.debounce:g} s)"
        return self.when.describe()

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("when", "watch")}
        d["when"] = self.when.to_dict() if self.when else None
        d["watch"] = self.watch.to_dict() if self.watch else None
        d["describe"] = self.describe()
        d["status"] = "paused" if self.paused else "active"
        return d

    @classmethod
    def from_row(cls, row: Any) -> "Schedule":
        spec = json.loads(row["spec"])
        return cls(
            id=row["id"], app=row["app"], kind=row["kind"], target=row["target"],
            when=When.from_dict(spec["when"]) if spec.get("when") else None,
            watch=Watch.from_dict(spec["watch"]) if spec.get("watch") else None,
            overlap=spec.get("overlap", "skip"), catch_up=spec.get("catch_up", "last"),
            catch_up_window=spec.get("catch_up_window"), condition=spec.get("condition"),
            args=spec.get("args") or {}, mode=spec.get("mode"), apps_dir=spec.get("apps_dir"),
            name=row["name"] or "", paused=bool(row["paused"]), created_at=row["created_at"],
            updated_at=row["updated_at"], checked_at=row["checked_at"], next_fire_at=row["next_fire_at"],
            last_fire_at=row["last_fire_at"],
        )

    def with_(self, **changes: Any) -> "Schedule":
        return replace(self, **changes)


def to_row(s: Schedule) -> dict[str, Any]:
    """The columns of ``s`` in the ``schedules`` table."""
    spec = {
        "schema": SCHEMA, "when": s.when.to_dict() if s.when else None,
        "watch": s.watch.to_dict() if s.watch else None, "overlap": s.overlap, "catch_up": s.catch_up,
        "catch_up_window": s.catch_up_window, "condition": s.condition, "args": s.args, "mode": s.mode,
        "apps_dir": s.apps_dir,
    }
    return {
        "id": s.id, "app": s.app, "kind": s.kind, "target": s.target, "name": s.name,
        "spec": json.dumps(spec, default=str), "paused": int(s.paused), "created_at": s.created_at,
        "updated_at": s.updated_at, "checked_at": s.checked_at, "next_fire_at": s.next_fire_at,
        "last_fire_at": s.last_fire_at,
    }


def new_id() -> str:
    return f"s-{secrets.token_hex(4)}"


def new_schedule(app: str, *, now: float, every: float | None = None, cron: str | None = None,
                 tz: str = "UTC", watch: Watch | None = None, target: str = "app", overlap: str = "skip",
                 catch_up: str = "last", catch_up_window: float | None = None, condition: str | None = None,
                 args: dict[str, Any] | None = None, mode: int | None = None, apps_dir: str | None = None,
                 name: str = "", anchor: float = 0.0) -> Schedule:
    """A checked new schedule (not stored yet).

    Raises:
        ScheduleError: not exactly one of ``every`` / ``cron`` / ``watch``, a bad expression,
            zone, interval, policy, condition or debounce.
    """
    from switchyard.schedule.condition import check_condition

    given = [k for k, v in (("--every", every), ("--cron", cron), ("--watch", watch)) if v is not None]
    if len(given) != 1:
        raise ScheduleError(
            f"schedule of app '{app}': give exactly one of --every SECONDS, --cron EXPR or --watch FOLDER"
            + (f" (got {', '.join(given)})" if given else ""))
    if target not in TARGETS:
        raise ScheduleError(f"schedule target {target!r} is unknown: use 'app' or 'pipeline'")
    check_policy("overlap", overlap)
    check_policy("catch_up", catch_up)
    if catch_up_window is not None and catch_up_window <= 0:
        raise ScheduleError(f"--catch-up-window {catch_up_window:g}: give a number of seconds > 0, "
                            "or leave it out for no limit")
    if condition is not None and condition.strip():
        condition = check_condition(condition, files=watch is not None)
    else:
        condition = None
    when = None
    if watch is not None:
        kind = "files"
        if watch.debounce < 0.1:
            raise ScheduleError(f"--debounce {watch.debounce:g}: give at least 0.1 seconds of quiet "
                                "before the new files start a run")
        if not watch.arg.isidentifier():
            raise ScheduleError(f"--files-arg {watch.arg!r} is not an argument name: e.g. --files-arg inputs")
    else:
        kind = "cron" if cron is not None else "interval"
        when = When.of(cron=cron, tz=tz, every=every, anchor=anchor)
    s = Schedule(id=new_id(), app=app, kind=kind, target=target, when=when, watch=watch, overlap=overlap,
                 catch_up=catch_up, catch_up_window=catch_up_window, condition=condition,
                 args=dict(args or {}), mode=mode, apps_dir=apps_dir, name=name, created_at=now,
                 updated_at=now, checked_at=now)
    return s.with_(next_fire_at=when.next_after(now) if when else None)
