"""Circuit breakers per step kind, persisted in a JSON file of the workspace.

After ``threshold`` consecutive failures of one kind of step within ``window``
seconds the breaker opens: further runs of that kind fail fast without starting
a process. After ``cooldown`` seconds it is half-open: exactly one trial runs
(:meth:`Breakers.allow` claims it under the file lock, so concurrent ready steps,
of one driver or several, get one trial between them; the others fail fast); its
success closes the breaker, its failure opens it again. A trial whose outcome is
never recorded (its driver died) frees the claim after another cool-down. Time is
a parameter.

The file (``<workspace>/pipeline/breakers.json``) is read and written whole on
each change under a lock file, so drivers of several pipelines share it.
"""

from __future__ import annotations

import fcntl
import json
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from switchyard.pipeline.model import BreakerConfig
from switchyard.workspace import atomic_write_json

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def breakers_path(home: Path) -> Path:
    return Path(home) / "pipeline" / "breakers.json"


class Breakers:
    """The breakers of one app's step kinds.

    Args:
        path: the JSON file holding every breaker of the workspace.
        app: breakers are kept per app (``<app>/<kind>``).
        config: threshold, window and cool-down.
    """

    def __init__(self, path: Path | str, app: str, config: BreakerConfig | None = None):
        self.path = Path(path)
        self.app = app
        self.config = config or BreakerConfig()

    def _key(self, kind: str) -> str:
        return f"{self.app}/{kind}"

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc = self._read()
            yield doc
            atomic_write_json(self.path, doc)

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text())
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}  # missing or damaged: every breaker starts closed

    def state(self, kind: str, now: float | None = None) -> dict[str, Any]:
        """``{"state", "failures", "opened_at", "retry_at"}`` of the breaker of ``kind``."""
        now = time.time() if now is None else now
        rec = self._read().get(self._key(kind)) or {}
        return self._view(rec, now)

    def _view(self, rec: dict, now: float) -> dict[str, Any]:
        opened = rec.get("opened_at")
        failures = [t for t in rec.get("failures", []) if t > now - self.config.window]
        if opened is None:
            state, retry_at = CLOSED, None
        elif now < opened + self.config.cooldown:
            state, retry_at = OPEN, opened + self.config.cooldown
        else:
            state, retry_at = HALF_OPEN, None
        trial = rec.get("trial_at")
        trial = trial if state == HALF_OPEN and trial is not None and now < trial + self.config.cooldown else None
        return {"kind": rec.get("kind"), "state": state, "failures": len(failures), "opened_at": opened,
                "retry_at": retry_at, "trial_at": trial}

    def all(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        """Kind -> state, for every kind of this app that has a record."""
        now = time.time() if now is None else now
        prefix = f"{self.app}/"
        return {k[len(prefix):]: self._view(v, now) for k, v in self._read().items() if k.startswith(prefix)}

    def allow(self, kind: str, now: float | None = None) -> tuple[bool, str]:
        """Whether a step of ``kind`` may start now, and if not, why (fail-fast message)."""
        now = time.time() if now is None else now
        s = self.state(kind, now)
        if s["state"] == HALF_OPEN:  # claim the one trial, under the lock
            with self._locked() as doc:
                rec = doc.get(self._key(kind)) or {}
                s = self._view(rec, now)
                if s["state"] == HALF_OPEN and s["trial_at"] is None:
                    rec["trial_at"] = now
                    return True, ""
            if s["state"] == HALF_OPEN:
                return False, (f"circuit breaker for step kind '{kind}' is half-open: one trial step "
                               f"runs since {time.strftime('%H:%M:%S', time.localtime(s['trial_at']))}; "
                               "failing fast until it succeeds")
        if s["state"] == OPEN:
            left = s["retry_at"] - now
            return False, (f"circuit breaker for step kind '{kind}' is open after "
                           f"{self.config.threshold} consecutive failures: failing fast for "
                           f"{left:.0f} s more (cool-down {self.config.cooldown:g} s)")
        return True, ""

    def record(self, kind: str, ok: bool, now: float | None = None) -> str:
        """Record one attempt's outcome; return the breaker's state after it."""
        now = time.time() if now is None else now
        with self._locked() as doc:
            rec = doc.setdefault(self._key(kind), {"kind": kind, "failures": [], "opened_at": None})
            rec.pop("trial_at", None)
            if ok:
                rec["failures"], rec["opened_at"] = [], None
            else:
                half_open = rec.get("opened_at") is not None
                rec["failures"] = [t for t in rec.get("failures", []) if t > now - self.config.window]
                rec["failures"].append(now)
                if half_open or len(rec["failures"]) >= self.config.threshold:
                    rec["opened_at"] = now
            return self._view(rec, now)["state"]

    def reset(self, kind: str) -> None:
        """Close the breaker of ``kind`` by hand."""
        with self._locked() as doc:
            doc.pop(self._key(kind), None)
