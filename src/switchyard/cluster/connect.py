"""The one way Switchyard opens a Dask client.

Every caller (run executors, the pipeline driver, the service, cluster checks) connects
through :func:`connect`, so how a connection is secured is decided in one place
(:func:`switchyard.cluster.tls.security_for`): a ``tls://`` cluster of this workspace
with its certificates (mutual TLS), an external scheduler the way its app's
``[cluster.tls]`` says, and a plain ``tcp://`` address of a cluster that needs TLS is
refused with one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client


def connect(address: str, *, timeout: float = 30, set_as_default: bool = False, home=None) -> "Client":
    """A ``distributed.Client`` connected to the scheduler at ``address``.

    ``home`` is the workspace whose certificates a ``tls://`` client presents (default: the
    one of the cluster at that address when this process started or read it, else the
    current workspace).

    Raises:
        ClusterError: ``address`` is plain tcp for a cluster that requires TLS, or no
            certificates are known for a ``tls://`` address.
    """
    from distributed import Client

    from switchyard.cluster.tls import security_for

    address, security = security_for(address, home)
    return Client(address, timeout=timeout, set_as_default=set_as_default, security=security)
