"""Background jobs of the workbench: a saved snippet run in a subprocess, or a call in a thread.

The Streamlit script thread never waits for an install or a run: it starts a
job and returns. A job's record (``<workspace>/jobs/<app>/<kind>.json``) and
its log (``<kind>.log`` next to it) are files, so a reloaded page or a second
tab finds a job started earlier and tails the same log. A job whose process or
thread vanished without writing its outcome is reported as failed, never as
running forever.

Subprocess jobs run ``python -m switchyard.ui_jobs RECORD SNIPPET``: the
snippet file is executed as is (``runpy``), and an operator error
(:class:`SwitchyardError`) is recorded as its one-line message and category,
while any other exception (the app's own code) prints its traceback to the log.
"""

from __future__ import annotations

import fcntl
import json
import os
import runpy
import subprocess
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError
from switchyard.logs import LineSink
from switchyard.workspace import atomic_write_json

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
#: A subprocess that has not reported its pid after this long is taken as dead.
START_GRACE = 30.0

_procs: dict[str, subprocess.Popen] = {}
_threads: dict[str, threading.Thread] = {}
_lock = threading.Lock()


class JobRunning(SwitchyardError):
    """A job of this kind is already running for the app (the message says to wait)."""

    category = "busy"


@dataclass
class JobState:
    """The record of one background job (the latest of its kind for an app)."""

    kind: str
    app: str
    status: str
    log: str
    started_at: float
    runner: str = "process"  # "process" or "thread"
    pid: int | None = None  # the subprocess, or the workbench process running the thread
    ended_at: float | None = None
    error: str | None = None
    category: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def is_running(self) -> bool:
        return self.status == RUNNING

    @property
    def seconds(self) -> float:
        return (self.ended_at or time.time()) - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "JobState":
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def job_dir(app_env: AppEnv) -> Path:
    return app_env.home / "jobs" / app_env.app


def record_path(app_env: AppEnv, kind: str) -> Path:
    return job_dir(app_env) / f"{kind}.json"


def log_path(app_env: AppEnv, kind: str) -> Path:
    return job_dir(app_env) / f"{kind}.log"


def _read(path: Path) -> JobState | None:
    try:
        return JobState.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _write(path: Path, state: JobState) -> None:
    atomic_write_json(path, state.to_dict())


@contextmanager
def _start_lock(path: Path) -> Iterator[None]:
    # Two tabs clicking the same button at once must start one job, not two.
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock, open(path.with_suffix(".lock"), "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _refuse_if_running(app_env: AppEnv, kind: str) -> None:
    state = job_state(app_env, kind)
    if state is not None and state.is_running:
        raise JobRunning(f"{kind} of app '{app_env.app}' is already running (started "
                         f"{state.seconds:.0f} s ago): wait for it to finish")


def start_snippet(app_env: AppEnv, kind: str, snippet: Path | str, python: str | None = None) -> JobState:
    """Run a saved snippet file in a subprocess; its output (stdout and stderr) goes to the job log.

    Raises:
        JobRunning: a job of this kind is already running for the app.
    """
    path = record_path(app_env, kind)
    with _start_lock(path):
        _refuse_if_running(app_env, kind)
        log = log_path(app_env, kind)
        state = JobState(kind=kind, app=app_env.app, status=RUNNING, log=str(log), started_at=time.time())
        _write(path, state)  # before the process starts: the runner only ever updates it
        env = dict(os.environ, PYTHONUNBUFFERED="1", SWITCHYARD_HOME=str(app_env.home))
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [python or sys.executable, "-m", "switchyard.ui_jobs", str(path), str(snippet)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=str(Path(snippet).parent), start_new_session=True,
            )
        _procs[str(path)] = proc
    return state


def start_call(app_env: AppEnv, kind: str, fn: Callable[[Callable[[str], None]], Any],
               summarize: Callable[[Any], dict] | None = None) -> JobState:
    """Run ``fn(on_line)`` in a daemon thread of this process; each line goes to the job log.

    Args:
        app_env: The app the job belongs to.
        kind: The job's kind (one record per app and kind).
        fn: The call; it receives a line callback.
        summarize: Turns the call's return value into the record's ``result`` dict.

    Raises:
        JobRunning: a job of this kind is already running for the app.
    """
    path = record_path(app_env, kind)
    with _start_lock(path):
        _refuse_if_running(app_env, kind)
        log = log_path(app_env, kind)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_bytes(b"")
        state = JobState(kind=kind, app=app_env.app, status=RUNNING, log=str(log), started_at=time.time(),
                         runner="thread", pid=os.getpid())
        _write(path, state)
        thread = threading.Thread(target=_run_call, args=(path, state, fn, summarize),
                                  name=f"job-{app_env.app}-{kind}", daemon=True)
        _threads[str(path)] = thread
        thread.start()
    return state


def _run_call(path: Path, state: JobState, fn: Callable, summarize: Callable | None) -> None:
    with LineSink(state.log) as sink:
        try:
            value = fn(sink)
            result = summarize(value) if summarize else {}
            _finish(path, state, SUCCEEDED, result=result)
        except SwitchyardError as e:
            sink(f"error: {e}")
            _finish(path, state, FAILED, error=str(e), category=e.category)
        except BaseException as e:  # the app's own code: its traceback belongs in the log
            for line in traceback.format_exc().splitlines():
                sink(line)
            _finish(path, state, FAILED, error=f"{type(e).__name__}: {e}", category="app")


def _finish(path: Path, state: JobState, status: str, error: str | None = None,
            category: str | None = None, result: dict | None = None) -> None:
    state.status = status
    state.ended_at = time.time()
    state.error = error
    state.category = category
    state.result = result or {}
    _write(path, state)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: it only waits for its parent to reap it
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _vanished(path: Path, state: JobState) -> str | None:
    """Why a job recorded as running is not running any more, or None when it still runs."""
    key = str(path)
    if state.runner == "thread":
        if state.pid == os.getpid():
            thread = _threads.get(key)
            return None if thread is not None and thread.is_alive() else "its thread stopped"
        if state.pid is not None and _pid_alive(state.pid):
            return None  # another workbench process runs it
        return "the workbench process that ran it stopped"
    proc = _procs.get(key)
    if proc is not None:
        code = proc.poll()
        return None if code is None else f"its process exited with code {code}"
    if state.pid is None:
        return None if time.time() - state.started_at < START_GRACE else "its process never started"
    return None if _pid_alive(state.pid) else f"its process {state.pid} is gone"


def job_state(app_env: AppEnv, kind: str) -> JobState | None:
    """The latest job of ``kind`` for the app, or None; a vanished job is recorded as failed."""
    path = record_path(app_env, kind)
    state = _read(path)
    if state is None or not state.is_running:
        return state
    why = _vanished(path, state)
    if why is None:
        return state
    again = _read(path)  # it may have written its outcome just before it exited
    if again is not None and not again.is_running:
        return again
    _finish(path, state, FAILED, category="app",
            error=f"{kind} of app '{app_env.app}' stopped without a result ({why}): see {state.log}")
    return state


def read_log(state: JobState | None, n: int = 400) -> list[str]:
    """The last ``n`` lines of a job's log."""
    from switchyard.logs import tail

    return tail(state.log, n) if state is not None else []


# -- the subprocess side -------------------------------------------------------------------

def _summary(ns: dict[str, Any]) -> dict[str, Any]:
    for name in ("result", "plan"):
        if name in ns:
            value = ns[name]
            return {"summary": str(value)[:2000]}
    return {}


def main(argv: list[str] | None = None) -> int:
    """``python -m switchyard.ui_jobs RECORD SNIPPET``: execute the snippet, record the outcome."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m switchyard.ui_jobs RECORD SNIPPET", file=sys.stderr)
        return 2
    path, snippet = Path(argv[0]), Path(argv[1])
    state = _read(path)
    if state is None:
        print(f"error: job record {path} is missing or unreadable", flush=True)
        return 2
    state.pid = os.getpid()
    _write(path, state)
    print(f"$ python {snippet}", flush=True)
    try:
        ns = runpy.run_path(str(snippet), run_name="__main__")
    except SwitchyardError as e:
        print(f"error: {e}", flush=True)
        _finish(path, state, FAILED, error=str(e), category=e.category)
        return 1
    except BaseException as e:
        traceback.print_exc()
        sys.stderr.flush()
        _finish(path, state, FAILED, error=f"{type(e).__name__}: {e}", category="app")
        return 1
    sys.stdout.flush()
    _finish(path, state, SUCCEEDED, result=_summary(ns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
