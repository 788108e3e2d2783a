"""Every error an operator can cause has a class here.

Each exception carries the offending value and formats a one-line message that
names the file, key or id and says how to fix it. The CLI and the UI show
``str(exc)``; they never show a traceback for these.
"""

from __future__ import annotations

from pathlib import Path


class SwitchyardError(Exception):
    """Base class: ``str(exc)`` is a one-line message fit for an operator."""

    category = "error"

    def __init__(self, message: str):
        super().__init__(message.replace("\n", " "))


class SettingsError(SwitchyardError):
    """A settings file or a settings value is invalid."""

    category = "settings"

    def __init__(self, path: Path | str | None, key: str | None, problem: str, fix: str = ""):
        self.path = str(path) if path is not None else None
        self.key = key
        self.problem = problem
        self.fix = fix
        where = self.path or "settings"
        if key:
            where += f": {key}"
        msg = f"{where}: {problem}"
        if fix:
            msg += f": {fix}"
        super().__init__(msg)


class ArgsError(SwitchyardError):
    """An app argument is missing, unknown or of the wrong type."""

    category = "args"

    def __init__(self, app: str, field: str, problem: str, fix: str = ""):
        self.app = app
        self.field = field
        self.problem = problem
        msg = f"app '{app}': arg '{field}': {problem}"
        if fix:
            msg += f": {fix}"
        super().__init__(msg)


class AppNotFound(SwitchyardError):
    category = "settings"

    def __init__(self, name: str, apps_dir: Path | str, known: list[str]):
        self.name = name
        self.apps_dir = str(apps_dir)
        self.known = known
        choices = ", ".join(known) if known else "none"
        super().__init__(
            f"unknown app '{name}' in {apps_dir}: choose one of: {choices} "
            "(or point --apps-dir / SWITCHYARD_APPS at the folder that holds it)"
        )


class AppLoadError(SwitchyardError):
    """The app's own code failed to import or does not define an App."""

    category = "app"


class ModeError(SwitchyardError):
    """A mode is malformed or cannot run on this machine."""

    category = "settings"


class WorkersError(SwitchyardError):
    """A workers specification (host -> count) is malformed."""

    category = "settings"


class PlanError(SwitchyardError):
    """A work plan or a plan edit is invalid."""

    category = "plan"


class ClusterError(SwitchyardError):
    """The cluster could not be started, reached or used."""

    category = "cluster"


class InstallError(SwitchyardError):
    """A worker environment could not be provisioned."""

    category = "cluster"


class RunError(SwitchyardError):
    """A run failed; the run log holds the app's own traceback."""

    category = "app"


class NotFound(SwitchyardError):
    """An orchestration, batch or file id that does not exist."""

    category = "store"


class InvalidTransition(SwitchyardError):
    """A lifecycle command that is not legal from the current status."""

    category = "store"

    def __init__(self, orchestration_id: str, current: str, target: str, command: str | None = None):
        self.orchestration_id = orchestration_id
        self.current = str(current)
        self.target = str(target)
        self.command = command or target
        super().__init__(
            f"orchestration {orchestration_id} is {self.current}: cannot {self.command} it "
            f"(no transition {self.current} -> {self.target})"
        )


class LeaseHeld(SwitchyardError):
    """Another driver holds the orchestration's lease."""

    category = "store"

    def __init__(self, orchestration_id: str, owner: str):
        self.orchestration_id = orchestration_id
        self.owner = owner
        super().__init__(
            f"orchestration {orchestration_id} is already driven by {owner}: "
            "wait for it to finish or cancel it first"
        )


class StoreError(SwitchyardError):
    """The run store file cannot be used (written by a newer Switchyard, or not a database)."""

    category = "store"

    def __init__(self, path: Path | str, problem: str, fix: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"run store {self.path}: {problem}: {fix}")


class HostError(ClusterError):
    """One host could not be used; ``reason`` names why in the operator's words.

    Reasons: ``unreachable``, ``auth failed``, ``host key unknown``, ``python missing``,
    ``dependency failed``, ``build failed``, ``not ready``.
    """

    category = "cluster"

    def __init__(self, host: str, reason: str, detail: str, fix: str = ""):
        self.host = host
        self.reason = reason
        self.detail = detail
        self.fix = fix
        msg = f"host '{host}': {reason}: {detail}"
        if fix:
            msg += f": {fix}"
        super().__init__(msg)


class ScheduleError(SwitchyardError):
    """A schedule, trigger or backfill request is invalid (bad cron expression, time zone,
    interval, policy, key or range) or names a schedule that does not exist."""

    category = "schedule"


class AlertError(SwitchyardError):
    """The alert settings are invalid, or a channel could not deliver an alert."""

    category = "alerts"


class AnalysisError(SwitchyardError):
    """A file that cannot be analysed, or a view choice that cannot be drawn."""

    category = "analysis"


class GuardError(SwitchyardError):
    """A security guard refused an action (a public bind, a secret on argv, a login in clear,
    a host key the operator did not confirm); the message says what it protects and the way out."""

    category = "security"


class AppNameError(SwitchyardError):
    """A name for a new app that cannot be used: not an identifier, taken, or an importable module."""

    category = "settings"

    def __init__(self, name: str, problem: str, fix: str):
        self.name = name
        super().__init__(f"app name {name!r}: {problem}: {fix}")
