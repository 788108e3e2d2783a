"""Checks that a Switchyard cluster talks mutual TLS only: shared by the local, warm and SSH tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import distributed
import pytest

from switchyard.cluster import tls
from switchyard.cluster.connect import connect

REFUSED = (OSError, TimeoutError, asyncio.TimeoutError, distributed.comm.CommClosedError)


def _plain(address: str) -> str:
    return "tcp://" + tls.host_port(address)


async def _identity(address: str, security=None) -> dict:
    """One ``identity`` call to a scheduler, worker or nanny over a fresh connection."""
    args = security.get_connection_args("client") if security is not None else {}
    comm = await distributed.comm.connect(address, timeout=3, **args)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await asyncio.wait_for(comm.read(), 3)
    finally:
        comm.abort()


def assert_only_mutual_tls(address: str, home: Path, stranger_home: Path) -> list[str]:
    """Every listener of the cluster at ``address`` (scheduler, workers, nannies) answers this
    workspace's certificate and refuses plain tcp and another workspace's certificate.

    Returns the addresses checked.
    """
    assert address.startswith("tls://"), address
    mine = tls.workspace_certs(home).security()
    stranger = tls.ensure(stranger_home).security()
    with connect(address, timeout=10) as client:
        info = client.scheduler_info(n_workers=-1)
    listeners = [address] + [a for addr, w in info["workers"].items() for a in (addr, w.get("nanny")) if a]
    assert len(listeners) == 1 + 2 * len(info["workers"]) and info["workers"], info["workers"]
    assert all(a.startswith("tls://") for a in listeners), listeners

    with pytest.raises(REFUSED):
        distributed.Client(_plain(address), timeout=3, set_as_default=False)
    with pytest.raises(REFUSED):
        distributed.Client(address, timeout=3, security=stranger, set_as_default=False)
    for where in listeners:
        assert asyncio.run(_identity(where, mine))["type"]  # the right certificate gets an answer
        with pytest.raises(REFUSED):
            asyncio.run(_identity(_plain(where)))
        with pytest.raises(REFUSED):
            asyncio.run(_identity(where, stranger))
    return listeners
