"""The orchestration lifecycle: statuses and the one table of allowed transitions.

Pure: no I/O. The run store applies :func:`next_status` inside a transaction, so
every status change of every orchestration goes through :data:`TRANSITIONS`.

Commands come from the operator (UI, CLI, HTTP API): ``start``, ``pause``,
``resume``, ``cancel``, ``retry``. Events come from the driver or the sweep:
``paused``, ``complete``, ``fail``, ``cancelled``, ``interrupt``.

Lifecycle::

    pending --start--> running --complete--> completed
                          |  \\--fail--> failed --retry--> pending
                          |   \\--interrupt--> interrupted --resume/retry--> pending
                       pause
                          v
                       pausing --paused--> paused --resume--> pending
    running/pausing --cancel--> cancelling --cancelled--> cancelled
    pending/paused/interrupted --cancel--> cancelled   (no driver to ask)

A cancelling orchestration whose driver vanished (``interrupt``) becomes
``cancelled``, not ``interrupted``: the operator already asked to stop it for
good, and nothing is left in flight once the driver is gone.

The records of the run store (:class:`Orchestration`, :class:`Batch`) live here
too, with their one mapping to and from rows and JSON documents.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any, Mapping

from switchyard.exceptions import InvalidTransition


class Status(str, Enum):
    """Status of an orchestration (stored as its text value)."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value

    @property
    def is_finished(self) -> bool:
        """No driver works on it and it will not move without a command."""
        return self in _FINISHED

    @property
    def is_terminal(self) -> bool:
        """Nothing more can happen to it."""
        return self in _TERMINAL

    @property
    def is_active(self) -> bool:
        """A driver is (or should be) working on it and heartbeating."""
        return self in _ACTIVE


_FINISHED = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.INTERRUPTED})
_TERMINAL = frozenset({Status.COMPLETED, Status.CANCELLED})
_ACTIVE = frozenset({Status.RUNNING, Status.PAUSING, Status.CANCELLING})


class BatchStatus(str, Enum):
    """Status of one batch of an orchestration."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"  # an attempt failed; retried once next_attempt_at is due
    DEAD = "dead"  # exhausted its attempts: on the dead-letter list
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


COMMANDS: tuple[str, ...] = ("start", "pause", "resume", "cancel", "retry")
EVENTS: tuple[str, ...] = ("paused", "complete", "fail", "cancelled", "interrupt")

S = Status
TRANSITIONS: dict[Status, dict[str, Status]] = {
    # interrupt from pending: the driver died before it could start the run
    S.PENDING: {"start": S.RUNNING, "cancel": S.CANCELLED, "interrupt": S.INTERRUPTED},
    S.RUNNING: {
        "pause": S.PAUSING,
        "cancel": S.CANCELLING,
        "complete": S.COMPLETED,
        "fail": S.FAILED,
        "interrupt": S.INTERRUPTED,
    },
    S.PAUSING: {
        "paused": S.PAUSED,
        "cancel": S.CANCELLING,
        "complete": S.COMPLETED,
        "fail": S.FAILED,
        "interrupt": S.INTERRUPTED,
    },
    S.PAUSED: {"resume": S.PENDING, "cancel": S.CANCELLED},
    # the operator asked to stop it for good: a driver that fails or vanishes meanwhile ends it
    S.CANCELLING: {"cancelled": S.CANCELLED, "interrupt": S.CANCELLED, "fail": S.CANCELLED},
    S.CANCELLED: {},
    S.COMPLETED: {},
    S.FAILED: {"retry": S.PENDING},
    S.INTERRUPTED: {"resume": S.PENDING, "retry": S.PENDING, "cancel": S.CANCELLED},
}
del S


def next_status(current: Status | str, command: str, orchestration_id: str = "?") -> Status:
    """Return the status that ``command`` (or driver event) leads to from ``current``.

    Raises:
        InvalidTransition: the command is not allowed from ``current`` (or is unknown);
            the message names the orchestration and its current status.
    """
    current = Status(current)
    target = TRANSITIONS[current].get(command)
    if target is None:
        if command in COMMANDS or command in EVENTS:
            # Name where the command would lead from elsewhere, so the message says what was asked.
            wanted = next((t[command] for t in TRANSITIONS.values() if command in t), "?")
        else:
            wanted = "?"
        raise InvalidTransition(orchestration_id, current.value, str(wanted), command)
    return target


def allowed_commands(status: Status | str) -> list[str]:
    """Operator commands allowed from ``status``, in a fixed order (the UI's buttons)."""
    table = TRANSITIONS[Status(status)]
    return [c for c in COMMANDS if c in table]


def allowed_events(status: Status | str) -> list[str]:
    """Driver events allowed from ``status``."""
    table = TRANSITIONS[Status(status)]
    return [e for e in EVENTS if e in table]


# -- records -------------------------------------------------------------------------------

_JSON_COLUMNS = ("args", "workers", "options", "request")


@dataclass
class Orchestration:
    """One row of ``orchestrations``: a run of an app (or a pipeline) and its lifecycle."""

    id: str
    kind: str
    app: str
    status: Status
    mode: int = 0
    args: dict = field(default_factory=dict)
    workers: dict = field(default_factory=dict)
    scheduler: str | None = None
    plan_fingerprint: str | None = None
    run_dir: str | None = None
    options: dict = field(default_factory=dict)
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    heartbeat_at: float | None = None
    lease_owner: str | None = None
    lease_expires: float | None = None
    driver_pid: int | None = None
    error: str | None = None
    output: str | None = None
    seconds: float | None = None
    total_batches: int = 0
    completed_batches: int = 0
    attempts_limit: int = 3
    request: dict = field(default_factory=dict)  # the run request document (app runs)

    def __post_init__(self) -> None:
        self.status = Status(self.status)

    @property
    def progress(self) -> float:
        """Completed batches over all batches, 0..1."""
        if self.total_batches <= 0:
            return 1.0 if self.status is Status.COMPLETED else 0.0
        return min(1.0, self.completed_batches / self.total_batches)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["progress"] = self.progress
        d["commands"] = allowed_commands(self.status)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Orchestration":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Orchestration":
        """From a row of the ``orchestrations`` table (JSON columns as text)."""
        d = {f.name: row[f.name] for f in fields(cls)}
        for name in _JSON_COLUMNS:
            d[name] = json.loads(d[name]) if d[name] else {}
        return cls(**d)


@dataclass
class Batch:
    """One row of ``batches``: a partition (or pipeline step) of an orchestration."""

    orchestration_id: str
    idx: int
    name: str
    weight: float = 1.0
    items: int = 0
    planned_worker: str | None = None
    worker: str | None = None
    status: BatchStatus = BatchStatus.PENDING
    attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    output_path: str | None = None
    next_attempt_at: float | None = None

    def __post_init__(self) -> None:
        self.status = BatchStatus(self.status)

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.started_at)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["seconds"] = self.seconds
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Batch":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Batch":
        return cls(**{f.name: row[f.name] for f in fields(cls)})
