"""The cluster layer: what should run (:class:`ClusterSpec`), what a process is
(:class:`Proc`), and the one idempotent reconcile step between them.

Every cluster switchyard starts is described by a spec: the scheduler's address,
hosts -> wanted worker count, the python, environment and folder on each host, the
scheduler's idle lifetime, the modules workers preload and their death timeout.
:func:`reconcile` compares the spec with what runs and says what to start and stop
(events in, instructions out, no I/O); :class:`~switchyard.cluster.deployment.Deployment`
does the I/O around it. The front doors are thin: the per-run
:class:`~switchyard.cluster.local.LocalCluster` and the warm cluster
(:mod:`switchyard.cluster.warm`, local or over SSH).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping, Protocol

from switchyard.cluster.addresses import slots, split_address
from switchyard.cluster.tls import Certs

SCHEDULER = "scheduler"


@dataclass(frozen=True)
class HostSpec:
    """How processes run on one host.

    Attributes:
        python: The python that runs ``dask scheduler`` / ``dask worker`` there.
        folder: The cluster's folder there (scheduler file, logs, worker directories).
        bind: The address the processes listen on.
        env: Variables set for every process (over this process's environment unless
            ``inherit_env`` is false, then the whole environment).
        unset: Variables removed from the inherited environment.
        inherit_env: Whether processes inherit the environment of whoever launches them.
        remote: Reached over SSH (else: this machine).
        tls: The certificate files there (mutual TLS on every connection); None: plain tcp.
    """

    python: str
    folder: str
    bind: str
    env: Mapping[str, str] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    inherit_env: bool = True
    remote: bool = False
    tls: Certs | None = None


@dataclass(frozen=True)
class ClusterSpec:
    """What a cluster should run.

    Attributes:
        scheduler: ``host:port`` of the scheduler; port 0 means any free port.
        workers: Host -> wanted number of worker processes (slots ``<host>-<i>``).
        hosts: Host -> :class:`HostSpec`, for every worker host and the scheduler's host.
        idle_timeout: The scheduler (and then its workers) stops after this many idle seconds.
        preload: Modules each worker imports while it starts (the app).
        death_timeout: A worker whose scheduler vanished exits after this many seconds.
        nthreads: Threads per worker.
        dashboard: Serve the dashboard; None means when bokeh is importable by the
            scheduler's python.
        rapids: Workers for the rapids bit: one per GPU of its host (``CUDA_VISIBLE_DEVICES``
            pins worker ``<host>-<i>`` to GPU ``i``), ``cudf.pandas`` on before the app's preload.
    """

    scheduler: str
    workers: Mapping[str, int]
    hosts: Mapping[str, HostSpec]
    idle_timeout: float | None = None
    preload: tuple[str, ...] = ()
    death_timeout: float = 60
    nthreads: int = 1
    dashboard: bool | None = None
    rapids: bool = False

    @property
    def scheduler_host(self) -> str:
        return split_address(self.scheduler)[0]

    @property
    def slots(self) -> list[tuple[str, str]]:
        """(host, name) of every wanted worker."""
        return slots(dict(self.workers))


def scheduler_argv(spec: ClusterSpec, port: int, dashboard: bool) -> list[str]:
    """The command line of the spec's scheduler listening on ``port`` (0: any free port)."""
    host = spec.hosts[spec.scheduler_host]
    argv = [host.python, "-m", "distributed.cli.dask_scheduler", "--host", host.bind, "--port", str(port),
            "--scheduler-file", f"{host.folder}/scheduler.json"]
    argv += host.tls.argv() if host.tls else []
    # The HTTP server (the dashboard when bokeh is there; /health, /metrics and the info pages
    # always, even with --no-dashboard) listens on the scheduler's bind address only: without
    # --dashboard-address it takes 0.0.0.0:8787.
    argv += ["--dashboard-address", f"{host.bind}:0"] + ([] if dashboard else ["--no-dashboard"])
    if spec.idle_timeout:
        argv += ["--idle-timeout", f"{spec.idle_timeout:g}s"]
    return argv


# A nanny forks its worker process instead of spawning a fresh interpreter: the nanny has
# imported distributed already, so each worker joins about 1.2 s sooner on a cold start
# (3.9 s -> 2.7 s for a scheduler and 2 workers on 2 cores). The host's own ``env`` wins.
WORKER_ENV = {"DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD": "fork"}


def worker_argv(spec: ClusterSpec, host: str, name: str, address: str) -> list[str]:
    """The command line of worker ``name`` on ``host`` joining the scheduler at ``address``."""
    where = spec.hosts[host]
    return [where.python, "-m", "distributed.cli.dask_worker", address, "--name", name,
            "--nthreads", str(spec.nthreads), "--nworkers", "1", "--host", where.bind, "--no-dashboard",
            "--dashboard-address", f"{where.bind}:0",  # its HTTP server too: else on all interfaces
            "--local-directory", f"{where.folder}/{name}", "--death-timeout", f"{spec.death_timeout:g}",
            *(where.tls.argv() if where.tls else []),
            *(["--resources", "GPU=1"] if spec.rapids else []),
            *[arg for module in worker_preload(spec) for arg in ("--preload", module)]]


# The rapids boot preload turns cudf.pandas on; it must come before anything imports pandas.
RAPIDS_PRELOAD = "switchyard.rapids_boot"


def worker_preload(spec: ClusterSpec) -> list[str]:
    """The modules a worker preloads, in order: the rapids boot first, then the app."""
    return ([RAPIDS_PRELOAD] if spec.rapids else []) + [m for m in spec.preload if m != RAPIDS_PRELOAD]


def worker_env(spec: ClusterSpec, host: str, name: str) -> dict[str, str]:
    """The variables worker ``name`` on ``host`` gets over its host's: a rapids worker is pinned
    to its own GPU, the i-th worker of a host to GPU i."""
    env = {**WORKER_ENV, **spec.hosts[host].env}
    if spec.rapids:
        names = [n for h, n in spec.slots if h == host]
        env["CUDA_VISIBLE_DEVICES"] = str(names.index(name)) if name in names else "0"
    return env


# ----------------------------------------------------------------------------- processes

@dataclass
class Recorded:
    """A started process as it is recorded: its host, pid, create time and log file there.

    The create time tells the process from a later one that reuses its pid; records
    written before it was kept have ``started`` None (then a marker is checked instead).
    """

    name: str
    host: str
    pid: int
    log: str = ""
    local: bool = True
    started: float | None = None

    def ident(self, marker: str | None = None) -> dict:
        """What :mod:`~switchyard.cluster.hostops` needs to find this process again."""
        return {"pid": self.pid, "started": self.started, "marker": marker}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Recorded":
        started = d.get("started")
        return cls(str(d["name"]), str(d["host"]), int(d["pid"]), str(d.get("log", "")),
                   bool(d.get("local", True)), None if started is None else float(started))


class Proc(Protocol):
    """One process of a cluster (scheduler or worker), local or over SSH."""

    name: str
    host: str

    async def start(self) -> None:
        """Start the process; return once it runs (the scheduler: once it listens)."""

    async def close(self, timeout: float = 10) -> str:
        """Stop the process and its children; return stopped, killed, gone, other or left."""


# ----------------------------------------------------------------------------- reconcile

@dataclass(frozen=True)
class Running:
    """What runs, as far as the cluster knows (the events reconcile reads).

    Attributes:
        scheduler: Whether a scheduler is recorded (started by this cluster).
        answers: Whether that scheduler answers at its address.
        address: Its address (for the notes).
        workers: Recorded worker name -> host (the worker processes this cluster started).
        joined: Names of the workers connected to the scheduler now.
    """

    scheduler: bool = False
    answers: bool = False
    address: str | None = None
    workers: Mapping[str, str] = field(default_factory=dict)
    joined: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Instructions:
    """What to do, in order: stop ``stop``, start the scheduler, start ``start``, wait for them.

    Attributes:
        stop: Recorded process names to stop (``scheduler`` last when it is among them).
        start_scheduler: Start a new scheduler (before the workers).
        start: (host, name) of the workers to start.
        keep: Recorded workers that stay as they are.
        notes: One line per decision, in the operator's words.
    """

    stop: tuple[str, ...] = ()
    start_scheduler: bool = False
    start: tuple[tuple[str, str], ...] = ()
    keep: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def reconcile(spec: ClusterSpec, running: Running) -> Instructions:
    """The steps that make ``running`` match ``spec``; nothing when they already match.

    A recorded scheduler that no longer answers takes its recorded workers with it: all
    of them are stopped and the cluster starts again. Otherwise workers no longer wanted
    are stopped, wanted workers that left the scheduler are stopped and started again,
    and wanted workers that are missing are started.
    """
    wanted = spec.slots
    if not (running.scheduler and running.answers):
        notes = []
        stop = tuple(running.workers) + ((SCHEDULER,) if running.scheduler else ())
        if running.scheduler:
            notes.append(f"the recorded cluster at {running.address} is gone: cleaning up after it")
        return Instructions(stop=stop, start_scheduler=True, start=tuple(wanted), notes=tuple(notes))
    host_of = dict((name, host) for host, name in wanted)
    unwanted = [n for n in running.workers if n not in host_of]
    lost = [n for n in running.workers if n in host_of and n not in running.joined]
    keep = [n for n in running.workers if n in host_of and n in running.joined]
    start = [(host, name) for host, name in wanted if name not in running.joined]
    notes = []
    if unwanted:
        notes.append(f"stopping {len(unwanted)} worker(s) no longer wanted: {', '.join(unwanted)}")
    if lost:
        notes.append(f"worker(s) {', '.join(lost)} left the cluster: starting them again")
    if not start:
        notes.append("every wanted worker is already up: nothing to start")
    return Instructions(stop=tuple(unwanted + lost), start=tuple(start), keep=tuple(keep), notes=tuple(notes))
