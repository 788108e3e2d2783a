"""Unexpected exceptions in the workbench: classified for a short message, traceback to a log file.

A Switchyard error already says what is wrong and how to fix it. Any other exception that
reaches a page is a bug or an environment problem: the operator gets what failed, in
which category, where the traceback is, and what to do; the traceback goes to
``<workspace>/logs/ui-errors.log``, never to the page.
"""

from __future__ import annotations

import sqlite3
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from switchyard import workspace

LOG_NAME = "ui-errors.log"

# (exception types, category, what to do), first match wins.
_KINDS: list[tuple[tuple[type[BaseException], ...], str, str]] = [
    ((sqlite3.Error,), "run store",
     "the run store (switchyard.db) could not be read or written: check the disk and its permissions, then reload"),
    ((PermissionError,), "file access",
     "a file or folder is not readable or writable by this user: fix its permissions, then reload"),
    ((FileNotFoundError, IsADirectoryError, NotADirectoryError), "missing file",
     "a file the page reads is gone or misplaced: re-create it (INSTALL, RUN or Export), then reload"),
    ((ConnectionError, TimeoutError), "connection",
     "a scheduler, worker or host did not answer: check the cluster in System settings, then reload"),
    ((ImportError,), "environment",
     "a module could not be imported: run `make bootstrap` (or INSTALL for the app's workers), then reload"),
    ((MemoryError,), "memory", "the workbench ran out of memory: load fewer rows, then reload"),
]
_OTHER = ("internal", "this is a bug in Switchyard or in the app: reload the page; if it fails again, "
                      "report it with the traceback from the log file")


@dataclass(frozen=True)
class Failure:
    """What the page shows for an unexpected exception."""

    where: str      # what the operator was doing, e.g. "the Analysis page"
    category: str   # "run store", "internal", ...
    error: str      # "RuntimeError: boom"
    log_path: Path  # where the traceback was written
    todo: str

    def message(self) -> str:
        return (f"{self.where} failed ({self.category} error): {self.error}. "
                f"Traceback in {self.log_path}. What to do: {self.todo}.")


def classify(exc: BaseException) -> tuple[str, str]:
    """(category, what to do) for an exception that is not a Switchyard error."""
    for types, category, todo in _KINDS:
        if isinstance(exc, types):
            return category, todo
    return _OTHER


def error_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:300]}" if first else type(exc).__name__


def record(exc: BaseException, where: str, home: Path | None = None, now: float | None = None) -> Failure:
    """Append ``exc``'s traceback to the workspace's UI error log and return its classification."""
    folder = (home or workspace.home()) / "logs"
    path = folder / LOG_NAME
    category, todo = classify(exc)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() if now is None else now))
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:  # a log: appended, not rewritten
            f.write(f"--- {stamp} {where}: {error_line(exc)}\n{text}\n")
    except OSError as e:  # the page still shows the box, and says why the log is missing
        todo = f"{todo} (the traceback could not be written: {e})"
    return Failure(where=where, category=category, error=error_line(exc), log_path=path, todo=todo)
