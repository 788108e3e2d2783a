"""The run agent: a resident, pre-imported fork server for drivers, so a driver starts in
milliseconds instead of paying interpreter start and the Dask imports (~1 s) per run.

There is one agent per workspace, app environment and cython flag. It is started
detached with the environment's python on first use (:func:`start_driver`; that run,
and any while the agent imports, gets a driver process as before), imports
the engine (never an app module: an app edited between two runs runs as edited),
listens on a Unix socket in a private folder (``/tmp/switchyard-<uid>/``, mode 0700)
and, for each run, forks a driver: a new session with the environment the old
engine gave its process, output appended to ``runs/<id>/driver.out``. A forked driver
is a process of its own: a crash in app code fails its run only, kill -9 of it is
swept as ``interrupted`` like any driver. The server is :mod:`switchyard.runs.agent_server`.

``SWITCHYARD_AGENT`` selects the engine: ``fork`` (default), ``off`` (a new process per
driver, as before) and ``thread``, kept only for the benchmark comparison: the agent
runs each driver in a thread of its own process and keeps one Dask client per
scheduler connected across runs. ``thread`` has no crash isolation (app code that
exits or segfaults takes every run of the agent with it), shares one process
environment and output between runs, and keeps an app's module imported across runs
(an edit needs ``switchyard agent stop``).

An agent whose code fingerprint (version + mtimes and sizes of switchyard's files),
environment stamp, start environment or engine differs from the caller's is stopped
and replaced; one killed with -9 leaves a socket nobody answers, which the next
caller cleans up. Records and logs: ``<home>/agents/<key>.json`` and ``<key>.log``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import switchyard
from switchyard.exceptions import SwitchyardError
from switchyard.workspace import atomic_write_json

MODE_ENV = "SWITCHYARD_AGENT"
IDLE_ENV = "SWITCHYARD_AGENT_IDLE"
MODES = ("fork", "thread", "off")
DEFAULT_IDLE = 900.0
PROTOCOL = 1
START_TIMEOUT = 5.0  # seconds ensure() waits by default for a cold agent
# A run never waits for a cold agent: its imports (1-5 s here) cost more than a driver
# process's own start, so that run gets a process and the agent serves the next ones.
COLD_WAIT = 0.0
REQUEST_TIMEOUT = 5.0
DRIVER_MODULE = "switchyard.runs.driver"


class AgentUnavailable(SwitchyardError):
    """The agent could not be reached or started: the caller starts a driver process instead."""


def agent_mode(environ: dict[str, str] | None = None) -> str:
    """``$SWITCHYARD_AGENT``: ``fork`` (default), ``thread`` or ``off``."""
    value = (os.environ if environ is None else environ).get(MODE_ENV, "").strip().lower() or "fork"
    if value not in MODES:
        raise SwitchyardError(f"${MODE_ENV} is {value!r}: set it to fork (the default), thread "
                              "(benchmark only) or off (a new process per driver)")
    return value


def agent_key(app: str, cython: bool) -> str:
    return f"{app}.cython" if cython else app


def agents_dir(home: Path | str) -> Path:
    return Path(home) / "agents"


def socket_dir() -> Path:
    """This user's private folder of agent sockets (mode 0700). Short on purpose: a Unix
    socket path is limited to ~107 bytes and workspaces can be deep."""
    folder = Path("/tmp") / f"switchyard-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    st = folder.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise AgentUnavailable(f"{folder} is not a private folder of this user (mode 0700): "
                               "remove it; until then drivers start as new processes")
    return folder


def code_fingerprint() -> str:
    """Switchyard's version and a digest of the mtimes and sizes of its .py files (~1 ms)."""
    root = Path(switchyard.__file__).parent
    digest = hashlib.sha1()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(folder, name))
                digest.update(f"{folder}/{name}:{st.st_mtime_ns}:{st.st_size}\n".encode())
    return f"{switchyard.__version__}+{digest.hexdigest()[:16]}"


def env_stamp(home: Path | str, app: str) -> int | None:
    """The mtime (ns) of the app environment's stamp file: it changes with every install."""
    try:
        return os.stat(Path(home) / "envs" / app / ".stamp.json").st_mtime_ns
    except OSError:
        return None


def start_digest(environ: dict[str, str]) -> str:
    """What of the environment only counts at interpreter start (``PYTHON*``: sys.path, hash seed)."""
    items = sorted((k, v) for k, v in environ.items() if k.startswith("PYTHON"))
    return hashlib.sha1(json.dumps(items).encode()).hexdigest()[:16]


def identity(home: Path | str, app: str, mode: str, environ: dict[str, str]) -> dict[str, Any]:
    """What must match between an agent and its caller for the agent to serve it."""
    return {"protocol": PROTOCOL, "fingerprint": code_fingerprint(), "env_stamp": env_stamp(home, app),
            "start": start_digest(environ), "mode": mode}


def request(path: Path | str, message: dict, timeout: float = REQUEST_TIMEOUT) -> dict:
    """Send one JSON request to the agent at ``path``; return its JSON reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(message).encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    reply = json.loads(b"".join(chunks) or b"{}")
    return reply if isinstance(reply, dict) else {}


def pid_alive(pid: int | None, started: float | None = None) -> bool:
    """Whether ``pid`` runs (a zombie does not), and is the process that started at ``started``."""
    import psutil

    try:
        proc = psutil.Process(int(pid or 0))
        if started is not None and abs(proc.create_time() - started) > 0.05:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, ValueError):
        return False


def process_started(pid: int) -> float | None:
    """The start time of process ``pid`` (psutil's create_time), None when it is gone."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


@dataclass
class Target:
    """The agent of one (workspace, app environment, cython flag): where to find it."""

    home: Path
    app: str
    cython: bool
    key: str = field(init=False)

    def __post_init__(self) -> None:
        self.home = Path(self.home)
        self.key = agent_key(self.app, self.cython)

    @property
    def record(self) -> Path:
        return agents_dir(self.home) / f"{self.key}.json"

    @property
    def log(self) -> Path:
        return agents_dir(self.home) / f"{self.key}.log"

    @property
    def socket(self) -> Path:
        digest = hashlib.sha256(f"{self.home.resolve()}\0{self.key}".encode()).hexdigest()[:20]
        return socket_dir() / f"{digest}.sock"

    def read_record(self) -> dict:
        try:
            doc = json.loads(self.record.read_text())
            return doc if isinstance(doc, dict) else {}
        except (OSError, ValueError):
            return {}

    def hello(self, timeout: float = 1.0) -> dict | None:
        """The agent's hello reply, or None when nobody answers."""
        try:
            return request(self.socket, {"op": "hello"}, timeout=timeout)
        except (OSError, ValueError):
            return None

    def pid(self) -> int | None:
        """The pid of the recorded agent if that process still runs (a recycled pid does not count)."""
        record = self.read_record()
        return int(record["pid"]) if pid_alive(record.get("pid"), record.get("created")) else None

    def clean(self) -> None:
        """Forget a dead agent: its socket and its record (unless a live agent wrote it)."""
        if self.pid() is None:
            self.record.unlink(missing_ok=True)
            try:
                self.socket.unlink(missing_ok=True)
            except AgentUnavailable:
                pass

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the agent to exit (its drivers keep running); True when none runs any more."""
        pid = self.pid()
        try:
            request(self.socket, {"op": "stop"}, timeout=2.0)
        except (OSError, ValueError):
            if pid is not None:  # not answering (still starting, or hung): terminate it
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass
        deadline = time.monotonic() + timeout
        while pid is not None and pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        gone = pid is None or not pid_alive(pid)
        if gone:
            self.clean()
        return gone

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.record.parent.mkdir(parents=True, exist_ok=True)
        with open(self.record.with_suffix(".lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def ensure(self, python: Path, environ: dict[str, str], want: dict, wait: float = START_TIMEOUT) -> bool:
        """Make sure an agent with identity ``want`` runs, starting one if needed (one caller at
        a time: the others wait on the lock, then find it). Returns whether it answers within
        ``wait`` seconds; raises :class:`AgentUnavailable` when it exits while starting."""
        with self._locked():
            hello = self.hello()
            if hello is not None and all(hello.get(k) == v for k, v in want.items()):
                return True
            if hello is not None:
                self.stop()
            pid = self.pid()
            if pid is None or self.read_record().get("state") != "starting":
                self.clean()
                pid = self._launch(python, environ, want["mode"])
            # else: launched by another caller, still importing
        deadline = time.monotonic() + wait
        while True:
            if self.hello(timeout=0.5) is not None:
                return True
            if not pid_alive(pid):
                raise AgentUnavailable(f"the run agent exited while starting: see {self.log}")
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _launch(self, python: Path, environ: dict[str, str], mode: str) -> int:
        folder = agents_dir(self.home)
        folder.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(
                [str(python), "-m", "switchyard.runs.agent", "--home", str(self.home), "--app", self.app,
                 *(["--cython"] if self.cython else []), "--mode", mode],
                env=environ, cwd=folder, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        atomic_write_json(self.record, {"key": self.key, "state": "starting", "pid": proc.pid,
                                        "created": process_started(proc.pid), "started_at": time.time()})
        return proc.pid


@dataclass
class DriverHandle:
    """A driver started by the agent: ``pid`` and :meth:`poll`, like a ``subprocess.Popen``.

    The caller is not the driver's parent, so :meth:`poll` looks at the process (a zombie
    counts as exited) and takes the exit code from the agent's log (-1 when not found).
    In ``thread`` mode it asks the agent whether the run's thread is still alive.
    """

    pid: int
    oid: str
    target: Target
    started: float | None = None
    thread: bool = False
    returncode: int | None = None

    def poll(self) -> int | None:
        """None while the driver runs, else its exit code."""
        if self.returncode is not None:
            return self.returncode
        if self.thread:
            try:
                reply = request(self.target.socket, {"op": "poll", "oid": self.oid}, timeout=2.0)
            except (OSError, ValueError):
                reply = {"alive": False, "code": -1}  # the agent is gone, and its threads with it
            if reply.get("alive"):
                return None
            self.returncode = int(reply.get("code", -1))
            return self.returncode
        if pid_alive(self.pid, self.started):
            return None
        self.returncode = self._exit_code()
        return self.returncode

    def _exit_code(self) -> int:
        pattern = re.compile(rf"driver pid {self.pid} \(orchestration {re.escape(self.oid)}\) exited "
                             r"with code (-?\d+)")
        deadline = time.monotonic() + 0.5  # the agent reaps its children every 0.25 s
        while True:
            try:
                with open(self.target.log, "rb") as f:
                    f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
                    found = pattern.findall(f.read().decode("utf-8", "replace"))
            except OSError:
                found = []
            if found or time.monotonic() > deadline:
                return int(found[-1]) if found else -1
            time.sleep(0.05)


def start_driver(app_env, oid: str, cython: bool, owner: str | None = None,
                 module: str = DRIVER_MODULE) -> DriverHandle | None:
    """Have the app environment's agent fork the driver of ``oid``.

    When no agent of the current code and environment answers, one is started in the
    background and this call does not wait for it. Returns the driver's handle, or None
    when the agent is off, starting or could not be used (the reason goes to
    ``runs/<id>/driver.out``): the caller then starts a driver process.
    Raises :class:`SwitchyardError` only when ``$SWITCHYARD_AGENT`` is not a known value.
    """
    mode = agent_mode()
    if mode == "off":
        return None
    from switchyard.cluster.env import env_python
    from switchyard.runs.launcher import driver_environ

    python = env_python(app_env)
    if not python.exists():
        return None  # no environment: the process start says so
    run_dir = Path(app_env.home) / "runs" / oid
    target = Target(app_env.home, app_env.app, cython)
    try:
        environ = driver_environ(app_env, cython, owner)
        want = identity(app_env.home, app_env.app, mode, environ)
        message = {"op": "start", "oid": oid, "module": module, "run_dir": str(run_dir), "env": environ,
                   "owner": owner, "expect": want}
        reply = _send_start(target, message)
        if reply is None or reply.get("error") == "stale":  # none, a dead one, an older one
            if not target.ensure(python, driver_environ(app_env, cython), want, wait=COLD_WAIT):
                raise AgentUnavailable("the run agent is starting (it imports the engine once)")
            reply = _send_start(target, message)
        if not reply or "pid" not in reply:
            raise AgentUnavailable(f"the run agent refused: {(reply or {}).get('error') or reply}")
        return DriverHandle(pid=int(reply["pid"]), oid=oid, target=target, started=reply.get("started"),
                            thread=bool(reply.get("thread")))
    except (OSError, ValueError, SwitchyardError) as e:
        _note(run_dir, f"run agent not used ({type(e).__name__}: {e}): "
                       "starting the driver as a new process")
        return None


def warm_up(app_env, cython: bool = False, wait: float = START_TIMEOUT) -> bool:
    """Start the app environment's agent unless one of the current code and environment
    runs; wait up to ``wait`` seconds for it. Returns whether it answers."""
    mode = agent_mode()
    if mode == "off":
        return False
    from switchyard.cluster.env import env_python
    from switchyard.runs.launcher import driver_environ

    environ = driver_environ(app_env, cython)
    return Target(app_env.home, app_env.app, cython).ensure(
        env_python(app_env), environ, identity(app_env.home, app_env.app, mode, environ), wait=wait)


def _send_start(target: Target, message: dict) -> dict | None:
    """The agent's reply to a start request; None when no agent listens."""
    # The agent refuses a request it reads after the deadline, so a caller that timed out
    # and started a process instead never has a second driver next to it.
    message["deadline"] = time.time() + REQUEST_TIMEOUT / 2
    try:
        return request(target.socket, message)
    except (FileNotFoundError, ConnectionRefusedError):
        return None


def _note(run_dir: Path, line: str) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "driver.out", "a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
    except OSError:
        pass


# -- operator lifecycle -------------------------------------------------------------------------

def targets(home: Path | str, app: str | None = None) -> list[Target]:
    """The agents recorded in the workspace (of ``app`` only, when given)."""
    found = []
    for path in sorted(agents_dir(home).glob("*.json")):
        cython = path.stem.endswith(".cython")
        name = path.stem.removesuffix(".cython")
        if app is None or name == app:
            found.append(Target(Path(home), name, cython))
    return found


def status(home: Path | str, app: str | None = None) -> list[dict[str, Any]]:
    """One row per recorded agent: key, app, cython, state (running / starting / not running),
    pid, version, started_at, up and idle seconds, children, socket. Records of dead agents are
    removed (shown once as not running)."""
    rows = []
    for t in targets(home, app):
        record, hello = t.read_record(), t.hello()
        row = {"key": t.key, "app": t.app, "cython": t.cython, "pid": record.get("pid"),
               "version": record.get("fingerprint") or record.get("version"),
               "started_at": record.get("started_at"), "up_seconds": None, "idle_seconds": None,
               "children": None, "mode": record.get("mode"), "log": str(t.log)}
        if hello is not None:
            row.update(state="running", pid=hello.get("pid"), version=hello.get("fingerprint"),
                       idle_seconds=hello.get("idle_seconds"), children=hello.get("children"),
                       mode=hello.get("mode"), started_at=hello.get("started_at"))
        elif record.get("state") == "starting" and t.pid() is not None:
            row["state"] = "starting"
        else:
            row["state"] = "not running"
            t.clean()
        if row["started_at"] and row["state"] != "not running":
            row["up_seconds"] = round(time.time() - float(row["started_at"]), 1)
        rows.append(row)
    return rows


def describe(row: dict) -> str:
    """One line for a row of :func:`status` (the CLI and the Cluster section show it)."""
    if row["state"] != "running":
        return f"{row['key']}: {row['state']}"
    since = "?"
    if row["started_at"]:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["started_at"]))
    return (f"{row['key']}: running, pid {row['pid']}, {row['mode']} mode, version {row['version']}, "
            f"up since {since}, idle {row['idle_seconds']} s, {row['children']} driver(s) running")


def stop(home: Path | str, app: str | None = None) -> dict[str, list[str]]:
    """Stop the workspace's agents (of ``app`` only, when given); their running drivers go on.
    Returns ``{"stopped": [keys], "left": [keys still running]}``."""
    out: dict[str, list[str]] = {"stopped": [], "left": []}
    for t in targets(home, app):
        running = t.hello() is not None or t.pid() is not None
        if t.stop():
            if running:
                out["stopped"].append(t.key)
        else:
            out["left"].append(t.key)
    return out


if __name__ == "__main__":
    from switchyard.runs.agent_server import main

    sys.exit(main())
