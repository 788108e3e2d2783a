"""The hosts a cluster's processes run on: this machine, or one reached over SSH.

A :class:`Host` runs the operations of :mod:`switchyard.cluster.hostops` (spawn,
states, stop, tail, wait_for_file, has_module) where the processes live: in this
process for this machine (``spawn`` in a helper process), and as
``python -c <hostops source> OP JSON`` over SSH, always as an argument list, for a
remote host.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from switchyard.cluster import hostops
from switchyard.cluster.addresses import is_local_host
from switchyard.exceptions import ClusterError
from switchyard.settings import ClusterSettings

if TYPE_CHECKING:  # asyncssh is not in the app's worker environment, where run drivers start local clusters
    from switchyard.cluster.ssh import Remote

_SOURCE = Path(hostops.__file__).read_text()


class Host(Protocol):
    """Where processes run: ``call(op, **args)`` runs ``hostops.OPS[op](**args)`` there (within
    ``limit`` seconds over SSH)."""

    name: str
    local: bool

    async def call(self, op: str, limit: float = 60, **args: Any) -> Any: ...


async def in_thread(fn, *args: Any, **kwargs: Any) -> Any:
    """``asyncio.to_thread``, or a plain call once the interpreter is shutting down (an atexit
    close), when no thread pool takes work any more."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except RuntimeError as e:
        if "shutdown" not in str(e):
            raise
        return fn(*args, **kwargs)


def _result(host: str, op: str, python: str, code: int, lines: list[str]) -> Any:
    found = [s.split(hostops.MARK, 1)[1] for s in lines if hostops.MARK in s]
    if code != 0 or not found:
        raise ClusterError(f"host '{host}': '{op}' failed with {python}: "
                           f"{' | '.join(lines[-3:]) or f'exit {code}'}: check that python there")
    return json.loads(found[-1])


class LocalHost:
    """This machine: the operations run in this process (in a thread), except ``spawn``.

    Detached processes are spawned by a short-lived helper process, as on a remote host:
    they are not children of the caller (a long-lived UI would collect their zombies).
    """

    local = True

    def __init__(self, name: str = "127.0.0.1"):
        self.name = name

    async def call(self, op: str, limit: float = 60, **args: Any) -> Any:
        if op != "spawn":
            return await in_thread(hostops.OPS[op], **args)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _SOURCE, op, json.dumps(args), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), limit)
        except (asyncio.TimeoutError, TimeoutError):
            proc.kill()
            raise ClusterError(f"'{op}' did not finish within {limit:g} s on this machine") from None
        return _result(self.name, op, sys.executable, proc.returncode or 0,
                       out.decode("utf-8", errors="replace").splitlines())


class SSHHost:
    """A remote host: the operations run there with ``python`` (a python that has psutil)."""

    local = False

    def __init__(self, remote: Remote, python: str | None = None):
        self.remote = remote
        self.name = remote.host
        self.python = python

    async def call(self, op: str, limit: float = 60, **args: Any) -> Any:
        if not self.python:
            raise ClusterError(f"host '{self.name}': no python is known there to manage the cluster's "
                               "processes: install the app there first (switchyard install APP)")
        done = await self.remote.run([self.python, "-c", _SOURCE, op, json.dumps(args)], timeout=limit)
        return _result(self.name, op, self.python, done.code, done.lines)


class Hosts:
    """One :class:`Host` per host name for the length of an action (SSH connections opened once).

    Args:
        cluster: SSH access settings of the remote hosts (None: every host is this machine).
        here: Host names that are this machine although they are not loopback names
            (a scheduler address of this machine on the hosts' network).
    """

    def __init__(self, cluster: ClusterSettings | None = None, here: set[str] | frozenset[str] = frozenset()):
        self.cluster = cluster
        self.here = set(here)
        self._hosts: dict[str, LocalHost | SSHHost] = {}

    def is_here(self, host: str) -> bool:
        return host in self.here or is_local_host(host)

    async def get(self, host: str, python: str | None = None) -> LocalHost | SSHHost:
        """The host named ``host``; ``python`` (a remote python with psutil) is remembered for it."""
        if host not in self._hosts:
            if self.is_here(host):
                self._hosts[host] = LocalHost(host)
            else:
                if self.cluster is None:
                    raise ClusterError(f"host '{host}' is not this machine and no SSH access is set for it")
                from switchyard.cluster import ssh

                self._hosts[host] = SSHHost(await ssh.connect(ssh.access_for(self.cluster, host)))
        found = self._hosts[host]
        if python and isinstance(found, SSHHost):
            found.python = python
        return found

    async def close(self) -> None:
        for host in self._hosts.values():
            if isinstance(host, SSHHost):
                await host.remote.close()
        self._hosts.clear()
