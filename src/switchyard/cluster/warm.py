"""Warm clusters: a scheduler and ``dask worker`` processes that stay up between runs.

The warm front door over the cluster layer (:mod:`switchyard.cluster.spec`): ``up``
builds the :class:`~switchyard.cluster.spec.ClusterSpec` of what is wanted (workers per
host from ``[cluster.workers]``, the scheduler here or on the scheduler host, workers
here or over SSH) and lets a :class:`~switchyard.cluster.deployment.Deployment`
reconcile it with what the record and the scheduler say is running: it starts what is
missing, stops what is no longer wanted and waits until every worker has joined. What
runs is recorded in ``<workspace>/clusters/<app>.json`` so that ``status``, ``down`` and
RUN find it again from any process. RUN uses a warm cluster instead of cold-starting
one (:func:`choose_cluster`).

Security: the scheduler and its dashboard listen on the address written in
``[cluster].scheduler`` only; ``0.0.0.0`` is refused (workers need one address to reach).
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from switchyard.app import AppEnv
from switchyard.cluster import remote, ssh, tls
from switchyard.cluster.addresses import answers, is_local_host, loopback_of, port_is_free, slots, split_address
from switchyard.cluster.deployment import Deployment, names_of, scheduler_info
from switchyard.cluster.hosts import Hosts
from switchyard.cluster.procs import Process, close_all
from switchyard.cluster.record import ClusterRecord, cluster_lock, read_record, record_path, save_record
from switchyard.cluster.spec import ClusterSpec, HostSpec
from switchyard.exceptions import ClusterError, GuardError, HostError
from switchyard.logs import LineSink
from switchyard.settings import ClusterSettings, check_scheduler, check_workers, load_settings

DEATH_TIMEOUT = 60  # a worker whose scheduler vanished exits after this many seconds
Line = Callable[[str], None]
__all__ = ["answers", "up", "up_sync", "down", "down_sync", "status", "status_of", "traffic_of", "trust_sync",
           "scheduler_runs_here", "workers_of", "worker_names", "choose_cluster"]


def scheduler_runs_here(host: str) -> bool:
    """True when the scheduler host is this machine (a loopback name or one of its own addresses).

    127.0.0.2 and up stand for other hosts (as in the tests), like in ``is_local_host``.
    """
    if is_local_host(host) or host in ("0.0.0.0", "::"):
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return False
    except ValueError:
        pass
    return port_is_free(host, 0) if _resolves(host) else False


def _resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
        return True
    except OSError:
        return False


def _check_reachable(scheduler_host: str, hosts: list[str]) -> None:
    if scheduler_host in ("0.0.0.0", "::"):
        raise ClusterError(f"scheduler address {scheduler_host}: workers cannot connect to 'every "
                           "interface': write this machine's address on the hosts' network in "
                           "[cluster].scheduler")
    try:
        loopback = ipaddress.ip_address(scheduler_host).is_loopback
    except ValueError:
        loopback = scheduler_host == "localhost"
    if not loopback:
        return
    for host in hosts:
        try:
            same_machine = ipaddress.ip_address(host).is_loopback
        except ValueError:
            same_machine = host == "localhost"
        if not same_machine:
            raise ClusterError(
                f"scheduler address {scheduler_host} is this machine's loopback: host '{host}' cannot "
                "reach it: set [cluster].scheduler to an address the hosts can reach, e.g. this "
                "machine's 10.x address:8786"
            )


def worker_names(workers: dict[str, int]) -> list[tuple[str, str]]:
    """(host, name) of every wanted worker; names are ``<host>-<i>`` like the plan's slots."""
    return slots(workers)


def _layout(app_env: AppEnv, cid: str, root: str | None) -> str:
    """The folder of the cluster's files on a host (its install root remotely, the workspace here)."""
    if root is None:
        return str(app_env.home / "clusters" / f"{app_env.app}-{cid}")
    return f"{root}/clusters/{app_env.app}/{cid}"


# ----------------------------------------------------------------------------- the spec

@dataclass
class _Plan:
    scheduler: str
    workers: dict[str, int]
    cython: bool
    idle_timeout: float | None


async def _ensure_installed(app_env: AppEnv, cluster: ClusterSettings, hosts: list[str], cython: bool,
                            say: Line) -> dict[str, dict]:
    """Each remote host's install folder and env; hosts whose install is missing or stale are installed."""
    from switchyard.cluster.env import install_local, is_current

    if not is_current(app_env, cython):
        say(f"the worker environment of '{app_env.app}' here is missing or stale: installing it first")
        res = await asyncio.to_thread(install_local, app_env, cython=cython, on_line=say)
        if not res.ok:
            raise ClusterError(f"install of '{app_env.app}' here failed: {res.error}: see {res.log_path}")
    remote_hosts = [h for h in hosts if not is_local_host(h)]
    if not remote_hosts:
        return {}
    with LineSink(app_env.home / "envs" / app_env.app / "install.log", say) as sink:
        bundle = await asyncio.to_thread(remote.prepare_bundle, app_env, cython, sink)
        results = await asyncio.gather(*(
            remote.install_host(ssh.access_for(cluster, h), bundle, sink, quick=True) for h in remote_hosts))
    failed = [r for r in results if not r.ok]
    if failed:
        raise HostError(failed[0].host, failed[0].reason or ssh.NOT_READY,
                        f"cannot start workers there: {failed[0].message}",
                        "fix it and run `switchyard install APP`, then start the cluster again")
    return {r.host: {"root": r.root, "python": f"{r.env_dir}/bin/python"} for r in results}


def _host_spec(app_env: AppEnv, host: str, here: bool, cid: str, cython: bool, installed: dict) -> HostSpec:
    """How the warm cluster's processes run on ``host``: here (the app's env) or over SSH."""
    from switchyard.cluster.env import env_python, worker_environ

    if here:
        # The whole environment, not the caller's with a few changes: a warm worker runs app
        # code, so it gets the allow-list of switchyard.environ, never the caller's secrets.
        env = worker_environ(app_env, cython)
        unset: list[str] = []
        bind = loopback_of(host) if is_local_host(host) else host
        return HostSpec(python=str(env_python(app_env)), folder=_layout(app_env, cid, None), bind=bind,
                        env=env, inherit_env=False, unset=tuple(unset), tls=tls.workspace_certs(app_env.home))
    root = installed[host]["root"]
    python, env, unset = remote.remote_env(root, app_env.app, cython)
    folder = _layout(app_env, cid, root)
    return HostSpec(python=python, folder=folder, bind=host, env=env, unset=tuple(unset), remote=True,
                    tls=tls.Certs(f"{folder}/tls/ca.pem", f"{folder}/tls/cluster.pem", f"{folder}/tls/cluster.key"))


async def _ship_certs(app_env: AppEnv, spec: ClusterSpec, pool: Hosts, say: Line) -> None:
    """Put the workspace's certificates on every remote host of ``spec`` (over SSH, key 0600)."""
    mine = tls.workspace_certs(app_env.home)
    files = {"ca.pem": Path(mine.ca_file).read_bytes(), "cluster.pem": Path(mine.cert_file).read_bytes(),
             "cluster.key": Path(mine.key_file).read_bytes()}

    async def ship(host: str, where: HostSpec) -> None:
        found = await pool.get(host, where.python)
        await found.remote.write_private(files, where.tls.ca_file.rsplit("/", 1)[0])

    remote_hosts = {h: s for h, s in spec.hosts.items() if s.remote and s.tls}
    if remote_hosts:
        await asyncio.gather(*(ship(h, s) for h, s in remote_hosts.items()))
        say(f"cluster certificates on {', '.join(remote_hosts)} (mutual TLS)")


def cluster_spec(app_env: AppEnv, plan: _Plan, cid: str, installed: dict) -> ClusterSpec:
    """The :class:`ClusterSpec` of the app's warm cluster with id ``cid``."""
    sched_host = split_address(plan.scheduler)[0]
    hosts = {h: _host_spec(app_env, h, is_local_host(h), cid, plan.cython, installed) for h in plan.workers}
    if sched_host not in hosts:
        hosts[sched_host] = _host_spec(app_env, sched_host, scheduler_runs_here(sched_host), cid, plan.cython,
                                       installed)
    return ClusterSpec(scheduler=plan.scheduler, workers=dict(plan.workers), hosts=hosts,
                       idle_timeout=plan.idle_timeout, death_timeout=DEATH_TIMEOUT)


def _adopted(record: ClusterRecord, hosts: Hosts, spec: ClusterSpec | None = None) -> tuple[Process, list[Process]]:
    """The recorded scheduler and workers as processes (found again by pid + create time)."""
    def adopt(p) -> Process:
        python = record.pythons.get(p.host) or (spec.hosts[p.host].python if spec and p.host in spec.hosts
                                                else None)
        return Process.adopt(p, hosts, python=python, marker=record.marker)

    return adopt(record.scheduler), [adopt(w) for w in record.workers]


def _hosts_of(cluster: ClusterSettings, record: ClusterRecord | None, *here: str) -> Hosts:
    local = {p.host for p in ([record.scheduler, *record.workers] if record else []) if p.local}
    return Hosts(cluster, here=local | {h for h in here if h})


# ----------------------------------------------------------------------------- up

async def up(app_env: AppEnv, *, workers: dict[str, int] | None = None, scheduler: str | None = None,
             cython: bool | None = None, join_timeout: float = 60, idle_timeout: float | None = None,
             on_line: Line | None = None) -> dict:
    """Make the app's warm cluster match what is wanted; return its :func:`status`.

    Args:
        app_env: The app (its ``[cluster]`` settings give hosts, SSH access and the scheduler).
        workers: Host -> worker count (default ``[cluster.workers]``).
        scheduler: ``host:port`` of the scheduler (default ``[cluster].scheduler``); port 0 or a busy
            port on this machine means any free port.
        cython: Workers load the app's compiled build (default: the settings' cython bit).
        join_timeout: Seconds to wait for every started worker to join.
        idle_timeout: The scheduler (and then its workers) stops after this many idle seconds.
        on_line: Receives progress lines and the install log when a host needs installing.

    Raises:
        ClusterError: A foreign scheduler holds the address, a worker did not join in time
            (the message names it and its host), or a host cannot be reached (HostError).
    """
    say = on_line or (lambda line: None)
    settings = load_settings(app_env.settings_path)
    if settings.cluster.kind == "slurm":  # workers are batch jobs (cluster/jobqueue.py)
        from switchyard.cluster import jobqueue

        return await jobqueue.up(app_env, settings, scheduler, join_timeout, say)
    if settings.cluster.kind == "address":
        raise ClusterError(f"[cluster].kind = \"address\" in {app_env.settings_path}: switchyard uses the scheduler "
                           f"at {settings.cluster.scheduler} as is and starts none: start it there, or remove kind")
    plan = _Plan(
        scheduler=check_scheduler(scheduler if scheduler is not None else settings.cluster.scheduler),
        workers=check_workers(workers if workers is not None else settings.cluster.workers),
        cython=settings.cluster.cython if cython is None else cython, idle_timeout=idle_timeout,
    )
    with cluster_lock(app_env):
        return await _reconcile(app_env, settings.cluster, plan, join_timeout, say)


async def _reconcile(app_env: AppEnv, cluster: ClusterSettings, plan: _Plan, join_timeout: float,
                     say: Line) -> dict:
    record = read_record(app_env)
    alive = record is not None and answers(record.address)
    if not alive and answers(plan.scheduler):
        raise ClusterError(f"a Dask scheduler already answers at {plan.scheduler} and switchyard did not "
                           "start it: RUN uses it as is; to start a cluster here, stop it or change "
                           "[cluster].scheduler")
    if alive and tls.protocol_of(record.address) != "tls":
        raise ClusterError(f"the warm cluster of '{app_env.app}' at {record.address} was started before TLS and "
                           f"runs in plaintext: restart it (switchyard cluster down {app_env.app}, then up)")
    if alive and record.cython != plan.cython:
        raise ClusterError(f"the warm cluster of '{app_env.app}' runs with cython={record.cython}: "
                           f"stop it (switchyard cluster down {app_env.app}) to start one with "
                           f"cython={plan.cython}")
    sched_host = split_address(plan.scheduler)[0]
    here = scheduler_runs_here(sched_host)
    hosts = list(dict.fromkeys([*plan.workers, *([] if here else [sched_host])]))
    _check_reachable(sched_host, list(plan.workers))
    installed = await _ensure_installed(app_env, cluster, hosts, plan.cython, say)
    cid = record.id if alive else f"sy-{app_env.app}-{secrets.token_hex(6)}"
    await asyncio.to_thread(tls.ensure, app_env.home)
    spec = cluster_spec(app_env, plan, cid, installed)
    pool = _hosts_of(cluster, record, sched_host if here else "")
    scheduler, workers = _adopted(record, pool, spec) if record is not None else (None, [])
    deployment = Deployment(spec, pool, say, scheduler=scheduler, workers=workers,
                            address=record.address if record else None,
                            dashboard=record.dashboard if record else None, home=app_env.home)
    try:
        await _ship_certs(app_env, spec, pool, say)
        await deployment.apply(join_timeout)
    finally:
        await pool.close()
    pythons = dict(record.pythons) if alive else {}
    pythons.update({h: s.python for h, s in spec.hosts.items() if s.remote})
    assert deployment.scheduler is not None and deployment.scheduler.recorded is not None
    saved = ClusterRecord(
        app=app_env.app, id=cid, address=deployment.address or "", dashboard=deployment.dashboard,
        scheduler=deployment.scheduler.recorded, wanted=dict(plan.workers), cython=plan.cython,
        started_at=record.started_at if alive else time.time(),
        workers=[p.recorded for p in deployment.workers.values() if p.recorded is not None],
        pythons=pythons, idle_timeout=record.idle_timeout if alive else plan.idle_timeout)
    save_record(app_env, saved)
    return await asyncio.to_thread(status_of, app_env, saved)


def _joined_names(address: str) -> dict[str, str]:
    """Worker name -> address of the workers connected to the scheduler."""
    try:
        return names_of(scheduler_info(address))
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"cannot reach the scheduler at {address}: {e}: see its log") from e


async def _stop_all(cluster: ClusterSettings, record: ClusterRecord, say: Line) -> dict[str, str]:
    pool = _hosts_of(cluster, record)
    try:
        scheduler, workers = _adopted(record, pool)
        # Workers first, so that they do not spend their death timeout reconnecting.
        result = await close_all(workers)
        result.update(await close_all([scheduler]))
        for name, state in result.items():
            if state == "unreachable":
                say(f"{name}: its host cannot be reached: it stays recorded; run down again later")
        return result
    finally:
        await pool.close()


# ----------------------------------------------------------------------------- status / down / RUN

def status_of(app_env: AppEnv, record: ClusterRecord | None, scheduler: str | None = None) -> dict:
    """What runs: ``state`` up / degraded / down / existing, workers per host with memory and tasks."""
    address = record.address if record else scheduler
    out: dict = {"app": app_env.app, "state": "down", "address": address,
                 "protocol": tls.protocol_of(address) if address else None, "certificate": None,
                 "dashboard": record.dashboard if record else None, "id": record.id if record else None,
                 "started_at": record.started_at if record else None, "hosts": {}, "workers": 0}
    if record is not None and record.kind == "slurm":
        out["kind"], out["jobs"] = "slurm", []
    if not address or not answers(address):
        return _orphan_jobs(app_env, out)
    try:
        info = scheduler_info(address, processing=True)
    except (OSError, TimeoutError):
        return _orphan_jobs(app_env, out)
    wanted = record.wanted if record else {}
    host_of = {name: host for host, name in worker_names(wanted)}
    pids = {w.name: w.pid for w in record.workers} if record else {}
    hosts: dict[str, dict] = {h: {"wanted": n, "workers": [], "missing": []} for h, n in wanted.items()}
    for addr, w in sorted(info.get("workers", {}).items(), key=lambda kv: str(kv[1].get("name"))):
        name = str(w.get("name"))
        host = host_of.get(name) or str(w.get("host"))
        metrics = w.get("metrics", {})
        hosts.setdefault(host, {"wanted": None, "workers": [], "missing": []})["workers"].append({
            "name": name, "address": addr, "pid": pids.get(name), "memory": metrics.get("memory"),
            "memory_limit": w.get("memory_limit"), "nthreads": w.get("nthreads"),
            "processing": info["processing"].get(addr, 0), "tasks": metrics.get("task_counts", {}),
        })
    for name, host in host_of.items():
        if not any(x["name"] == name for x in hosts[host]["workers"]):
            hosts[host]["missing"].append(name)
    dash = (info.get("services") or {}).get("dashboard")
    if dash and not out["dashboard"]:
        out["dashboard"] = f"http://{split_address(address)[0]}:{dash}/status"
    if out["protocol"] == "tls":
        out["certificate"] = _certificate(app_env, record)
    missing = sum(len(h["missing"]) for h in hosts.values())
    if record is not None and record.kind == "slurm":
        return _batch_status(app_env, out, info, hosts)
    out.update(state=("existing" if record is None else "degraded" if missing else "up"), hosts=hosts,
               workers=sum(len(h["workers"]) for h in hosts.values()))
    return out


def _orphan_jobs(app_env: AppEnv, out: dict) -> dict:
    """A SLURM cluster whose scheduler is gone may still have jobs queued: list them (down cancels them)."""
    if out.get("kind") == "slurm":
        from switchyard.cluster import jobqueue

        out["jobs"] = jobqueue.job_rows(app_env, {})
    return out


def _batch_status(app_env: AppEnv, out: dict, info: dict, hosts: dict) -> dict:
    """A SLURM cluster's status: its jobs (ids, states, nodes, workers) and up once the minimum joined."""
    from switchyard.cluster import jobqueue

    cluster = load_settings(app_env.settings_path).cluster
    jobs = jobqueue.job_rows(app_env, info.get("workers", {}))
    workers = sum(len(h["workers"]) for h in hosts.values())
    minimum = jobqueue.wanted_of(cluster)[0] if cluster.jobqueue else 1
    out.update(kind="slurm", tag=jobqueue.tag_of(app_env), jobs=jobs, hosts=hosts, workers=workers, state="up" if workers >= minimum else "degraded")
    return out


def _certificate(app_env: AppEnv, record: ClusterRecord | None) -> dict:
    """The workspace certificate's expiry, and whether the cluster started before it was made
    (then its processes still present the previous one until they restart)."""
    cert = tls.info(app_env.home)
    stale = False
    if record is not None and cert.get("not_before"):
        import datetime as dt

        made = dt.datetime.fromisoformat(cert["not_before"]).timestamp() + 300  # backdated 5 min
        stale = record.started_at < made
    return {**cert, "restart_needed": stale}


def traffic_of(st: dict) -> str:
    """One line on how the cluster of status ``st`` talks: mutual TLS and its certificate's
    expiry, or plaintext (a cluster started before TLS, or an external one allowed so)."""
    if st.get("protocol") != "tls":
        return (f"{st.get('protocol') or 'tcp'}: PLAINTEXT, unauthenticated"
                + (f" (started before TLS: restart it with `switchyard cluster down {st['app']}` and up)"
                   if st.get("id") else ""))
    cert = st.get("certificate") or {}
    text = f"tls: mutual TLS, certificate expires {cert.get('expires') or 'unknown'}"
    if cert.get("restart_needed"):
        text += " (renewed after this cluster started: restart it to present the new one)"
    return text


def status(app_env: AppEnv) -> dict:
    """The app's warm cluster (or the scheduler at ``[cluster].scheduler`` when none was started)."""
    record = read_record(app_env)
    cluster = None if record else load_settings(app_env.settings_path).cluster
    if cluster is not None and cluster.kind == "slurm":  # nothing recorded: jobs a crashed caller left, if any
        out = status_of(app_env, None, None)
        out["kind"] = "slurm"
        return _orphan_jobs(app_env, out)
    return status_of(app_env, record, cluster.scheduler if cluster else None)


async def down(app_env: AppEnv, on_line: Line | None = None) -> dict:
    """Stop every process of the app's warm cluster and forget it.

    Returns:
        ``{"app", "stopped": {name: outcome}, "left": [names still running]}``; an outcome is
        stopped, killed (did not stop in time), gone (had already exited) or unreachable.
    """
    say = on_line or (lambda line: None)
    with cluster_lock(app_env):
        record = read_record(app_env)
        settings = load_settings(app_env.settings_path)
        batch = settings.cluster.kind == "slurm" or (record is not None and record.kind == "slurm")
        if record is None and not batch:
            say(f"no cluster of '{app_env.app}' is recorded: nothing to stop")
            return {"app": app_env.app, "stopped": {}, "left": []}
        result = await _stop_all(settings.cluster, record, say) if record is not None else {}
        left = [name for name, state in result.items() if state in ("left", "unreachable")]
        for name, state in result.items():
            say(f"{name}: {state}")
        out: dict = {"app": app_env.app, "stopped": result, "left": left}
        if batch:  # after the scheduler (its keeper submits no more): every job of the tag, a crashed caller's too
            from switchyard.cluster import jobqueue

            jobqueue.check_tools(app_env)
            out["jobs_cancelled"] = await asyncio.to_thread(jobqueue.cancel_all, jobqueue.tag_of(app_env), say)
            left += [f"job {j['id']}" for j in await asyncio.to_thread(jobqueue.jobs_of, jobqueue.tag_of(app_env))]
        if not left and record is not None:
            record_path(app_env).unlink(missing_ok=True)
        return out


def workers_of(address: str) -> dict[str, int]:
    """Host -> number of workers connected to the scheduler at ``address`` (named or not)."""
    counts: dict[str, int] = {}
    try:
        info = scheduler_info(address)
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"something answers at {address} but it is not a Dask scheduler ({e}): "
                           "fix [cluster].scheduler") from e
    for addr, w in info.get("workers", {}).items():
        host = str(w.get("host") or split_address(addr)[0])
        counts[host] = counts.get(host, 0) + 1
    return counts


def choose_cluster(app_env: AppEnv, scheduler: str, workers: dict[str, int], cython: bool,
                   on_line: Line, start: bool = True) -> tuple[str, str, dict[str, int], str]:
    """Where a dask-mode run executes: ``(cluster, scheduler address, workers to plan on, origin)``.

    In order: the app's warm cluster when it is up; any scheduler answering at ``scheduler``
    (used as is, the plan made on the workers it has); a local cluster the driver starts when
    every host is this machine; otherwise (with ``start``) a cluster started now over SSH that
    stays up (a cold start; it stops itself after 10 idle minutes). ``origin`` says where the
    workers come from: ``"warm cluster"``, ``"scheduler <address>"`` or ``"settings"``.
    Without ``start`` (a preview) nothing is started: the plan is made on ``workers``, which
    is what the cold start would start.
    """
    record = read_record(app_env)
    kind = load_settings(app_env.settings_path).cluster.kind
    if kind == "slurm":
        return _choose_batch(app_env, record, scheduler, cython, on_line, start)
    if record is not None and answers(record.address):
        if record.wanted != workers:
            on_line(f"the warm cluster runs {record.wanted}, not {workers}: planning on its workers")
        if record.cython != cython:
            on_line(f"note: the warm cluster's workers run with cython={record.cython} "
                    f"(restart it with `switchyard cluster up {app_env.app}` to change that)")
        if tls.protocol_of(record.address) != "tls":
            on_line(f"note: the warm cluster of '{app_env.app}' runs in plaintext (started before TLS): restart "
                    f"it (switchyard cluster down {app_env.app}, then up) to encrypt and authenticate its traffic")
        on_line(f"using the warm cluster of '{app_env.app}' at {record.address}")
        return "existing", record.address, dict(record.wanted), "warm cluster"
    if answers(scheduler):
        settings_tls = load_settings(app_env.settings_path).cluster.tls
        scheduler = tls.external_address(scheduler, settings_tls)
        tls.remember_external(scheduler, settings_tls, app_env.home)
        seen = workers_of(scheduler)
        on_line(f"using the running Dask scheduler at {scheduler} ({sum(seen.values())} workers)")
        if not seen:
            raise ClusterError(f"the Dask scheduler at {scheduler} has no workers: start some, or point "
                               "[cluster].scheduler at another cluster")
        names = {n for _, n in worker_names(workers)}
        joined = set(_joined_names(scheduler))
        if names == joined:
            return "existing", scheduler, dict(workers), "settings"
        return "existing", scheduler, seen, f"scheduler {scheduler}"
    if kind == "address":
        raise ClusterError(f"[cluster].kind = \"address\" in {app_env.settings_path}: nothing answers at {scheduler}: "
                           "start the scheduler there, or fix [cluster].scheduler")
    if all(is_local_host(h) for h in workers):
        if start:
            tls.ensure(app_env.home)  # here, where cryptography is: the run's driver only reads them
        return "local", scheduler, dict(workers), "settings"
    if not start:
        return "ssh", scheduler, dict(workers), "settings"
    remote_hosts = ", ".join(h for h in workers if not is_local_host(h))
    on_line(f"no cluster is up for hosts {remote_hosts}: starting one (cold start); it stays up for the next "
            f"runs and stops after 10 idle minutes, or with `switchyard cluster down {app_env.app}`")
    st = asyncio.run(up(app_env, workers=workers, scheduler=scheduler, cython=cython, idle_timeout=600,
                        on_line=on_line))
    return "existing", st["address"], dict(workers), "settings"


def _choose_batch(app_env: AppEnv, record: ClusterRecord | None, scheduler: str, cython: bool, on_line: Line,
                  start: bool) -> tuple[str, str, dict[str, int], str]:
    """``kind = "slurm"``: plan on the workers of the jobs that joined (adaptive: the rest join
    as they come); with nothing up, RUN starts the cluster (a preview plans on the minimum)."""
    from switchyard.cluster import jobqueue

    cluster = load_settings(app_env.settings_path).cluster
    if record is None or record.kind != "slurm" or not answers(record.address):
        if not start:
            minimum = jobqueue.wanted_of(cluster)[0]
            on_line(f"no SLURM cluster of '{app_env.app}' is up: planning on its minimum of {minimum} worker(s); "
                    f"start it with `switchyard cluster up {app_env.app}`")
            return "ssh", scheduler, {"slurm-job": minimum}, "slurm settings"
        on_line(f"no SLURM cluster of '{app_env.app}' is up: starting one (it stays up for the next runs; "
                f"`switchyard cluster down {app_env.app}` stops it and cancels its jobs)")
        st = asyncio.run(up(app_env, cython=cython, on_line=on_line))
        address = st["address"]
    else:
        address = record.address
        if record.cython != cython:
            on_line(f"note: the SLURM cluster's workers run with cython={record.cython}")
    seen = workers_of(address)
    if not seen:
        raise ClusterError(f"no worker job of '{app_env.app}' has joined the scheduler at {address} yet: "
                           f"`switchyard cluster status {app_env.app}` lists the jobs; run again once one runs")
    on_line(f"using the SLURM cluster of '{app_env.app}' at {address} ({sum(seen.values())} worker(s) of its jobs"
            + ("; more join as the work needs them" if cluster.jobqueue and cluster.jobqueue.adaptive else "") + ")")
    return "existing", address, seen, "slurm jobs"


# ----------------------------------------------------------------------------- sync faces

def up_sync(app_env: AppEnv, **kwargs) -> dict:
    """:func:`up` for callers without an event loop (CLI, UI)."""
    return asyncio.run(up(app_env, **kwargs))


def down_sync(app_env: AppEnv, on_line: Line | None = None) -> dict:
    """:func:`down` for callers without an event loop (CLI, UI)."""
    return asyncio.run(down(app_env, on_line))


def trust_sync(app_env: AppEnv, host: str | None, fingerprint: str | None) -> dict:
    """Record the key of ``host``, one of the app's remote hosts, in known_hosts when it
    presents the key whose SHA256 ``fingerprint`` the operator confirmed.

    Raises:
        GuardError: no host or fingerprint given, or a host that is not one of the app's.
        HostError: see :func:`switchyard.cluster.ssh.trust_host`.
    """
    cluster = load_settings(app_env.settings_path).cluster
    scheduler_host = split_address(cluster.scheduler)[0]
    extra = [] if scheduler_runs_here(scheduler_host) else [scheduler_host]
    remote = list(dict.fromkeys(h for h in [*cluster.workers, *extra] if not is_local_host(h)))
    if not host:
        raise GuardError(f"name the host to trust: switchyard cluster trust {app_env.app} HOST --fingerprint "
                         f"SHA256:... (remote hosts of '{app_env.app}': {', '.join(remote) or 'none'})")
    if host not in remote:
        raise GuardError(f"'{host}' is not a remote host of '{app_env.app}' (its remote hosts: "
                         f"{', '.join(remote) or 'none'}): add it to [cluster.workers] in "
                         f"{app_env.settings_path} first")
    ssh.check_fingerprint(fingerprint)
    return asyncio.run(ssh.trust_host(ssh.access_for(cluster, host), fingerprint))
