"""What runs on the host of a cluster's processes: the one launcher and the one reaper.

``spawn`` starts processes in their own session (so they outlive the caller and a
stop reaches their children); ``stop`` stops recorded processes: SIGTERM to each
leader (a nanny stops its own worker), then SIGKILL to whatever is left of its
family. A pid may be reused once its process ended, so a process is known by its
pid *and* its create time; a record without a create time (older warm clusters)
falls back to a marker in the command line.

This module imports the standard library and psutil only (every python that runs
distributed has psutil): the same code runs here in-process and on a remote host as
``python -c <this file> OP JSON`` (see :mod:`switchyard.cluster.hosts`).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time

MARK = "SWITCHYARD-JSON "
SAME_START = 0.01  # seconds: create times further apart belong to another process


def popen(spec: dict, capture: bool = False) -> subprocess.Popen:
    """Start ``spec`` (argv, cwd, log, env, unset, inherit, path_first) in its own session.

    Its output goes to the ``log`` file, or to a pipe the caller reads when ``capture``.
    """
    os.makedirs(spec["cwd"], exist_ok=True)
    env = dict(os.environ) if spec.get("inherit", True) else {}
    for name in spec.get("unset") or ():
        env.pop(name, None)
    env.update(spec.get("env") or {})
    first = spec.get("path_first")
    if first and not env.get("PATH", "").startswith(first + os.pathsep):
        env["PATH"] = first + os.pathsep + env.get("PATH", "")
    if capture:
        out = subprocess.PIPE
    else:
        os.makedirs(os.path.dirname(spec["log"]) or ".", exist_ok=True)
        out = open(spec["log"], "ab")
    try:
        return subprocess.Popen(spec["argv"], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=spec["cwd"], start_new_session=True)
    finally:
        if not capture:
            out.close()


def create_time(pid: int) -> float | None:
    """When process ``pid`` started (psutil's create time), None when it is gone."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def spawn(specs: list) -> list:
    """Start each spec detached with its output in its log file; ``[{"pid", "started"}]``."""
    started = []
    for spec in specs:
        pid = popen(spec).pid
        started.append({"pid": pid, "started": create_time(pid)})
    return started


def _process(proc: dict):
    """The psutil.Process of a recorded process when it is still that process, else a state."""
    import psutil

    try:
        p = psutil.Process(int(proc["pid"]))
        if p.status() == psutil.STATUS_ZOMBIE:
            _reap_zombie(p.pid)
            return "gone"
        if proc.get("started") is not None:
            same = abs(p.create_time() - float(proc["started"])) <= SAME_START
        else:
            marker = proc.get("marker")
            same = bool(marker) and marker in " ".join(p.cmdline())
        return p if same else "other"
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.Error:  # not ours to look at
        return "other"


def _reap_zombie(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)  # a child of this process (a captured local cluster)
    except (ChildProcessError, OSError):
        pass


def _alive(p) -> bool:
    import psutil

    try:
        if not p.is_running():
            return False
        if p.status() == psutil.STATUS_ZOMBIE:
            _reap_zombie(p.pid)
            return False
        return True
    except psutil.Error:
        return False


def states(procs: list) -> dict:
    """pid -> ``ours`` (alive, the recorded process), ``other`` (pid reused) or ``gone``."""
    out = {}
    for proc in procs:
        found = _process(proc)
        out[str(proc["pid"])] = found if isinstance(found, str) else "ours"
    return out


def _children(p) -> list:
    import psutil

    try:
        return p.children(recursive=True)
    except psutil.Error:
        return []


def _session(p):
    """(pgid, create time) when ``p`` leads its own process group (started in its own session)."""
    import psutil

    try:
        return (p.pid, p.create_time()) if os.getpgid(p.pid) == p.pid else None
    except (psutil.Error, OSError):
        return None


def _group(session) -> list:
    """The live members of a process group, also once its leader is gone (none born before it)."""
    import psutil

    if session is None:
        return []
    pgid, born = session
    members = []
    for q in psutil.process_iter():
        try:
            if os.getpgid(q.pid) == pgid and q.create_time() >= born - SAME_START:
                members.append(q)
        except (psutil.Error, OSError):
            continue
    return members


def stop(procs: list, timeout: float = 10) -> dict:
    """Stop the recorded processes that are still ours, with their children.

    Args:
        procs: ``[{"pid", "started"}]`` (or ``"marker"`` instead of ``"started"``).
        timeout: Seconds a leader has to stop after SIGTERM; 0 kills at once (a dead
            driver's cluster).

    Returns:
        ``{"states": {pid: state}, "killed": [pids sent SIGKILL]}``; a state is stopped,
        killed (it, or one of its children, had to be killed), gone, other (pid reused)
        or left (still running after SIGKILL).
    """
    found = {str(proc["pid"]): _process(proc) for proc in procs}
    out = {pid: p for pid, p in found.items() if isinstance(p, str)}
    ours = {pid: p for pid, p in found.items() if not isinstance(p, str)}
    # Children now, while the leaders still know them; each leader's group, for what it starts later.
    family = {pid: _children(p) for pid, p in ours.items()}
    sessions = {pid: _session(p) for pid, p in ours.items()}
    if timeout > 0:
        for p in ours.values():
            try:
                p.send_signal(signal.SIGTERM)  # the leader only: a nanny stops its own worker
            except Exception:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_alive(p) for p in ours.values()):
            time.sleep(0.1)
    killed, victims = [], {}
    for pid, p in ours.items():
        left = {q.pid: q for q in [p, *family[pid], *_children(p), *_group(sessions[pid])] if _alive(q)}
        for q in left.values():
            try:
                q.send_signal(signal.SIGKILL)
                killed.append(q.pid)
            except Exception:
                pass
        victims[pid] = list(left.values())
        out[pid] = "killed" if left else "stopped"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(q) for group in victims.values() for q in group):
        time.sleep(0.05)
    for pid, group in victims.items():
        if any(_alive(q) for q in group):
            out[pid] = "left"
    return {"states": out, "killed": sorted(set(killed))}


def tail(path: str, n: int = 20) -> list:
    """The last ``n`` lines of a log file."""
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip() for line in collections.deque(f, maxlen=int(n))]
    except OSError as e:
        return [f"(no log: {e})"]


def wait_for_file(path: str, timeout: float, proc: dict | None = None) -> dict:
    """Wait for the JSON document at ``path`` to be complete; give up early when ``proc`` ended.

    Returns:
        ``{"doc": the document or None, "alive": whether proc still runs}``.
    """
    deadline = time.monotonic() + float(timeout)
    while True:
        try:
            with open(path) as f:
                text = f.read()
            if text.strip().endswith("}"):
                return {"doc": json.loads(text), "alive": True}
        except (OSError, ValueError):
            pass  # not written yet, or half-written
        alive = proc is None or not isinstance(_process(proc), str)
        if not alive or time.monotonic() > deadline:
            return {"doc": None, "alive": alive}
        time.sleep(0.05)


def has_module(python: str, module: str) -> bool:
    """Whether ``python`` can import ``module`` (e.g. bokeh, for the dashboard)."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        import importlib.util

        return importlib.util.find_spec(module) is not None
    probe = [python, "-c", f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"]
    try:
        return subprocess.run(probe, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


OPS = {"spawn": spawn, "states": states, "stop": stop, "tail": tail, "wait_for_file": wait_for_file,
       "has_module": has_module}


def main(argv: list) -> None:
    """``OP JSON``: run ``OPS[OP](**JSON)`` and print the result as one marked JSON line."""
    result = OPS[argv[0]](**json.loads(argv[1]))
    print(MARK + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
