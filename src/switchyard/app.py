"""Apps: the `App` base class, `Partition`, and discovery/loading from an apps folder.

An app lives in ``<apps_dir>/<name>/`` with an ``app_settings.toml``, a
``pyproject.toml`` (what its worker environment needs) and a package
``<name>/`` whose ``__init__.py`` defines one subclass of :class:`App`.

Manager side: ``prepare()`` then ``partitions()``; worker side: ``start()``,
``work(partition)`` (by default ``work_item`` over the items, then
``combine``), ``stop()``; manager side again: ``reduce(results, output_dir)``.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable

from pydantic import BaseModel, ConfigDict, ValidationError

from switchyard import workspace
from switchyard.exceptions import AppLoadError, AppNotFound, ArgsError

# Keyword names of AGI.run / get_distrib: an app arg may not shadow them.
# Every engine option of a run request is among them (tests/unit/test_request.py checks it).
RESERVED_ARG_NAMES = frozenset(
    {"app_env", "mode", "scheduler", "workers", "detach", "on_line", "modes_enabled",
     "benchmark", "plan", "verbose", "action", "capacities", "request", "save", "force",
     "max_attempts", "max_inflight", "origin", "options", "cluster", "pool_size", "note",
     "workers_from", "plan_fingerprint", "apps_dir", "schema_version", "costs", "backups"}
)


@dataclass(frozen=True)
class Partition:
    """A unit of work: a name unique within the job, a weight (cost estimate), its items."""

    name: str
    weight: float
    items: tuple = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"name": self.name, "weight": self.weight, "items": list(self.items)}

    @classmethod
    def from_dict(cls, d: dict) -> "Partition":
        return cls(name=str(d["name"]), weight=float(d["weight"]), items=tuple(d.get("items", ())))


class Args(BaseModel):
    """Base for an app's args model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class App:
    """Base class of an app. Subclasses set ``Args`` and implement the hooks."""

    Args: ClassVar[type[Args]] = Args
    #: Modules of the app package (names relative to it) compiled when the cython bit is on.
    compiled_modules: ClassVar[tuple[str, ...]] = ()
    #: Filled in by load_app: the app's name (its folder) and folder.
    name: ClassVar[str] = ""
    app_dir: ClassVar[Path | None] = None
    #: True: ``reduce`` gets the results as a sequence read from disk as it iterates (a run of
    #: 100,000 partitions never holds them all); False: as a list (everything in memory).
    stream_results: ClassVar[bool] = False

    def __init__(self, args: Args, data_dir: Path):
        self.args = args
        self.data_dir = Path(data_dir)

    # manager side ------------------------------------------------------------
    def prepare(self) -> None:
        """Create or check the input data (idempotent). Called before partitions()."""

    def partitions(self) -> list[Partition]:
        raise NotImplementedError

    def reduce(self, results: list[Any], output_dir: Path) -> Path:
        """Combine the per-partition results (in partition order) and write the output.

        ``results`` is a list, or with ``stream_results`` a sequence (``len``, indexing,
        iterating, more than once) that reads each result from its checkpoint when asked."""
        raise NotImplementedError

    # worker side -------------------------------------------------------------
    def start(self) -> None:
        """Once per worker process, before the first partition."""

    def stop(self) -> None:
        """Once per worker process, when it shuts down cleanly."""

    def work_item(self, item: Any) -> Any:
        raise NotImplementedError

    def combine(self, partition: Partition, results: list[Any]) -> Any:
        return results

    def work(self, partition: Partition, map_items: Callable[[Callable, Iterable], Iterable] = map) -> Any:
        """Process one partition. ``map_items`` is a process pool's map in pool mode."""
        return self.combine(partition, list(map_items(self.work_item, partition.items)))


@dataclass(frozen=True)
class AppEnv:
    """Which app, in which apps folder, with which workspace. Cheap; no I/O on creation."""

    app: str
    apps_dir: Path | str | None = None
    workspace: Path | str | None = None

    @property
    def apps_path(self) -> Path:
        return Path(self.apps_dir).expanduser().resolve() if self.apps_dir else default_apps_dir()

    @property
    def home(self) -> Path:
        return Path(self.workspace).expanduser().resolve() if self.workspace else workspace.home()

    @property
    def app_dir(self) -> Path:
        return self.apps_path / self.app

    @property
    def settings_path(self) -> Path:
        return self.app_dir / "app_settings.toml"

    def check(self) -> "AppEnv":
        """Raise AppNotFound unless the app exists in the apps folder."""
        known = discover_apps(self.apps_path)
        if self.app not in known:
            raise AppNotFound(self.app, self.apps_path, known)
        return self

    def __repr__(self) -> str:  # what snippets print
        parts = [repr(self.app)]
        if self.apps_dir:
            parts.append(f"apps_dir={str(self.apps_dir)!r}")
        if self.workspace:
            parts.append(f"workspace={str(self.workspace)!r}")
        return f"AppEnv({', '.join(parts)})"


def default_apps_dir() -> Path:
    env = os.environ.get("SWITCHYARD_APPS")
    if env:
        return Path(env).expanduser().resolve()
    repo_apps = Path(__file__).resolve().parents[2] / "apps"
    if repo_apps.is_dir():
        return repo_apps
    return (Path.cwd() / "apps").resolve()


def discover_apps(apps_dir: Path | str) -> list[str]:
    """Names of the apps in ``apps_dir``: folders with app_settings.toml and a package of the same name."""
    root = Path(apps_dir)
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and (p / "app_settings.toml").is_file() and (p / p.name / "__init__.py").is_file()
    )


def load_app(app_env: AppEnv) -> type[App]:
    """Import the app's package and return its App subclass."""
    app_env.check()
    app_dir = app_env.app_dir
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    try:
        module = importlib.import_module(app_env.app)
    except Exception as e:  # the app's own code failed: say where
        raise AppLoadError(
            f"app '{app_env.app}': importing {app_dir / app_env.app}/__init__.py failed: "
            f"{type(e).__name__}: {e}"
        ) from e
    return app_class_of(module, app_env.app, app_dir)


def app_class_of(module: Any, name: str, app_dir: Path | None) -> type[App]:
    found = [
        obj for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, App) and obj is not App
        and obj.__module__.split(".")[0] == module.__name__
    ]
    if len(found) != 1:
        raise AppLoadError(
            f"app '{name}': {module.__name__}/__init__.py must define exactly one App subclass "
            f"(found {len(found)})"
        )
    cls = found[0]
    cls.name = name
    cls.app_dir = app_dir
    bad = RESERVED_ARG_NAMES & set(cls.Args.model_fields)
    if bad:
        raise AppLoadError(f"app '{name}': arg names {sorted(bad)} are reserved: rename them")
    return cls


def validate_args(app_cls: type[App], raw: dict[str, Any], source: str = "args") -> Args:
    """Validate raw args (from settings, CLI strings or the UI) into the app's model.

    A list or dict arg given as text (``--arg inputs=a.csv,b.csv`` or ``--arg 'inputs=["a.csv"]'``)
    is decoded first: JSON when it looks like JSON, else a comma-separated list.
    """
    raw = {k: _decode_text(app_cls.Args.model_fields.get(k), v) for k, v in raw.items()}
    try:
        return app_cls.Args.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        field_name = ".".join(str(x) for x in err.get("loc", ())) or "?"
        if err.get("type") == "extra_forbidden":
            known = ", ".join(app_cls.Args.model_fields)
            raise ArgsError(app_cls.name, field_name, f"unknown arg (from {source})",
                            f"use one of: {known}") from None
        if err.get("type") == "missing":
            raise ArgsError(app_cls.name, field_name, f"missing (from {source})",
                            "give it a value in [args] or with --arg") from None
        annotation = app_cls.Args.model_fields.get(field_name)
        expected = type_name(annotation.annotation) if annotation else "?"
        value = err.get("input")
        raise ArgsError(
            app_cls.name, field_name,
            f"{value!r} is not valid (from {source}): {err.get('msg', '')}",
            f"expected {expected}",
        ) from None


def _decode_text(field: Any, value: Any) -> Any:
    import json
    import typing

    if field is None or not isinstance(value, str):
        return value
    origin = typing.get_origin(field.annotation) or field.annotation
    if origin not in (list, tuple, set, dict):
        return value
    text = value.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except ValueError:
            return value  # validation names it
    if origin is dict:
        return value
    return [part.strip() for part in text.split(",") if part.strip()]


def type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def data_dir(app_env: AppEnv) -> Path:
    return app_env.home / "data" / app_env.app
