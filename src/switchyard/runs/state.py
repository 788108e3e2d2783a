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
"""

from __future__ import annotations

from enum import Enum

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
    S.PENDING: {"start": S.RUNNING, "cancel": S.CANCELLED},
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
    S.CANCELLING: {"cancelled": S.CANCELLED, "interrupt": S.CANCELLED},
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
