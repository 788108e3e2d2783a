"""``app_settings.toml``: read, validate and write with tomlkit so comments and order survive.

Everything is validated before anything is written, and writes are atomic:
a bad value raises SettingsError (file, key, fix) and leaves the file untouched.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import ParseError
from tomlkit.items import Table

from switchyard.exceptions import SettingsError, WorkersError
from switchyard.modes import Mode, mode_from_flags
from switchyard.workspace import atomic_write_text

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
MODE_KEYS = ("pool", "cython", "dask", "rapids")
HEALTH_DEFAULTS = {"allow_idle": False, "max_unhealthy": 0, "max_restart_rate": 0.25}
DEFAULT_SCHEDULER = "127.0.0.1:8786"
SSH_KEYS = ("user", "port", "key_path", "known_hosts")
TLS_KEYS = ("ca_file", "cert_file", "key_file", "allow_plaintext")
HOST_KEYS = ("port", "user", "root", "python")
KINDS = ("local", "ssh", "address", "slurm")
UNTESTED_KINDS = ("pbs", "lsf", "sge", "htcondor", "oar", "moab")
JOBQUEUE_KEYS = ("queue", "account", "walltime", "lifetime", "cores", "memory", "processes", "jobs",
                 "minimum_jobs", "maximum_jobs", "scale_down_after", "job_extra_directives", "python", "shared")
_WALLTIME = re.compile(r"^(?:(?P<d>\d+)-)?(?P<h>\d{1,3}):(?P<m>[0-5]\d):(?P<s>[0-5]\d)$")
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*([kKMGT]i?B)$")
_SSH_USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$")


@dataclass
class SSHSettings:
    """``[cluster.ssh]``: how remote hosts are reached (None: the SSH defaults)."""

    user: str | None = None  # None: the local user
    port: int = 22
    key_path: str | None = None  # None: ~/.ssh/id_* and the ssh-agent
    known_hosts: str | None = None  # None: ~/.ssh/known_hosts


@dataclass
class TLSSettings:
    """``[cluster.tls]``: how an external scheduler (one Switchyard did not start) is reached.

    Clusters Switchyard starts always use the workspace's own certificates; these apply to a
    scheduler given by address only. Plain ``tcp://`` to it needs ``allow_plaintext = true``.
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    allow_plaintext: bool = False

    @property
    def has_files(self) -> bool:
        return bool(self.ca_file and self.cert_file and self.key_file)


@dataclass
class HostSettings:
    """``[cluster.hosts."<host>"]``: per-host overrides of ``[cluster.ssh]`` and the install folder."""

    port: int | None = None
    user: str | None = None
    root: str | None = None  # the install folder on that host
    python: str | None = None  # the interpreter the worker environment is made from


@dataclass
class JobqueueSettings:
    """``[cluster.jobqueue]``: the worker jobs of a batch-system cluster (``kind = "slurm"``),
    mapped onto dask-jobqueue's job parameters (see docs/hpc.md).

    ``jobs`` is a fixed number of jobs; ``minimum_jobs`` / ``maximum_jobs`` make it adaptive.
    """

    queue: str = ""
    account: str | None = None
    walltime: str = "01:00:00"
    lifetime: int | None = None  # seconds; None: shorter than the walltime by a margin
    cores: int = 1
    memory: str = "2GB"
    processes: int = 1
    jobs: int = 1
    minimum_jobs: int | None = None
    maximum_jobs: int | None = None
    scale_down_after: int = 20  # seconds a job above the minimum stays idle before it is cancelled
    job_extra_directives: list[str] = field(default_factory=list)
    python: str | None = None  # the worker environment's python on the compute nodes
    shared: str | None = None  # a folder the compute nodes see (certificates, job scripts, logs)

    @property
    def adaptive(self) -> bool:
        return self.maximum_jobs is not None

    @property
    def walltime_seconds(self) -> int:
        return walltime_seconds(self.walltime)

    @property
    def worker_lifetime(self) -> int:
        """Seconds a worker lives: ``lifetime``, else the walltime less 10 % (30 s to 5 min)."""
        if self.lifetime is not None:
            return self.lifetime
        wall = self.walltime_seconds
        return max(1, wall - min(300, max(30, wall // 10)))


def walltime_seconds(text: str) -> int:
    """``HH:MM:SS`` or ``D-HH:MM:SS`` -> seconds (ValueError otherwise)."""
    m = _WALLTIME.match(str(text).strip())
    if not m:
        raise ValueError(text)
    return int(m.group("d") or 0) * 86400 + int(m.group("h")) * 3600 + int(m.group("m")) * 60 + int(m.group("s"))


@dataclass
class ClusterSettings:
    pool: bool = False
    cython: bool = False
    dask: bool = True
    rapids: bool = False
    scheduler: str = DEFAULT_SCHEDULER
    workers: dict[str, int] = field(default_factory=lambda: {"127.0.0.1": 2})
    pool_size: int = 2
    service_health: dict[str, Any] = field(default_factory=lambda: dict(HEALTH_DEFAULTS))
    ssh: SSHSettings = field(default_factory=SSHSettings)
    hosts: dict[str, HostSettings] = field(default_factory=dict)
    tls: TLSSettings = field(default_factory=TLSSettings)
    kind: str | None = None  # None: the automatic choice (warm cluster, a scheduler that answers, local)
    jobqueue: JobqueueSettings | None = None

    @property
    def mode(self) -> Mode:
        return mode_from_flags(pool=self.pool, cython=self.cython, dask=self.dask, rapids=self.rapids)


@dataclass
class AppSettings:
    path: Path
    doc: tomlkit.TOMLDocument
    args: dict[str, Any]
    cluster: ClusterSettings


def is_valid_host(host: str) -> bool:
    if not isinstance(host, str) or not host:
        return False
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOSTNAME.match(host))


def check_host(host: Any, where: str = "workers") -> str:
    if not isinstance(host, str) or not is_valid_host(host.strip()):
        raise WorkersError(
            f"{where}: host {host!r} is not a host name or an IPv4/IPv6 address: "
            "use a name like 'node1' or an address like '10.0.0.7' or '::1'"
        )
    return host.strip()


def check_workers(workers: Any, where: str = "workers") -> dict[str, int]:
    """Validate a host -> worker count mapping (at least one host, counts >= 1)."""
    if not isinstance(workers, dict) or not workers:
        raise WorkersError(f"{where}: give at least one host with a worker count, e.g. {{'127.0.0.1': 2}}")
    out: dict[str, int] = {}
    for host, count in workers.items():
        host = check_host(host, where)
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            raise WorkersError(f"{where}: host '{host}' has count {count!r}: give a whole number >= 1")
        if host in out:
            raise WorkersError(f"{where}: host '{host}' is listed twice: give each host once")
        out[host] = count
    return out


def parse_workers(text: str) -> dict[str, int]:
    """Parse ``host:count[,host:count]``; IPv6 hosts in brackets: ``[::1]:2``."""
    out: dict[str, int] = {}
    for raw in str(text).split(","):
        item = raw.strip()
        if not item:
            continue
        m = re.match(r"^\[(?P<v6>[^\]]+)\]:(?P<n>[^:]+)$", item) or re.match(r"^(?P<h>[^:\[\]]+):(?P<n>[^:]+)$", item)
        if not m:
            raise WorkersError(
                f"--workers: {item!r} is not host:count: write e.g. 127.0.0.1:2,node2:4 ([::1]:2 for IPv6)"
            )
        host = m.groupdict().get("v6") or m.group("h")
        count_text = m.group("n").strip()
        if not count_text.isdigit() or int(count_text) <= 0:
            raise WorkersError(f"--workers: {item!r}: count {count_text!r} must be a whole number >= 1")
        if host in out:
            raise WorkersError(f"--workers: host '{host}' is listed twice: give each host once")
        out[check_host(host, "--workers")] = int(count_text)
    if not out:
        raise WorkersError("--workers: empty: write e.g. 127.0.0.1:2")
    return out


def format_workers(workers: dict[str, int]) -> str:
    return ",".join(f"[{h}]:{n}" if ":" in h else f"{h}:{n}" for h, n in workers.items())


SCHEMES = ("tcp://", "tls://")


def check_scheduler(address: Any, where: str = "scheduler") -> str:
    """Accept ``host:port``, ``tcp://host:port``, ``tls://host:port`` (IPv6 in brackets); return it stripped."""
    text = str(address).strip() if isinstance(address, str) else ""
    bare = next((text[len(s):] for s in SCHEMES if text.startswith(s)), text)
    m = re.match(r"^\[(?P<v6>[^\]]+)\]:(?P<p>\d+)$", bare) or re.match(r"^(?P<h>[^:\[\]/]+):(?P<p>\d+)$", bare)
    if not m or not (0 <= int(m.group("p")) <= 65535) or not is_valid_host(m.groupdict().get("v6") or m.group("h")):
        raise SettingsError(None, where, f"{address!r} is not a scheduler address",
                            "write host:port, e.g. 127.0.0.1:8786, tcp://10.0.0.5:8786 or tls://10.0.0.5:8786")
    return text


def split_address(address: str) -> tuple[str, int]:
    """``"host:port"`` (optionally ``tcp://`` or ``tls://``, IPv6 in brackets) -> (host, port); port 0 if absent.

    The one address parser, also :func:`switchyard.cluster.addresses.split_address`: it lives
    here because the cluster package depends on settings, never the reverse.

    Raises:
        ClusterError: The port is not a number.
    """
    from switchyard.exceptions import ClusterError

    text = address.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    try:
        return host or "127.0.0.1", int(port) if port else 0
    except ValueError:
        raise ClusterError(f"scheduler address '{address}': port '{port}' is not a number: "
                           "write it as host:port, e.g. 127.0.0.1:8786") from None


def _plain(value: Any) -> Any:
    """tomlkit items -> plain Python values."""
    return value.unwrap() if hasattr(value, "unwrap") else value


def parse_settings(text: str, path: Path) -> AppSettings:
    try:
        doc = tomlkit.parse(text)
    except ParseError as e:
        raise SettingsError(path, None, f"invalid TOML at line {e.line} column {e.col}: {e}",
                            "fix the syntax (strings need quotes, tables need [brackets])") from None
    raw_args = doc.get("args", {})
    if not isinstance(raw_args, dict):
        raise SettingsError(path, "args", "must be a table", "write it as [args]")
    cluster_raw = doc.get("cluster", {})
    if not isinstance(cluster_raw, dict):
        raise SettingsError(path, "cluster", "must be a table", "write it as [cluster]")
    return AppSettings(path=path, doc=doc, args=_plain(raw_args) if raw_args else {},
                       cluster=check_cluster(_plain(cluster_raw) if cluster_raw else {}, path))


def check_cluster(raw: dict[str, Any], path: Path | None) -> ClusterSettings:
    c = ClusterSettings()
    for key in MODE_KEYS:
        if key in raw:
            if not isinstance(raw[key], bool):
                raise SettingsError(path, f"cluster.{key}", f"{raw[key]!r} is not true/false",
                                    f"write {key} = true or {key} = false")
            setattr(c, key, raw[key])
    if "scheduler" in raw:
        c.scheduler = _scheduler_in(raw, path)
    if "workers" in raw:
        try:
            c.workers = check_workers(raw["workers"], "cluster.workers")
        except WorkersError as e:
            raise SettingsError(path, "cluster.workers", str(e).split(": ", 1)[1]) from None
    if "pool_size" in raw:
        v = raw["pool_size"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise SettingsError(path, "cluster.pool_size", f"{v!r} is not a whole number >= 1",
                                "write e.g. pool_size = 2")
        c.pool_size = v
    health = raw.get("service_health", {})
    if not isinstance(health, dict):
        raise SettingsError(path, "cluster.service_health", "must be a table",
                            "write it as [cluster.service_health]")
    c.service_health = {**HEALTH_DEFAULTS, **health}
    if "ssh" in raw:
        c.ssh = check_ssh(raw["ssh"], path)
    if "hosts" in raw:
        c.hosts = check_hosts(raw["hosts"], path)
    if "tls" in raw:
        c.tls = check_tls(raw["tls"], path)
    if "kind" in raw:
        c.kind = check_kind(raw["kind"], path)
    if "jobqueue" in raw or c.kind == "slurm":
        c.jobqueue = check_jobqueue(raw.get("jobqueue"), path)
    if c.kind == "local" and any(not _is_loopback_name(h) for h in c.workers):
        remote = next(h for h in c.workers if not _is_loopback_name(h))
        raise SettingsError(path, "cluster.kind", f"'local' but [cluster.workers] names host '{remote}'",
                            'use kind = "ssh" for other hosts, or list only 127.0.0.1 in [cluster.workers]')
    return c


def _is_loopback_name(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host) in (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
    except ValueError:
        return False


def check_kind(value: Any, path: Path | None = None) -> str:
    """Validate ``[cluster].kind``: local, ssh, address or slurm (PBS, LSF, SGE are refused: untested)."""
    text = value.strip().lower() if isinstance(value, str) else value
    if text in UNTESTED_KINDS:
        raise SettingsError(path, "cluster.kind", f"'{text}' is not supported yet (only slurm is tested end to end)",
                            'use kind = "slurm", or kind = "address" with a scheduler you started there; see docs/hpc.md')
    if text not in KINDS:
        raise SettingsError(path, "cluster.kind", f"{value!r} is not a cluster kind",
                            f"use one of: {', '.join(KINDS)} (or remove kind for the automatic choice)")
    return text


def _count_in(value: Any, path: Path | None, key: str, example: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise SettingsError(path, key, f"{value!r} is not a whole number >= {least}", f"write e.g. {example}")
    return value


def check_jobqueue(raw: Any, path: Path | None = None) -> JobqueueSettings:
    """Validate ``[cluster.jobqueue]`` (queue is required; walltime HH:MM:SS or D-HH:MM:SS)."""
    key = "cluster.jobqueue"
    if raw is None:
        raise SettingsError(path, f"{key}.queue", "is missing (kind = \"slurm\" needs a [cluster.jobqueue] table)",
                            'add [cluster.jobqueue] with queue = "<partition>" (sinfo lists them)')
    raw = _table_of(raw, path, key, JOBQUEUE_KEYS)
    j = JobqueueSettings()
    if "queue" not in raw:
        raise SettingsError(path, f"{key}.queue", "is missing",
                            'name the partition the worker jobs go to, e.g. queue = "debug" (sinfo lists them)')
    j.queue = _text_in(raw["queue"], path, f"{key}.queue", 'queue = "debug"')
    if not re.match(r"^[A-Za-z0-9_.-]+$", j.queue):
        raise SettingsError(path, f"{key}.queue", f"{j.queue!r} is not a partition name",
                            'write the name only, e.g. queue = "debug"')
    if "account" in raw:
        j.account = _text_in(raw["account"], path, f"{key}.account", 'account = "proj123"')
        if not re.match(r"^[A-Za-z0-9_.-]+$", j.account):
            raise SettingsError(path, f"{key}.account", f"{j.account!r} is not an account name",
                                'write the name only, e.g. account = "proj123"')
    if "walltime" in raw:
        j.walltime = str(raw["walltime"]).strip() if isinstance(raw["walltime"], str) else raw["walltime"]
        try:
            wall = walltime_seconds(j.walltime) if isinstance(j.walltime, str) else 0
        except ValueError:
            wall = 0
        if wall <= 0:
            raise SettingsError(path, f"{key}.walltime", f"{raw['walltime']!r} is not a walltime",
                                'write HH:MM:SS or D-HH:MM:SS, e.g. walltime = "01:00:00"')
    if "lifetime" in raw:
        j.lifetime = _count_in(raw["lifetime"], path, f"{key}.lifetime", "lifetime = 3300 (seconds)")
        if j.lifetime >= j.walltime_seconds:
            raise SettingsError(path, f"{key}.lifetime", f"{j.lifetime} s is not shorter than the walltime "
                                f"{j.walltime}", "give the workers a lifetime below the walltime, or leave it out")
    if "cores" in raw:
        j.cores = _count_in(raw["cores"], path, f"{key}.cores", "cores = 4")
    if "processes" in raw:
        j.processes = _count_in(raw["processes"], path, f"{key}.processes", "processes = 1")
    if j.cores % j.processes:
        raise SettingsError(path, f"{key}.processes", f"{j.processes} does not divide cores = {j.cores}",
                            "give each worker process the same number of threads, e.g. cores = 4, processes = 2")
    if "memory" in raw:
        if not isinstance(raw["memory"], str) or not _MEMORY.match(raw["memory"].strip()):
            raise SettingsError(path, f"{key}.memory", f"{raw['memory']!r} is not a memory size",
                                'write e.g. memory = "4GB" (units kB, MB, GB, TB or KiB, MiB, GiB)')
        j.memory = raw["memory"].strip()
    if "jobs" in raw:
        j.jobs = _count_in(raw["jobs"], path, f"{key}.jobs", "jobs = 2")
    if "minimum_jobs" in raw or "maximum_jobs" in raw:
        if "jobs" in raw:
            raise SettingsError(path, f"{key}.jobs", "is given with minimum_jobs / maximum_jobs",
                                "give jobs for a fixed size, or minimum_jobs and maximum_jobs for adaptive, not both")
        j.minimum_jobs = _count_in(raw.get("minimum_jobs", 1), path, f"{key}.minimum_jobs", "minimum_jobs = 1")
        if "maximum_jobs" not in raw:
            raise SettingsError(path, f"{key}.maximum_jobs", "is missing",
                                "give maximum_jobs with minimum_jobs, e.g. maximum_jobs = 4")
        j.maximum_jobs = _count_in(raw["maximum_jobs"], path, f"{key}.maximum_jobs", "maximum_jobs = 4")
        if j.maximum_jobs < j.minimum_jobs:
            raise SettingsError(path, f"{key}.maximum_jobs", f"{j.maximum_jobs} is below minimum_jobs = "
                                f"{j.minimum_jobs}", "give maximum_jobs >= minimum_jobs")
        j.jobs = j.minimum_jobs
    if "scale_down_after" in raw:
        j.scale_down_after = _count_in(raw["scale_down_after"], path, f"{key}.scale_down_after",
                                       "scale_down_after = 60 (seconds)")
    if "job_extra_directives" in raw:
        extra = raw["job_extra_directives"]
        if not isinstance(extra, list) or not all(isinstance(x, str) and x.strip() and "\n" not in x
                                                  and "\r" not in x for x in extra):
            raise SettingsError(path, f"{key}.job_extra_directives", f"{extra!r} is not a list of one-line strings",
                                'write e.g. job_extra_directives = ["--qos=normal", "--constraint=cpu"]')
        j.job_extra_directives = [x.strip() for x in extra]
    if "python" in raw:
        j.python = _text_in(raw["python"], path, f"{key}.python", 'python = "/shared/envs/flight/bin/python"')
    if "shared" in raw:
        j.shared = _text_in(raw["shared"], path, f"{key}.shared", 'shared = "/shared/switchyard"')
    return j


def _table_of(raw: Any, path: Path | None, key: str, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SettingsError(path, key, "must be a table", f"write it as [{key}]")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise SettingsError(path, f"{key}.{unknown[0]}", "unknown key", f"use one of: {', '.join(known)}")
    return raw


def _port_in(value: Any, path: Path | None, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise SettingsError(path, key, f"{value!r} is not a port number", "write a whole number 1..65535, e.g. 22")
    return value


def _user_in(value: Any, path: Path | None, key: str) -> str:
    if not isinstance(value, str) or not _SSH_USER.match(value):
        raise SettingsError(path, key, f"{value!r} is not a user name",
                            'write the login name only, e.g. user = "ops" (no @host, no spaces)')
    return value


def _text_in(value: Any, path: Path | None, key: str, example: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise SettingsError(path, key, f"{value!r} is not a non-empty string", f"write e.g. {example}")
    return value.strip()


def check_ssh(raw: Any, path: Path | None = None) -> SSHSettings:
    """Validate ``[cluster.ssh]`` (user, port, key_path, known_hosts)."""
    raw = _table_of(raw, path, "cluster.ssh", SSH_KEYS)
    ssh = SSHSettings()
    if "user" in raw:
        ssh.user = _user_in(raw["user"], path, "cluster.ssh.user")
    if "port" in raw:
        ssh.port = _port_in(raw["port"], path, "cluster.ssh.port")
    if "key_path" in raw:
        ssh.key_path = _text_in(raw["key_path"], path, "cluster.ssh.key_path", 'key_path = "~/.ssh/id_ed25519"')
    if "known_hosts" in raw:
        ssh.known_hosts = _text_in(raw["known_hosts"], path, "cluster.ssh.known_hosts",
                                   'known_hosts = "~/.ssh/known_hosts"')
    return ssh


def check_tls(raw: Any, path: Path | None = None) -> TLSSettings:
    """Validate ``[cluster.tls]`` (ca_file, cert_file, key_file: all three or none; allow_plaintext)."""
    raw = _table_of(raw, path, "cluster.tls", TLS_KEYS)
    tls = TLSSettings()
    for key in ("ca_file", "cert_file", "key_file"):
        if key in raw:
            setattr(tls, key, _text_in(raw[key], path, f"cluster.tls.{key}", f'{key} = "/etc/dask/{key[:-5]}.pem"'))
    given = [k for k in ("ca_file", "cert_file", "key_file") if getattr(tls, k)]
    if given and len(given) < 3:
        missing = [k for k in ("ca_file", "cert_file", "key_file") if k not in given][0]
        raise SettingsError(path, f"cluster.tls.{missing}", "is missing",
                            "give ca_file, cert_file and key_file together (mutual TLS needs all three)")
    if "allow_plaintext" in raw:
        if not isinstance(raw["allow_plaintext"], bool):
            raise SettingsError(path, "cluster.tls.allow_plaintext", f"{raw['allow_plaintext']!r} is not true/false",
                                "write allow_plaintext = true or allow_plaintext = false")
        tls.allow_plaintext = raw["allow_plaintext"]
    return tls


def check_hosts(raw: Any, path: Path | None = None) -> dict[str, HostSettings]:
    """Validate ``[cluster.hosts."<host>"]`` tables (port, user, root, python)."""
    if not isinstance(raw, dict):
        raise SettingsError(path, "cluster.hosts", "must be a table", 'write it as [cluster.hosts."<host>"]')
    out: dict[str, HostSettings] = {}
    for host, values in raw.items():
        try:
            host = check_host(host, "cluster.hosts")
        except WorkersError as e:
            raise SettingsError(path, "cluster.hosts", str(e).split(": ", 1)[1]) from None
        key = f'cluster.hosts."{host}"'
        values = _table_of(values, path, key, HOST_KEYS)
        h = HostSettings()
        if "port" in values:
            h.port = _port_in(values["port"], path, f"{key}.port")
        if "user" in values:
            h.user = _user_in(values["user"], path, f"{key}.user")
        if "root" in values:
            h.root = _text_in(values["root"], path, f"{key}.root", 'root = "/opt/switchyard"')
        if "python" in values:
            h.python = _text_in(values["python"], path, f"{key}.python", 'python = "/usr/bin/python3.11"')
        out[host] = h
    return out


def _scheduler_in(raw: dict, path: Path | None) -> str:
    try:
        return check_scheduler(raw["scheduler"], "cluster.scheduler")
    except SettingsError as e:
        raise SettingsError(path, "cluster.scheduler", e.problem, e.fix) from None


def load_settings(path: Path | str) -> AppSettings:
    path = Path(path)
    if not path.is_file():
        raise SettingsError(path, None, "file not found", "create it, or check the app name and apps folder")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SettingsError(path, None, f"not UTF-8 text ({e.reason} at byte {e.start})",
                            "save the file as UTF-8") from None
    return parse_settings(text, path)


def _set_table(doc: Any, name: str) -> Table:
    if name not in doc:
        doc[name] = tomlkit.table()
    return doc[name]


def save_settings(settings: AppSettings) -> None:
    """Re-validate the document and write it atomically."""
    text = tomlkit.dumps(settings.doc)
    parse_settings(text, settings.path)  # never write what we could not read back
    atomic_write_text(settings.path, text)


def update_args(path: Path | str, args: dict[str, Any]) -> AppSettings:
    """Write ``args`` into ``[args]`` (keys not given keep their value); comments kept."""
    settings = load_settings(path)
    table = _set_table(settings.doc, "args")
    for key, value in args.items():
        table[key] = value
    save_settings(settings)
    return load_settings(path)


def update_cluster(path: Path | str, **changes: Any) -> AppSettings:
    """Change ``[cluster]`` keys (pool, cython, dask, rapids, scheduler, pool_size, workers,
    service_health, ssh, hosts, tls, kind, jobqueue); ``ssh``, ``hosts``, ``tls`` and ``jobqueue``
    replace their whole table.

    Validates the new values first; the file is untouched when any is invalid.
    """
    settings = load_settings(path)
    merged = {**_plain(settings.doc.get("cluster", {})), **changes}
    check_cluster(merged, Path(path))
    cluster = _set_table(settings.doc, "cluster")
    for key, value in changes.items():
        if key == "workers":
            workers = tomlkit.table()
            for host, count in value.items():
                workers[host] = count
            cluster["workers"] = workers
        elif key in ("ssh", "tls", "jobqueue"):
            table = tomlkit.table()
            for k, v in value.items():
                table[k] = v
            cluster[key] = table
        elif key == "hosts":
            hosts = tomlkit.table(is_super_table=True)
            for host, values in value.items():
                table = tomlkit.table()
                for k, v in values.items():
                    table[k] = v
                hosts[host] = table
            cluster["hosts"] = hosts
        elif key == "service_health":
            health = cluster.get("service_health")
            if health is None:
                cluster["service_health"] = tomlkit.table()
                health = cluster["service_health"]
            for k, v in value.items():
                health[k] = v
        else:
            cluster[key] = value
    save_settings(settings)
    return load_settings(path)


def update_section(path: Path | str, name: str, values: dict[str, Any]) -> AppSettings:
    """Write ``values`` into the table ``[name]`` (a dotted name nests: ``analysis.chart``).

    A value of None removes its key; keys not given keep their value; comments and order
    are kept. ``[args]`` and ``[cluster]`` have their own validating writers and are refused.
    """
    parts = str(name).split(".")
    if not all(p.strip() for p in parts):
        raise SettingsError(path, name, "is not a table name", "write e.g. analysis or analysis.chart")
    if parts[0] in ("args", "cluster"):
        raise SettingsError(path, name, "has its own writer", "use update_args or update_cluster")
    settings = load_settings(path)
    table: Any = settings.doc
    for part in parts:
        if part not in table:
            table[part] = tomlkit.table()
        table = table[part]
        if not isinstance(table, dict):
            raise SettingsError(path, name, f"'{part}' is a value, not a table",
                                f"remove or rename the key '{part}'")
    for key, value in values.items():
        if value is None:
            if key in table:
                del table[key]
        else:
            table[key] = value
    save_settings(settings)
    return load_settings(path)
