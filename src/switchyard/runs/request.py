"""The run request: everything a run is, resolved once at the edge.

:func:`resolve` merges an app's ``app_settings.toml`` with a call's overrides,
validates them, and chooses where the run executes (the app's warm cluster, a
scheduler that answers, a local cluster started for the run, or the driver
alone). ``get_distrib`` and ``run`` both call it, so the work plan is made for
the workers the run will really use. The frozen :class:`RunRequest` it returns
is what the store keeps (``orchestrations.request``): the driver reads it back
with :meth:`RunRequest.from_dict` and nothing else carries the run's
parameters.

Engine options (mode, scheduler, workers, limits, origin, and ``options`` for
later ones, e.g. ``options["costs"]``, the plan's cost source ``"weights"`` or
``"measured"``, and ``options["backups"]``, straggler backups on or off) are kept
apart from the app's own ``args``; their names are reserved against app arg names
(:data:`switchyard.app.RESERVED_ARG_NAMES`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from switchyard.app import App, AppEnv, Args, data_dir, load_app, validate_args
from switchyard.exceptions import SwitchyardError
from switchyard.modes import Mode, parse_mode
from switchyard.settings import AppSettings, check_scheduler, check_workers, load_settings

SCHEMA_VERSION = 1
Line = Callable[[str], None]

# Where the workers a plan is made on come from (``distrib --json``'s ``workers_from``).
FROM_SETTINGS = "settings"
FROM_WARM = "warm cluster"


@dataclass(frozen=True)
class RunRequest:
    """One run of an app, fully resolved. ``workers`` are the workers the run uses.

    ``cluster`` says how the driver reaches them: ``"none"`` (no dask bit: batches run in
    the driver), ``"local"`` (the driver starts a local cluster for the run) or
    ``"existing"`` (``scheduler`` answers already: a warm cluster or a foreign one).
    ``workers_from`` is ``"settings"``, ``"warm cluster"`` or ``"scheduler <address>"``;
    ``note`` is the one line saying why the workers differ from the settings (or None).

    A request made by hand (``AGI.run(app_env, request=RunRequest(mode=4, args={...}))``)
    may leave fields unset (None): they come from the app's settings when it is resolved.
    """

    app: str = ""
    apps_dir: str = ""
    mode: int | None = None
    scheduler: str | None = None
    workers: Mapping[str, int] | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    cluster: str = "none"
    workers_from: str = FROM_SETTINGS
    note: str | None = None
    plan_fingerprint: str | None = None
    pool_size: int = 0
    max_attempts: int = 3
    max_inflight: int = 0
    origin: Mapping[str, Any] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @property
    def modes(self) -> Mode:
        return Mode(self.mode or 0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["workers"] = dict(self.workers) if self.workers is not None else None
        d["args"] = dict(self.args)
        d["origin"] = dict(self.origin) if self.origin else None
        d["options"] = dict(self.options)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunRequest":
        version = d.get("schema_version")
        if version != SCHEMA_VERSION:
            raise SwitchyardError(f"run request schema version {version!r} is not {SCHEMA_VERSION}: "
                                  "this run was recorded by another Switchyard version: start it again")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def with_(self, **changes: Any) -> "RunRequest":
        return replace(self, **changes)


@dataclass
class Resolved:
    """A resolved request plus what the caller's side needs: the app class, settings and args model."""

    app_env: AppEnv
    app_cls: type[App]
    settings: AppSettings
    args_model: Args
    request: RunRequest

    @property
    def mode(self) -> Mode:
        return self.request.modes

    @property
    def workers(self) -> dict[str, int]:
        return dict(self.request.workers)

    @property
    def scheduler(self) -> str:
        return self.request.scheduler

    @property
    def args_dict(self) -> dict[str, Any]:
        return dict(self.request.args)

    def new_app(self) -> App:
        return self.app_cls(self.args_model, data_dir(self.app_env))


def resolve(app_env: AppEnv, *, mode: int | str | None = None, scheduler: str | None = None,
            workers: dict[str, int] | None = None, args: dict[str, Any] | None = None,
            max_attempts: int = 3, max_inflight: int | None = None, origin: dict | None = None,
            options: dict | None = None, place: bool = False, start_cluster: bool = False,
            on_line: Line | None = None) -> Resolved:
    """Validate everything at the edge, before any file is written or process started.

    With ``place`` the cluster is chosen too (dask modes): the workers of the app's warm
    cluster or of a scheduler answering at the address replace the settings' ones, and the
    request says so (``workers_from``, ``note``). ``start_cluster`` lets placement cold-start
    a cluster over SSH (RUN does; a preview does not, and plans on the settings' workers,
    which is what that cold start would start).
    """
    app_env.check()
    settings = load_settings(app_env.settings_path)
    app_cls = load_app(app_env)
    raw_args = {**settings.args, **(args or {})}
    source = f"{app_env.settings_path} [args]" if not args else "the call's args and [args]"
    model = validate_args(app_cls, raw_args, source)
    m = parse_mode(settings.cluster.mode if mode is None else mode)
    if max_inflight is None:
        max_inflight = int(os.environ.get("SWITCHYARD_MAX_INFLIGHT") or 0)
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise SwitchyardError(f"max_attempts {max_attempts!r}: give a whole number >= 1")
    options = dict(options or {})
    if "costs" in options:  # the cost source of the plan: "weights" (default) or "measured"
        from switchyard.plan.costs import check_source

        options["costs"] = check_source(options["costs"])
    if "backups" in options:  # straggler backups: only for apps whose batches are pure, on Dask
        from switchyard.runs.backups import check_backups

        options["backups"] = check_backups(options["backups"], app_cls, int(m))
    request = RunRequest(
        app=app_env.app, apps_dir=str(app_env.apps_path), mode=int(m),
        scheduler=check_scheduler(settings.cluster.scheduler if scheduler is None else scheduler),
        workers=check_workers(settings.cluster.workers if workers is None else workers),
        args=model.model_dump(mode="json"),
        pool_size=settings.cluster.pool_size if m.uses_pool else 0,
        max_attempts=max_attempts, max_inflight=max(0, int(max_inflight)),
        origin=dict(origin) if origin else None, options=options,
    )
    if place:
        request = placed(app_env, request, start_cluster=start_cluster, on_line=on_line)
    return Resolved(app_env=app_env, app_cls=app_cls, settings=settings, args_model=model, request=request)


def placed(app_env: AppEnv, request: RunRequest, *, start_cluster: bool, on_line: Line | None = None) -> RunRequest:
    """The request with its cluster chosen: where a dask-mode run executes, and on which workers."""
    if not request.modes.uses_dask:
        return request.with_(cluster="none")
    from switchyard.cluster.warm import choose_cluster

    lines: list[str] = []
    kind, address, workers, origin = choose_cluster(
        app_env, request.scheduler, dict(request.workers), request.modes.uses_cython,
        lines.append if on_line is None else (lambda line: (lines.append(line), on_line(line))),
        start=start_cluster)
    note = None
    if dict(workers) != dict(request.workers):
        total = sum(workers.values())
        note = (f"planned on the {total} workers of the {origin} ({_counts(workers)}), not on the "
                f"{sum(request.workers.values())} of [cluster].workers ({_counts(request.workers)})")
    return request.with_(cluster=kind, scheduler=address, workers=dict(workers), workers_from=origin, note=note)


def _counts(workers: Mapping[str, int]) -> str:
    return ", ".join(f"{h}: {n}" for h, n in workers.items())


def app_env_of(request: RunRequest, home: Path | str) -> AppEnv:
    return AppEnv(request.app, apps_dir=request.apps_dir, workspace=home)
