"""Warm clusters: a scheduler and ``dask worker`` processes that stay up between runs.

``up`` is one idempotent reconcile step: it compares what is wanted (workers per host
from ``[cluster.workers]``) with what the record and the scheduler say is running,
starts what is missing (the scheduler here or on the scheduler host, workers here or
over SSH), stops what is no longer wanted and waits until every worker has joined.
What runs is recorded in ``<workspace>/clusters/<app>.json`` so that ``status``,
``down`` and RUN find it again from any process. RUN uses a warm cluster instead of
cold-starting one (:func:`choose_cluster`).

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
from typing import Callable

from switchyard.app import AppEnv
from switchyard.cluster import procs, remote, ssh
from switchyard.cluster.addresses import answers, is_local_host, port_is_free, slots, split_address
from switchyard.cluster.record import ClusterRecord, Proc, cluster_lock, read_record, record_path, save_record
from switchyard.exceptions import ClusterError, HostError
from switchyard.logs import LineSink
from switchyard.settings import ClusterSettings, check_scheduler, check_workers, load_settings

DEATH_TIMEOUT = 60  # a worker whose scheduler vanished exits after this many seconds
Line = Callable[[str], None]


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


# ----------------------------------------------------------------------------- connections

class _Hosts:
    """One shell per host for the length of an action: this machine's, or an SSH connection."""

    def __init__(self, cluster: ClusterSettings):
        self.cluster = cluster
        self._shells: dict[str, procs.Shell] = {}

    async def shell(self, host: str) -> procs.Shell:
        if host not in self._shells:
            if is_local_host(host):
                self._shells[host] = procs.LocalShell(host)
            else:
                self._shells[host] = await ssh.connect(ssh.access_for(self.cluster, host))
        return self._shells[host]

    async def close(self) -> None:
        for shell in self._shells.values():
            if isinstance(shell, ssh.Remote):
                await shell.close()
        self._shells.clear()


def _layout(app_env: AppEnv, host: str, cid: str, root: str | None) -> str:
    """The folder of the cluster's files on ``host`` (its install root remotely, the workspace here)."""
    if root is None:
        return str(app_env.home / "clusters" / f"{app_env.app}-{cid}")
    return f"{root}/clusters/{app_env.app}/{cid}"


# ----------------------------------------------------------------------------- up

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
    if record is not None and not answers(record.address):
        say(f"the recorded cluster at {record.address} is gone: cleaning up after it")
        await _stop_all(cluster, record, say)
        record = None
    sched_host, _ = split_address(plan.scheduler)
    if record is None and answers(plan.scheduler):
        raise ClusterError(f"a Dask scheduler already answers at {plan.scheduler} and switchyard did not "
                           "start it: RUN uses it as is; to start a cluster here, stop it or change "
                           "[cluster].scheduler")
    if record is not None and record.cython != plan.cython:
        raise ClusterError(f"the warm cluster of '{app_env.app}' runs with cython={record.cython}: "
                           f"stop it (switchyard cluster down {app_env.app}) to start one with "
                           f"cython={plan.cython}")
    hosts = list(dict.fromkeys([*plan.workers, *([] if scheduler_runs_here(sched_host) else [sched_host])]))
    _check_reachable(sched_host, list(plan.workers))
    installed = await _ensure_installed(app_env, cluster, hosts, plan.cython, say)
    conns = _Hosts(cluster)
    kept: list[Proc] = list(record.workers) if record is not None else []
    new_record = record is None
    try:
        if record is None:
            record = await _start_scheduler(app_env, conns, plan, installed, say)
        record.pythons.update({h: v["python"] for h, v in installed.items()})
        joined = await asyncio.to_thread(_joined_names, record.address)
        wanted = {name: host for host, name in worker_names(plan.workers)}
        unwanted = [w for w in record.workers if w.name not in wanted]
        if unwanted:
            say(f"stopping {len(unwanted)} worker(s) no longer wanted: {', '.join(w.name for w in unwanted)}")
        lost = [w for w in record.workers if w.name in wanted and w.name not in joined]
        if lost:
            say(f"worker(s) {', '.join(w.name for w in lost)} left the cluster: starting them again")
        await _stop(conns, record, unwanted + lost)
        kept = [w for w in record.workers if w.name in wanted and w.name in joined]
        record.workers = list(kept)
        missing = [(host, name) for name, host in wanted.items() if name not in joined]
        new = await _start_workers(app_env, conns, record, missing, installed, say) if missing else []
        record.workers += new
        record.wanted = dict(plan.workers)
        await _wait_joined(conns, record, new, join_timeout, say)
        save_record(app_env, record)
    except BaseException:
        # Whatever this call started goes again; what ran before it is left as it was.
        begun = [w for w in record.workers if w not in kept] if record is not None else []
        begun += [record.scheduler] if new_record and record is not None else []
        if begun:
            say(f"stopping what this start began: {', '.join(p.name for p in begun)}")
            try:
                await _stop(conns, record, [p for p in begun if p.name != "scheduler"])
                await _stop(conns, record, [p for p in begun if p.name == "scheduler"])
            except Exception as e:  # the original error matters more
                say(f"cleanup failed: {e}")
        raise
    finally:
        await conns.close()
    return await asyncio.to_thread(status_of, app_env, record)


async def _start_scheduler(app_env: AppEnv, conns: _Hosts, plan: _Plan, installed: dict,
                           say: Line) -> ClusterRecord:
    from switchyard.cluster.env import env_python

    cid = f"sy-{app_env.app}-{secrets.token_hex(6)}"
    host, port = split_address(plan.scheduler)
    here = scheduler_runs_here(host)
    if here:
        python = str(env_python(app_env))
        folder = _layout(app_env, host, cid, None)
        if port and not port_is_free(host, port):
            say(f"port {port} on {host} is busy: the scheduler takes a free port instead")
            port = 0
        shell: procs.Shell = procs.LocalShell(host)
    else:
        python, folder = installed[host]["python"], _layout(app_env, host, cid, installed[host]["root"])
        shell = await conns.shell(host)
    bind = host if host != "localhost" else "127.0.0.1"
    argv = [python, "-m", "distributed.cli.dask_scheduler", "--host", bind, "--port", str(port),
            "--scheduler-file", f"{folder}/scheduler.json"]
    if plan.idle_timeout:
        argv += ["--idle-timeout", f"{plan.idle_timeout:g}s"]
    spec = procs.ProcSpec(argv=argv, log=f"{folder}/scheduler.log", cwd=folder,
                          env={"PYTHONUNBUFFERED": "1"},
                          if_module={"bokeh": (["--dashboard-address", f"{bind}:0"], ["--no-dashboard"])})
    started = time.monotonic()
    [pid] = await procs.launch(shell, python, [spec])
    proc = Proc("scheduler", host, pid, spec.log, here)
    info = await procs.wait_for_file(shell, python, f"{folder}/scheduler.json", 30)
    if info is None:
        await procs.states(shell, python, [pid], cid, stop=True)
        lines = await procs.tail(shell, python, spec.log, 5)
        raise ClusterError(f"the scheduler on {host} did not start within 30 s: {' | '.join(lines[-3:])}: "
                           f"see {spec.log} on {host}")
    dash = (info.get("services") or {}).get("dashboard")
    say(f"scheduler at {info['address']} on {host} in {time.monotonic() - started:.1f} s (pid {pid})")
    return ClusterRecord(app=app_env.app, id=cid, address=info["address"],
                         dashboard=f"http://{bind}:{dash}/status" if dash else None, scheduler=proc,
                         wanted={}, cython=plan.cython, started_at=time.time(),
                         pythons={host: python} if not here else {}, idle_timeout=plan.idle_timeout)


async def _start_workers(app_env: AppEnv, conns: _Hosts, record: ClusterRecord,
                         missing: list[tuple[str, str]], installed: dict, say: Line) -> list[Proc]:
    from switchyard.cluster.env import env_python, worker_environ

    by_host: dict[str, list[str]] = {}
    for host, name in missing:
        by_host.setdefault(host, []).append(name)

    async def on(host: str, names: list[str]) -> list[Proc]:
        shell = await conns.shell(host)
        if is_local_host(host):
            python, root = str(env_python(app_env)), None
            values = worker_environ(app_env, record.cython)
            env = {k: values[k] for k in (
                "PYTHONUNBUFFERED", "SWITCHYARD_HOME", "SWITCHYARD_APPS", "VIRTUAL_ENV",
                "DASK_DISTRIBUTED__WORKER__DAEMON", "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION")}
            unset = ["PYTHONHOME"]
            if "PYTHONPATH" in values:
                env["PYTHONPATH"] = values["PYTHONPATH"]
            else:
                unset.append("PYTHONPATH")
            bind = "::1" if host.strip("[]") == "::1" else "127.0.0.1"
        else:
            root = installed[host]["root"]
            python, env, unset = remote.remote_env(root, app_env.app, record.cython)
            bind = host
        folder = _layout(app_env, host, record.id, root)
        specs = [procs.ProcSpec(
            argv=[python, "-m", "distributed.cli.dask_worker", record.address, "--name", name,
                  "--nthreads", "1", "--nworkers", "1", "--host", bind, "--no-dashboard",
                  "--local-directory", f"{folder}/{name}", "--death-timeout", str(DEATH_TIMEOUT)],
            log=f"{folder}/{name}.log", cwd=folder, env=env, unset=unset,
            path_first=python.rsplit("/", 1)[0]) for name in names]
        pids = await procs.launch(shell, python, specs)
        record.pythons[host] = python
        say(f"host {host}: started {', '.join(f'{n} (pid {p})' for n, p in zip(names, pids))}")
        return [Proc(n, host, p, s.log, is_local_host(host)) for n, p, s in zip(names, pids, specs)]

    results = await asyncio.gather(*(on(h, names) for h, names in by_host.items()), return_exceptions=True)
    started = [p for r in results if not isinstance(r, BaseException) for p in r]
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        record.workers += started  # so that the caller's cleanup stops them
        raise errors[0]
    return started


def _scheduler_info(address: str, timeout: float = 10) -> dict:
    from distributed import Client

    with Client(address, timeout=timeout, set_as_default=False) as client:
        try:
            info = client.scheduler_info(n_workers=-1)
        except TypeError:  # distributed before n_workers=
            info = client.scheduler_info()
        info["processing"] = {k: len(v) for k, v in client.processing().items()}
        return info


def _joined_names(address: str) -> dict[str, str]:
    """Worker name -> address of the workers connected to the scheduler."""
    try:
        info = _scheduler_info(address)
    except (OSError, TimeoutError) as e:
        raise ClusterError(f"cannot reach the scheduler at {address}: {e}: see its log") from e
    return {str(w.get("name")): addr for addr, w in info.get("workers", {}).items()}


async def _wait_joined(conns: _Hosts, record: ClusterRecord, new: list[Proc], timeout: float,
                       say: Line) -> None:
    if not new:
        say("every wanted worker is already up: nothing to start")
        return
    started = time.monotonic()
    deadline = started + timeout
    last_check = 0.0
    while True:
        joined = await asyncio.to_thread(_joined_names, record.address)
        waiting = [p for p in new if p.name not in joined]
        if not waiting:
            say(f"{len(new)} worker(s) joined in {time.monotonic() - started:.1f} s")
            return
        dead: list[Proc] = []
        if time.monotonic() - last_check > 2:
            last_check = time.monotonic()
            for host in {p.host for p in waiting}:
                shell = await conns.shell(host)
                pids = [p.pid for p in waiting if p.host == host]
                seen = await procs.states(shell, record.pythons[host], pids, record.marker)
                dead += [p for p in waiting if p.host == host and seen.get(p.pid) != "ours"]
        if dead or time.monotonic() > deadline:
            culprits = dead or waiting
            details = []
            for p in culprits[:3]:
                lines = await procs.tail(await conns.shell(p.host), record.pythons[p.host], p.log, 4)
                text = " | ".join(s.strip() for s in lines if s.strip())[-300:]
                details.append(f"{p.name}: {text or 'no output'}")
            hosts = ", ".join(dict.fromkeys(p.host for p in culprits))
            why = "exited before joining" if dead else f"did not join within {timeout:g} s"
            raise ClusterError(
                f"worker(s) {', '.join(p.name for p in culprits)} on host {hosts} {why}: "
                f"{'; '.join(details)}: "
                f"check that {hosts} can reach the scheduler at {record.address}"
            )
        await asyncio.sleep(0.3)


# ----------------------------------------------------------------------------- stop

def _helper_python(record: ClusterRecord, host: str) -> str:
    return procs.local_python() if is_local_host(host) or host not in record.pythons else record.pythons[host]


async def _stop(conns: _Hosts, record: ClusterRecord, targets: list[Proc],
                timeout: float = 10) -> dict[str, str]:
    """Stop ``targets``, each host in parallel.

    Returns:
        name -> stopped, killed, gone, other (pid reused), left or unreachable.
    """
    by_host: dict[str, list[Proc]] = {}
    for p in targets:
        by_host.setdefault(p.host if not p.local else "127.0.0.1", []).append(p)

    async def on(host: str, group: list[Proc]) -> dict[str, str]:
        try:
            found = await procs.states(await conns.shell(host), _helper_python(record, host),
                                       [p.pid for p in group], record.marker, stop=True, timeout=timeout)
        except HostError:  # that host's processes stay recorded, so a later down tries again
            return {p.name: "unreachable" for p in group}
        return {p.name: found.get(p.pid, "gone") for p in group}

    out: dict[str, str] = {}
    for result in await asyncio.gather(*(on(h, g) for h, g in by_host.items())):
        out.update(result)
    return out


async def _stop_all(cluster: ClusterSettings, record: ClusterRecord, say: Line) -> dict[str, str]:
    conns = _Hosts(cluster)
    try:
        # Workers first, so that they do not spend their death timeout reconnecting.
        result = await _stop(conns, record, record.workers)
        result.update(await _stop(conns, record, [record.scheduler]))
        for name, state in result.items():
            if state == "unreachable":
                say(f"{name}: its host cannot be reached: it stays recorded; run down again later")
        return result
    finally:
        await conns.close()


# ----------------------------------------------------------------------------- status / down / RUN

def status_of(app_env: AppEnv, record: ClusterRecord | None, scheduler: str | None = None) -> dict:
    """What runs: ``state`` up / degraded / down / existing, workers per host with memory and tasks."""
    address = record.address if record else scheduler
    out: dict = {"app": app_env.app, "state": "down", "address": address,
                 "dashboard": record.dashboard if record else None, "id": record.id if record else None,
                 "started_at": record.started_at if record else None, "hosts": {}, "workers": 0}
    if not address or not answers(address):
        return out
    try:
        info = _scheduler_info(address)
    except (OSError, TimeoutError):
        return out
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
    missing = sum(len(h["missing"]) for h in hosts.values())
    out.update(state=("existing" if record is None else "degraded" if missing else "up"), hosts=hosts,
               workers=sum(len(h["workers"]) for h in hosts.values()))
    return out


def status(app_env: AppEnv) -> dict:
    """The app's warm cluster (or the scheduler at ``[cluster].scheduler`` when none was started)."""
    record = read_record(app_env)
    scheduler = None if record else load_settings(app_env.settings_path).cluster.scheduler
    return status_of(app_env, record, scheduler)


async def down(app_env: AppEnv, on_line: Line | None = None) -> dict:
    """Stop every process of the app's warm cluster and forget it.

    Returns:
        ``{"app", "stopped": {name: outcome}, "left": [names still running]}``; an outcome is
        stopped, killed (did not stop in time), gone (had already exited) or unreachable.
    """
    say = on_line or (lambda line: None)
    with cluster_lock(app_env):
        record = read_record(app_env)
        if record is None:
            say(f"no cluster of '{app_env.app}' is recorded: nothing to stop")
            return {"app": app_env.app, "stopped": {}, "left": []}
        settings = load_settings(app_env.settings_path)
        result = await _stop_all(settings.cluster, record, say)
        left = [name for name, state in result.items() if state in ("left", "unreachable")]
        for name, state in result.items():
            say(f"{name}: {state}")
        if not left:
            record_path(app_env).unlink(missing_ok=True)
        return {"app": app_env.app, "stopped": result, "left": left}


def workers_of(address: str) -> dict[str, int]:
    """Host -> number of workers connected to the scheduler at ``address`` (named or not)."""
    counts: dict[str, int] = {}
    try:
        info = _scheduler_info(address)
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
    if record is not None and answers(record.address):
        if record.wanted != workers:
            on_line(f"the warm cluster runs {record.wanted}, not {workers}: planning on its workers")
        if record.cython != cython:
            on_line(f"note: the warm cluster's workers run with cython={record.cython} "
                    f"(restart it with `switchyard cluster up {app_env.app}` to change that)")
        on_line(f"using the warm cluster of '{app_env.app}' at {record.address}")
        return "existing", record.address, dict(record.wanted), "warm cluster"
    if answers(scheduler):
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
    if all(is_local_host(h) for h in workers):
        return "local", scheduler, dict(workers), "settings"
    if not start:
        return "ssh", scheduler, dict(workers), "settings"
    remote_hosts = ", ".join(h for h in workers if not is_local_host(h))
    on_line(f"no cluster is up for hosts {remote_hosts}: starting one (cold start); it stays up for the next "
            f"runs and stops after 10 idle minutes, or with `switchyard cluster down {app_env.app}`")
    st = asyncio.run(up(app_env, workers=workers, scheduler=scheduler, cython=cython, idle_timeout=600,
                        on_line=on_line))
    return "existing", st["address"], dict(workers), "settings"


# ----------------------------------------------------------------------------- sync faces

def up_sync(app_env: AppEnv, **kwargs) -> dict:
    """:func:`up` for callers without an event loop (CLI, UI)."""
    return asyncio.run(up(app_env, **kwargs))


def down_sync(app_env: AppEnv, on_line: Line | None = None) -> dict:
    """:func:`down` for callers without an event loop (CLI, UI)."""
    return asyncio.run(down(app_env, on_line))


def trust_sync(app_env: AppEnv, hosts: list[str] | None = None) -> list[dict]:
    """Record the host keys of ``hosts`` (default: every remote host of the app) in known_hosts."""
    cluster = load_settings(app_env.settings_path).cluster
    scheduler_host = split_address(cluster.scheduler)[0]
    extra = [] if scheduler_runs_here(scheduler_host) else [scheduler_host]
    wanted = hosts or list(dict.fromkeys(h for h in [*cluster.workers, *extra] if not is_local_host(h)))

    async def run() -> list[dict]:
        return [await ssh.trust_host(ssh.access_for(cluster, h)) for h in wanted]

    return asyncio.run(run())
