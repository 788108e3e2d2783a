"""Cluster processes: :class:`Process`, the one :class:`~switchyard.cluster.spec.Proc`.

A process runs on a :class:`~switchyard.cluster.hosts.Host`, started by the one
launcher (:func:`switchyard.cluster.hostops.spawn`) and stopped by the one reaper
(:func:`switchyard.cluster.hostops.stop`), here or over SSH. It is either detached,
with its output in a log file on its host (a warm cluster, which outlives the command
that started it), or captured: on this machine, each output line handed to a callback
as it is printed (a run's local cluster, whose lines go to the run log).

:func:`start_all` and :func:`close_all` act on many processes with one operation per
host (one SSH round trip each), hosts in parallel.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import deque
from typing import Callable

from switchyard.cluster import hostops
from switchyard.cluster.hosts import Hosts, in_thread
from switchyard.cluster.spec import Recorded
from switchyard.exceptions import ClusterError, HostError
from switchyard.logs import pump

Line = Callable[[str], None]


class Process:
    """One scheduler or worker process on a host.

    Args:
        name: ``scheduler`` or the worker's slot name.
        host: The host name (as in the spec).
        hosts: The connections of the current action.
        launch: What :func:`~switchyard.cluster.hostops.popen` starts (argv, cwd, log, env ...);
            None for a process adopted from a record.
        python: A python on the host for the operations there (remote hosts).
        on_line: Capture the output: each line, prefixed ``[<name>] ``, goes here (this machine only).
        marker: What the command line holds, for records without a create time.
    """

    def __init__(self, name: str, host: str, hosts: Hosts, launch: dict | None = None, *,
                 python: str | None = None, on_line: Line | None = None, marker: str | None = None):
        self.name = name
        self.host = host
        self.hosts = hosts
        self.launch = launch
        self.python = python
        self.on_line = on_line
        self.marker = marker
        self.recorded: Recorded | None = None
        self.popen: subprocess.Popen | None = None
        self.last: deque[str] = deque(maxlen=30)
        self._reader = None

    @classmethod
    def adopt(cls, recorded: Recorded, hosts: Hosts, python: str | None = None,
              marker: str | None = None) -> "Process":
        """The process of a record (started by an earlier command)."""
        proc = cls(recorded.name, recorded.host, hosts, python=python, marker=marker)
        proc.recorded = recorded
        return proc

    @property
    def pid(self) -> int | None:
        return self.recorded.pid if self.recorded else None

    @property
    def captured(self) -> bool:
        return self.on_line is not None

    async def start(self) -> None:
        await start_all([self])

    async def close(self, timeout: float = 10) -> str:
        return (await close_all([self], timeout))[self.name]

    def exited(self) -> bool:
        """A captured process that ended (a cheap look, no host operation)."""
        return self.popen is not None and self.popen.poll() is not None

    async def tail(self, n: int = 5) -> list[str]:
        """Its last output lines."""
        if self.captured:
            if self._reader is not None and self.exited():
                await in_thread(self._reader.join, 2)
            return list(self.last)[-n:]
        assert self.recorded is not None
        host = await self.hosts.get(self.host, self.python)
        return await host.call("tail", path=self.recorded.log, n=n)

    def _start_captured(self, local: bool) -> None:
        if not local:
            raise ClusterError(f"{self.name}: only processes on this machine can have their output captured")
        assert self.launch is not None
        self.popen = hostops.popen(self.launch, capture=True)
        assert self.popen.stdout is not None
        self._reader = pump(self.popen.stdout, self.on_line, f"[{self.name}] ", self.last)
        self.recorded = Recorded(self.name, self.host, self.popen.pid, "", True,
                                 hostops.create_time(self.popen.pid))

    def _finish(self) -> None:
        """After a stop: collect the exit status and the last output of a captured process."""
        if self.popen is not None:
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if self._reader is not None:
            self._reader.join(timeout=2)


def _by_host(procs: list[Process]) -> dict[str, list[Process]]:
    groups: dict[str, list[Process]] = {}
    for p in procs:
        groups.setdefault(p.host, []).append(p)
    return groups


async def start_all(procs: list[Process]) -> None:
    """Start ``procs``, one launch per host, hosts in parallel.

    Raises:
        The first error once every host answered: the processes that did start have
        their ``recorded`` set, so the caller can stop them.
    """
    async def on(group: list[Process]) -> None:
        host = await group[0].hosts.get(group[0].host, group[0].python)
        for p in group:
            if p.captured:
                p._start_captured(host.local)
        detached = [p for p in group if not p.captured]
        if detached:
            found = await host.call("spawn", specs=[p.launch for p in detached])
            for p, got in zip(detached, found):
                p.recorded = Recorded(p.name, p.host, int(got["pid"]), p.launch["log"], host.local,
                                      got.get("started"))

    results = await asyncio.gather(*(on(g) for g in _by_host(procs).values()), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise errors[0]


async def states_of(procs: list[Process]) -> dict[str, str]:
    """name -> ``ours`` / ``other`` / ``gone``, one look per host."""
    async def on(group: list[Process]) -> dict[str, str]:
        host = await group[0].hosts.get(group[0].host, group[0].python)
        found = await host.call("states", procs=[p.recorded.ident(p.marker) for p in group])
        return {p.name: found.get(str(p.pid), "gone") for p in group}

    out: dict[str, str] = {}
    for result in await asyncio.gather(*(on(g) for g in _by_host([p for p in procs if p.recorded]).values())):
        out.update(result)
    return out


async def close_all(procs: list[Process], timeout: float = 10) -> dict[str, str]:
    """Stop ``procs`` (SIGTERM, ``timeout`` seconds, then SIGKILL), one stop per host, in parallel.

    Returns:
        name -> stopped, killed, gone, other (pid reused), left or unreachable (its host could
        not be reached: it may still run).
    """
    async def on(group: list[Process]) -> dict[str, str]:
        try:
            host = await group[0].hosts.get(group[0].host, group[0].python)
            found = await host.call("stop", limit=timeout + 60, procs=[p.recorded.ident(p.marker) for p in group],
                                    timeout=timeout)
        except HostError:
            return {p.name: "unreachable" for p in group}
        await in_thread(lambda: [p._finish() for p in group])
        return {p.name: found["states"].get(str(p.pid), "gone") for p in group}

    out = {p.name: "gone" for p in procs if p.recorded is None}
    started = [p for p in procs if p.recorded is not None]
    for result in await asyncio.gather(*(on(g) for g in _by_host(started).values())):
        out.update(result)
    return out
