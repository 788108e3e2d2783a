"""The one way Switchyard opens a Dask client.

Every caller (run executors, the pipeline driver, the service, cluster checks) connects
through :func:`connect`, so how a connection is secured is decided in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client


def connect(address: str, *, timeout: float = 30, set_as_default: bool = False) -> "Client":
    """A ``distributed.Client`` connected to the scheduler at ``address``."""
    from distributed import Client

    return Client(address, timeout=timeout, set_as_default=set_as_default)
