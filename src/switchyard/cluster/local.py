"""A Dask cluster on this machine made of real ``dask scheduler`` / ``dask worker`` processes.

Unlike ``distributed.LocalCluster``, the processes run with a chosen python (the
app's worker environment) and environment variables, and every line they print
is captured. Each process starts in its own process group so that closing the
cluster kills its children (the nanny's worker process) too.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Callable

from switchyard.cluster.addresses import LOCAL_HOSTS, is_local_host, port_is_free, slot_names, split_address
from switchyard.exceptions import ClusterError
from switchyard.logs import last_lines, pump

# Kept importable from here for the code that imports them from this module.
__all__ = ["LocalCluster", "LOCAL_HOSTS", "is_local_host", "port_is_free", "split_address"]

class _Proc:
    """One captured process: its Popen, the thread reading its output, its last lines."""

    def __init__(self, name: str, popen: subprocess.Popen, on_line: Callable[[str], None] | None):
        self.name = name
        self.popen = popen
        self.last = deque(maxlen=30)
        assert popen.stdout is not None
        self.reader = pump(popen.stdout, on_line, f"[{name}] ", self.last)


class LocalCluster:
    """A scheduler and worker processes on this machine, started with a given python.

    Args:
        python: The python that runs the scheduler and the workers (an app's env python).
        workers: Host -> number of worker processes; hosts must be this machine.
        scheduler_address: ``"host:port"``; port 0 or None picks a free port, and a busy
            requested port is replaced by a free one (said in the log).
        env: Environment variables of every process (default: this process's).
        on_line: Receives every output line, prefixed ``[scheduler] `` or ``[<host>-<i>] ``.
        join_timeout: Seconds to wait for all workers to join the scheduler.
        preload: Modules each worker imports while it starts (e.g. the app), so the import
            is paid before the first task instead of inside it.

    Attributes:
        address: The scheduler's address (``tcp://127.0.0.1:<port>``) once started.
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
    ):
        self.python = Path(python)
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
        # Always bind the loopback: this machine's name may resolve to a LAN address.
        self.scheduler_host = "::1" if host == "::1" else "127.0.0.1"
        self.requested_port = port
        self.address: str | None = None
        self.dashboard_address: str | None = None
        self.addresses: dict[str, str] = {}
        self._procs: dict[str, _Proc] = {}
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
        return {name: p.popen.pid for name, p in self._procs.items()}

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
            self._start_scheduler()
            self._start_workers()
            self._wait_for_workers()
        except BaseException:
            self.close()
            raise
        return self.address  # type: ignore[return-value]

    def _say(self, line: str) -> None:
        if self.on_line is not None:
            self.on_line(f"[cluster] {line}")

    def _spawn(self, name: str, args: list[str]) -> _Proc:
        popen = subprocess.Popen(
            [str(self.python), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env, cwd=str(self._tmp), start_new_session=True,
        )
        proc = _Proc(name, popen, self.on_line)
        self._procs[name] = proc
        return proc

    def _start_scheduler(self) -> None:
        started = time.monotonic()
        self._tmp = Path(tempfile.mkdtemp(prefix="switchyard-cluster-"))
        port = self.requested_port
        if port and not port_is_free(self.scheduler_host, port):
            self._say(f"port {port} on {self.scheduler_host} is busy: using a free port instead")
            port = 0
        scheduler_file = self._tmp / "scheduler.json"
        dashboard = (["--dashboard-address", ":0"] if self._has_bokeh() else ["--no-dashboard"])
        proc = self._spawn("scheduler", [
            "-m", "distributed.cli.dask_scheduler", "--host", self.scheduler_host,
            "--port", str(port), *dashboard, "--scheduler-file", str(scheduler_file),
        ])
        deadline = time.monotonic() + max(self.join_timeout, 30)
        while True:
            info = _read_json(scheduler_file)
            if info and info.get("address"):
                break
            if proc.popen.poll() is not None:
                proc.reader.join(timeout=2)
                raise ClusterError(
                    f"the scheduler exited with code {proc.popen.returncode} before listening: "
                    f"{last_lines(proc.last, 3) or 'no output'}: check that {self.python} has distributed"
                )
            if time.monotonic() > deadline:
                raise ClusterError(f"the scheduler did not start within {deadline - started:.0f} s: "
                                   f"{last_lines(proc.last, 3) or 'no output'}")
            time.sleep(0.05)
        self.address = info["address"]
        self.addresses["scheduler"] = self.address
        dash = (info.get("services") or {}).get("dashboard")
        if dash:
            self.dashboard_address = f"http://{self.scheduler_host}:{dash}/status"
        self._say(f"scheduler at {self.address} in {time.monotonic() - started:.1f} s")

    def _has_bokeh(self) -> bool:
        probe = [str(self.python), "-c", "import importlib.util, sys; "
                 "sys.exit(importlib.util.find_spec('bokeh') is None)"]
        try:
            return subprocess.run(probe, env=self.env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _start_workers(self) -> None:
        assert self._tmp is not None and self.address is not None
        for name in self.worker_names:
            self._spawn(name, [
                "-m", "distributed.cli.dask_worker", self.address,
                "--nthreads", "1", "--nworkers", "1", "--name", name, "--no-dashboard",
                "--host", self.scheduler_host, "--local-directory", str(self._tmp / name),
                # A worker whose scheduler vanished (driver killed) exits by itself.
                "--death-timeout", "60",
                *[arg for module in self.preload for arg in ("--preload", module)],
            ])

    def _wait_for_workers(self) -> None:
        from distributed import Client

        wanted = self.worker_names
        if not wanted:
            return
        started = time.monotonic()
        deadline = started + self.join_timeout
        joined: dict[str, str] = {}
        try:
            client = Client(self.address, timeout=max(self.join_timeout, 10))
        except (OSError, TimeoutError) as e:
            raise ClusterError(f"cannot connect to the scheduler at {self.address}: {e}: "
                               "see the [scheduler] lines of the log") from e
        with client:
            while True:
                info = _scheduler_info(client)
                joined = {w.get("name"): addr for addr, w in info.get("workers", {}).items()}
                joined = {str(k): v for k, v in joined.items()}
                if all(name in joined for name in wanted):
                    break
                dead = [name for name in wanted
                        if name not in joined and self._procs[name].popen.poll() is not None]
                if dead or time.monotonic() > deadline:
                    missing = [name for name in wanted if name not in joined]
                    detail = "; ".join(f"{n}: {last_lines(self._procs[n].last, 2) or 'no output'}"
                                       for n in missing[:4])
                    why = (f"exited ({', '.join(dead)})" if dead
                           else f"did not join within {self.join_timeout:g} s")
                    raise ClusterError(
                        f"worker(s) {', '.join(missing)} {why}: {detail}: check the worker log above "
                        f"and that {self.python} runs the app"
                    )
                try:
                    client.wait_for_workers(len(wanted), timeout=0.5)
                except TimeoutError:
                    pass
        for name in wanted:
            self.addresses[name] = joined[name]
        self._say(f"{len(wanted)} worker(s) joined in {time.monotonic() - started:.1f} s")

    def close(self, timeout: float = 10) -> None:
        """Stop the workers, then the scheduler; kill what does not stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            atexit.unregister(self.close)
        except Exception:
            pass
        workers = [p for name, p in self._procs.items() if name != "scheduler"]
        scheduler = [p for name, p in self._procs.items() if name == "scheduler"]
        # Workers first so they do not spend their death timeout reconnecting.
        for group in (workers, scheduler):
            _stop(group, timeout)
        for proc in self._procs.values():
            proc.reader.join(timeout=2)
        self._procs.clear()
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


def _signal_group(popen: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(popen.pid, sig)  # start_new_session: the group id is the leader's pid
    except (ProcessLookupError, PermissionError):
        pass


def _stop(procs: list[_Proc], timeout: float) -> None:
    for proc in procs:
        # The leader only: a nanny stops its own worker process; signalling both races.
        try:
            proc.popen.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for proc in procs:
        # Also reaps children (the nanny's worker) that outlived their leader.
        _signal_group(proc.popen, signal.SIGKILL)
        try:
            proc.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _scheduler_info(client) -> dict:
    try:
        return client.scheduler_info(n_workers=-1)
    except TypeError:  # distributed before n_workers= listed every worker anyway
        return client.scheduler_info()


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # not written yet, or half-written
