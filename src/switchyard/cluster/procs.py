"""Detached processes on a host, this machine or one reached over SSH: start, look up, stop, read logs.

A warm cluster's scheduler and workers outlive the command that started them, so a
small launcher starts each in its own session with its output in a log file and
reports its pid. A pid alone may be reused after the process ended: every process's
command line carries the cluster's id (``marker``), and lookups and stops only
touch processes whose command line still holds it.

The same scripts run here (:class:`LocalShell`) and on remote hosts
(:class:`~switchyard.cluster.ssh.Remote`), always as argument lists.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from switchyard.cluster.ssh import Completed, Line
from switchyard.exceptions import ClusterError

_MARK = "SWITCHYARD-JSON "

_LAUNCH = r"""
import importlib.util, json, os, subprocess, sys
pids = []
for p in json.loads(sys.argv[1]):
    os.makedirs(p["cwd"], exist_ok=True)
    os.makedirs(os.path.dirname(p["log"]), exist_ok=True)
    env = dict(os.environ)
    for name in p["unset"]:
        env.pop(name, None)
    env.update(p["env"])
    if p["path_first"]:
        env["PATH"] = p["path_first"] + os.pathsep + env.get("PATH", "")
    argv = list(p["argv"])
    for module, (present, absent) in p["if_module"].items():
        argv += present if importlib.util.find_spec(module) else absent
    with open(p["log"], "ab") as log:
        pids.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     env=env, cwd=p["cwd"], start_new_session=True).pid)
print("SWITCHYARD-JSON " + json.dumps(pids), flush=True)
"""

# pid -> "ours" (alive, command line holds the marker), "other" (pid reused) or "gone".
# With stop: SIGTERM to each of ours, wait, then SIGKILL to their process groups.
_STATE = r"""
import json, os, signal, subprocess, sys, time
spec = json.loads(sys.argv[1])
marker = spec["marker"].encode()

PROC = os.path.isdir("/proc/self")

def state(pid):
    if PROC:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return "gone"
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return "ours" if marker in f.read() else "other"
        except OSError:
            return "gone"
    out = subprocess.run(["ps", "-o", "stat=,command=", "-p", str(pid)], capture_output=True).stdout.strip()
    if not out or out.startswith(b"Z"):
        return "gone"
    return "ours" if marker in out else "other"

def group_left(pgid):
    if not PROC:
        return []
    left = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                left.append(int(entry))
    return left

states = {pid: state(pid) for pid in spec["pids"]}
if spec["stop"]:
    ours = [pid for pid, s in states.items() if s == "ours"]
    for pid in ours:
        try:
            os.kill(pid, signal.SIGTERM)  # the leader only: a nanny stops its own worker
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + spec["timeout"]
    while time.monotonic() < deadline and any(state(p) == "ours" for p in ours):
        time.sleep(0.1)
    for pid in ours:
        forced = state(pid) == "ours" or bool(group_left(pid))
        try:
            os.killpg(pid, signal.SIGKILL)  # whatever is left of its session, children included
        except (ProcessLookupError, PermissionError):
            pass
        states[pid] = "killed" if forced else "stopped"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(state(p) == "ours" or group_left(p) for p in ours):
        time.sleep(0.05)
    for pid in ours:
        if state(pid) == "ours" or group_left(pid):
            states[pid] = "left"
print("SWITCHYARD-JSON " + json.dumps({str(k): v for k, v in states.items()}), flush=True)
"""

_TAIL = r"""
import collections, sys
try:
    with open(sys.argv[1], errors="replace") as f:
        lines = collections.deque(f, maxlen=int(sys.argv[2]))
except OSError as e:
    lines = [f"(no log: {e})"]
for line in lines:
    print(line.rstrip())
"""

_WAIT_FILE = r"""
import os, sys, time
path, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + timeout
while time.monotonic() < deadline:
    try:
        with open(path) as f:
            text = f.read()
        if text.strip().endswith("}"):
            print("SWITCHYARD-JSON " + " ".join(text.split()), flush=True)
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(3)
"""


class Shell(Protocol):
    """Runs an argument list on a host and returns its exit code and last lines."""

    host: str

    async def run(self, argv: Sequence[object], *, on_line: Line | None = None, prefix: str = "",
                  timeout: float | None = None, keep: int = 200) -> Completed: ...


class LocalShell:
    """A :class:`Shell` on this machine (a subprocess, no shell in between)."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host

    async def run(self, argv: Sequence[object], *, on_line: Line | None = None, prefix: str = "",
                  timeout: float | None = None, keep: int = 200) -> Completed:
        proc = await asyncio.create_subprocess_exec(
            *[str(a) for a in argv], stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        lines: deque[str] = deque(maxlen=keep)

        async def pump() -> int:
            assert proc.stdout is not None
            async for raw in proc.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                lines.append(line)
                if on_line is not None:
                    on_line(prefix + line)
            return await proc.wait()

        try:
            code = await asyncio.wait_for(pump(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            proc.kill()
            raise ClusterError(f"'{argv[0]}' did not finish within {timeout:g} s on this machine") from None
        return Completed(code, list(lines))


@dataclass
class ProcSpec:
    """One process to start detached: its command, environment, folder and log file."""

    argv: list[str]
    log: str
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    unset: list[str] = field(default_factory=list)
    path_first: str = ""  # a folder put first on PATH
    # module -> (args when it is importable by the python, args when it is not)
    if_module: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)


def _json_of(done: Completed):
    found = [s.split(_MARK, 1)[1] for s in done.lines if _MARK in s]
    return json.loads(found[-1]) if done.code == 0 and found else None


async def launch(shell: Shell, python: str, procs: list[ProcSpec]) -> list[int]:
    """Start ``procs`` detached on the shell's host with ``python`` running the launcher; their pids."""
    spec = json.dumps([p.__dict__ for p in procs])
    done = await shell.run([python, "-c", _LAUNCH, spec], timeout=60)
    pids = _json_of(done)
    if pids is None:
        raise ClusterError(f"host '{shell.host}': starting {procs[0].argv[2:4]} failed: "
                           f"{' | '.join(done.lines[-3:]) or f'exit {done.code}'}: check the python {python}")
    return pids


async def states(shell: Shell, python: str, pids: list[int], marker: str, *, stop: bool = False,
                 timeout: float = 10) -> dict[int, str]:
    """pid -> ``ours`` / ``other`` / ``gone`` (and ``stopped`` / ``killed`` when ``stop``)."""
    if not pids:
        return {}
    spec = json.dumps({"pids": pids, "marker": marker, "stop": stop, "timeout": timeout})
    done = await shell.run([python, "-c", _STATE, spec], timeout=timeout + 60)
    found = _json_of(done)
    if found is None:
        raise ClusterError(f"host '{shell.host}': cannot look up processes {pids}: "
                           f"{' | '.join(done.lines[-3:]) or f'exit {done.code}'}")
    return {int(k): v for k, v in found.items()}


async def tail(shell: Shell, python: str, path: str, n: int = 20) -> list[str]:
    """The last ``n`` lines of a log file on the shell's host."""
    done = await shell.run([python, "-c", _TAIL, path, str(n)], timeout=30)
    return done.lines


async def wait_for_file(shell: Shell, python: str, path: str, timeout: float):
    """The JSON document written to ``path`` on the host, once it is complete (None on timeout)."""
    done = await shell.run([python, "-c", _WAIT_FILE, path, str(timeout)], timeout=timeout + 30)
    return _json_of(done)


def local_python() -> str:
    """A python for the helper scripts on this machine."""
    return sys.executable
