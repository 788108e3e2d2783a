"""Find and stop the processes a test session left behind.

A test that is killed by its timeout, or whose teardown raises, can leave a detached scheduler,
its workers, a run agent or a Streamlit server running; a leaked scheduler on a default port then
breaks later tests (and the next session's). At the end of a session the processes that started
during it and point into its temporary folder (by command line, working folder or environment,
e.g. ``SWITCHYARD_HOME=<basetemp>/...``) are stopped and listed, so a leak is seen, not silent.

Only this session's processes match: each pytest session has its own basetemp, and a process
started before the session began is never touched.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

_PROC = Path("/proc")


def _boot_time() -> float:
    for line in (_PROC / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("/proc/stat has no btime line")


def _started_at(pid: int, boot: float, ticks: int) -> float:
    stat = (_PROC / str(pid) / "stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return boot + int(fields[19]) / ticks  # field 22 of stat: starttime, in clock ticks


def _ancestors(pid: int) -> set[int]:
    seen = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            stat = (_PROC / str(pid) / "stat").read_text()
        except OSError:
            break
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
    return seen


def _mentions(pid: int, root: bytes) -> bool:
    """Whether the process's command line, environment or working folder lies under ``root``."""
    base = _PROC / str(pid)
    texts = []
    for name in ("cmdline", "environ"):
        try:
            texts.append((base / name).read_bytes().replace(b"\0", b"\n") + b"\n")
        except OSError:
            continue
    try:
        texts.append(os.readlink(base / "cwd").encode() + b"\n")
    except OSError:
        pass
    return any(root + b"/" in text or root + b"\n" in text for text in texts)


def leftovers(root: Path, since: float) -> list[int]:
    """Pids of processes started at or after ``since`` that point into ``root``, never ours."""
    root_b = str(Path(root)).rstrip("/").encode()
    boot, ticks = _boot_time(), os.sysconf("SC_CLK_TCK")
    mine = _ancestors(os.getpid())
    found = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid in mine:
            continue
        try:
            if _started_at(pid, boot, ticks) < since - 1.0:
                continue
        except (OSError, ValueError, IndexError):
            continue
        if _mentions(pid, root_b):
            found.append(pid)
    return sorted(found)


def _cmdline(pid: int) -> str:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def reap(root: Path, since: float, grace: float = 3.0) -> list[str]:
    """SIGTERM the leftovers, SIGKILL what is still there after ``grace`` s; return what was found."""
    pids = leftovers(root, since)
    described = [f"{pid} {_cmdline(pid)[:160]}" for pid in pids]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _alive(p)]
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return described


def _alive(pid: int) -> bool:
    try:
        state = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2:].split()[0] != "Z"
