"""A run's own Dask cluster on this machine: the local front door over the cluster layer.

Real ``dask scheduler`` / ``dask worker`` processes (:mod:`switchyard.cluster.spec`),
started with a chosen python (the app's worker environment) and environment, every
output line captured. Each process leads its own session, so closing the cluster
stops the nanny's worker process too. Unlike a warm cluster it is not recorded in the
workspace: the driver that starts it records its pids for the reaper
(:mod:`switchyard.cluster.reaper`) and it ends with the run.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

from switchyard import workspace
from switchyard.cluster import tls
from switchyard.cluster.addresses import (LOCAL_HOSTS, is_local_host, loopback_of, port_is_free, slot_names,
                                          split_address)
from switchyard.cluster.deployment import Deployment
from switchyard.cluster.hosts import Hosts
from switchyard.cluster.spec import ClusterSpec, HostSpec
from switchyard.exceptions import ClusterError

# Kept importable from here for the code that imports them from this module.
__all__ = ["LocalCluster", "LOCAL_HOSTS", "is_local_host", "port_is_free", "split_address"]


def run_sync(coro):
    """Run ``coro`` to the end from sync code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict = {}

    def runner() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    thread = threading.Thread(target=runner, name="cluster-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


class LocalCluster:
    """A scheduler and worker processes on this machine, started with a given python.

    Args:
        python: The python that runs the scheduler and the workers (an app's env python).
        workers: Host -> number of worker processes; hosts must be this machine.
        scheduler_address: ``"host:port"``; port 0 or None picks a free port, and a busy
            requested port is replaced by a free one (said in the log).
        env: Environment variables of every process (default: this process's).
        on_line: Receives every output line, prefixed ``[scheduler] `` or ``[<host>-<i>] ``,
            and the cluster's own steps, prefixed ``[cluster] ``.
        join_timeout: Seconds to wait for all workers to join the scheduler.
        preload: Modules each worker imports while it starts (e.g. the app), so the import
            is paid before the first task instead of inside it.
        home: The workspace whose certificates the processes present (default: the
            current workspace); every connection is mutual TLS.
        rapids: Workers for the rapids bit (``ClusterSpec.rapids``): each pinned to its own GPU,
            ``cudf.pandas`` turned on before the app's preload.

    Attributes:
        address: The scheduler's address (``tls://127.0.0.1:<port>``) once started.
        addresses: Name -> address, for ``scheduler`` and each worker, once started.
        dashboard_address: The dashboard URL when bokeh is installed in ``python``.

    Example:
        >>> with LocalCluster(python, {"127.0.0.1": 2}) as cluster:  # doctest: +SKIP
        ...     client = distributed.Client(cluster.address)
    """

    def __init__(
        self,
        python: Path | str,
        workers: dict[str, int],
        scheduler_address: str | None = None,
        env: dict[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
        join_timeout: float = 60,
        preload: tuple[str, ...] = (),
        home: Path | str | None = None,
        rapids: bool = False,
    ):
        self.python = Path(python)
        self.rapids = rapids  # one worker per GPU, cudf.pandas on (ClusterSpec.rapids)
        self.home = Path(home) if home is not None else workspace.home()
        self.preload = tuple(preload)
        self.workers = dict(workers)
        self.env = dict(env if env is not None else os.environ)
        self.env["PYTHONUNBUFFERED"] = "1"
        self.on_line = on_line
        self.join_timeout = join_timeout
        for host, count in self.workers.items():
            if not is_local_host(str(host)):
                raise ClusterError(
                    f"host '{host}' is not this machine: a local cluster only starts workers on "
                    "127.0.0.1/localhost/::1: remote hosts need SSH (the SSH cluster)"
                )
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise ClusterError(f"host '{host}': worker count {count!r} must be a whole number >= 0")
        host, port = split_address(scheduler_address) if scheduler_address else ("127.0.0.1", 0)
        if not is_local_host(host):
            raise ClusterError(
                f"scheduler address '{scheduler_address}' is not on this machine: use 127.0.0.1:<port> "
                "for a local cluster, or connect to an existing scheduler instead"
            )
        self.scheduler_host = loopback_of(host)
        self.requested_port = port
        self.address: str | None = None
        self.dashboard_address: str | None = None
        self.addresses: dict[str, str] = {}
        self._deployment: Deployment | None = None
        self._tmp: Path | None = None
        self._closed = False

    # names ------------------------------------------------------------------
    @property
    def worker_names(self) -> list[str]:
        """The workers' names: ``<host>-<i>`` for each host and slot."""
        return slot_names(self.workers)

    @property
    def pids(self) -> dict[str, int]:
        """Process id per name (``scheduler`` and each worker's nanny)."""
        if self._deployment is None:
            return {}
        return {p.name: p.pid for p in self._deployment.processes if p.pid is not None}

    def spec(self, folder: str) -> ClusterSpec:
        """The :class:`ClusterSpec` of this cluster, its files in ``folder``."""
        where = HostSpec(python=str(self.python), folder=folder, bind=self.scheduler_host, env=self.env,
                         inherit_env=False, tls=tls.workspace_certs(self.home))
        return ClusterSpec(scheduler=f"[{self.scheduler_host}]:{self.requested_port}"
                           if ":" in self.scheduler_host else f"{self.scheduler_host}:{self.requested_port}",
                           workers=self.workers, hosts={h: where for h in {*self.workers, self.scheduler_host}},
                           preload=self.preload, rapids=self.rapids)

    # lifecycle --------------------------------------------------------------
    def start(self) -> str:
        """Start the scheduler and the workers; return the scheduler address once all joined.

        Raises:
            ClusterError: A process failed to start or a worker did not join in time
                (everything started is closed again).
        """
        if self.address is not None:
            return self.address
        if not self.python.exists():
            raise ClusterError(f"python {self.python} does not exist: install the app's environment first")
        self._closed = False
        atexit.register(self.close)
        try:
            tls.ensure(self.home)
            self._tmp = Path(tempfile.mkdtemp(prefix="switchyard-cluster-"))
            self._deployment = Deployment(self.spec(str(self._tmp)), Hosts(), self._say, capture=self.on_line
                                          or (lambda line: None), scheduler_timeout=self.join_timeout,
                                          home=self.home)
            run_sync(self._deployment.launch())
            self.address = self._deployment.address
            tls.remember_local(self.address, self.home)  # type: ignore[arg-type]
            self.dashboard_address = self._deployment.dashboard
            self.addresses["scheduler"] = self.address  # type: ignore[assignment]
            self._wait_for_workers()
        except BaseException:
            self.close()
            raise
        return self.address  # type: ignore[return-value]

    def _say(self, line: str) -> None:
        if self.on_line is not None:
            self.on_line(f"[cluster] {line}")

    def _wait_for_workers(self) -> None:
        assert self._deployment is not None
        self.addresses.update(run_sync(self._deployment.wait(self.join_timeout)))

    def close(self, timeout: float = 10) -> None:
        """Stop the workers, then the scheduler; kill what does not stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            atexit.unregister(self.close)
        except Exception:
            pass
        if self._deployment is not None:
            run_sync(self._deployment.close(timeout))
            self._deployment = None
        if self.address:
            tls.forget_local(self.address)
        self.address = None
        self.addresses = {}
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "LocalCluster":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = self.address or ("closed" if self._closed else "not started")
        return f"LocalCluster({state}, workers={self.workers})"
