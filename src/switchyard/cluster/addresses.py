"""Addresses and worker-slot names: what the cluster code uses to parse ``host:port`` and name slots.

A worker slot is ``<host>-<i>``: the work plan plans on these names, the local and
warm clusters start ``dask worker --name <host>-<i>``, and the driver submits each
batch to its planned slot by that name. ``split_address`` is implemented in
:mod:`switchyard.settings` (which validates scheduler addresses and may not import the
cluster package) and is the same function here.
"""

from __future__ import annotations

import socket

from switchyard.settings import split_address  # the one parser (settings cannot import cluster/)

__all__ = ["LOCAL_HOSTS", "answers", "is_local_host", "loopback_of", "port_is_free", "slot_name", "slot_names",
           "slots", "split_address"]

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def slot_name(host: str, index: int) -> str:
    """The name of worker ``index`` on ``host``: ``<host>-<index>``."""
    return f"{host}-{index}"


def slots(workers: dict[str, int]) -> list[tuple[str, str]]:
    """(host, slot name) of every wanted worker, hosts in order, slots numbered from 0."""
    return [(host, slot_name(host, i)) for host, count in workers.items() for i in range(count)]


def slot_names(workers: dict[str, int]) -> list[str]:
    """The slot names of ``workers`` (host -> count): ``["127.0.0.1-0", "127.0.0.1-1", ...]``."""
    return [name for _, name in slots(workers)]


def is_local_host(host: str) -> bool:
    """True for the loopback names this machine answers to as itself (not 127.0.0.2 and up)."""
    host = host.strip().strip("[]")
    if host in LOCAL_HOSTS or host == socket.gethostname():
        return True
    # getfqdn may ask DNS: only when the cheap answers did not match.
    return "." in host and host == socket.getfqdn()


def loopback_of(host: str) -> str:
    """The loopback address a local process binds for ``host`` (``::1`` or ``127.0.0.1``).

    Always the loopback: this machine's name may resolve to a LAN address.
    """
    return "::1" if host.strip("[]") == "::1" else "127.0.0.1"


def port_is_free(host: str, port: int) -> bool:
    """True when a listener can bind ``port`` on ``host`` now (as Dask's do: SO_REUSEADDR, so the
    TIME_WAIT connections a just-stopped scheduler leaves on its port do not count as busy)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def answers(address: str, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at the scheduler address."""
    host, port = split_address(address)
    if not port:
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
