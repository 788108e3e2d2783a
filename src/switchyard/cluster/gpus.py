"""The rapids check of every worker host: the GPU probe runs there, remote hosts over SSH.

INSTALL and RUN of a rapids mode call :func:`check_hosts`; a host where the
rapids bit cannot work stops the action with one line naming the host, the reason
and the fix (:func:`switchyard.device.rapids_problem`).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

from switchyard import device, gpu_probe
from switchyard.app import AppEnv
from switchyard.cluster.addresses import is_local_host
from switchyard.exceptions import ModeError

Line = Callable[[str], None]
PROBE_TIMEOUT = 60.0
_SOURCE = Path(gpu_probe.__file__).read_text(encoding="utf-8")


def _parse(host: str, python: str, code: int, lines: list[str]) -> dict:
    found = [s.split(gpu_probe.MARK, 1)[1] for s in lines if gpu_probe.MARK in s]
    if code != 0 or not found:
        return {"host": host, "gpus": [], "reason": f"the GPU probe did not run with {python}: "
                f"{' | '.join(lines[-2:]) or f'exit {code}'}"}
    return json.loads(found[-1])


def probe_here(python: str | None = None) -> dict:
    """This machine's probe, run by ``python`` (the app's env python: its CuPy is what batches get)."""
    python = python or sys.executable
    try:
        done = subprocess.run([python, "-c", _SOURCE, "probe"], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as e:
        return {"host": "this machine", "gpus": [], "reason": f"the GPU probe did not run with {python}: {e}"}
    return _parse("this machine", python, done.returncode, (done.stdout + done.stderr).splitlines())


async def probe_remote(cluster, host: str, python: str | None = None) -> dict:
    """``host``'s probe over SSH (settings ``cluster`` give the access), with ``python`` there
    (the app's env python when installed, else ``python3``)."""
    from switchyard.cluster import ssh

    remote = await ssh.connect(ssh.access_for(cluster, host))
    try:
        python = python or "python3"
        done = await remote.run([python, "-c", _SOURCE, "probe"], timeout=PROBE_TIMEOUT)
        if done.code != 0 and python != "python3":  # the app is not installed there yet: the GPU still counts
            python = "python3"
            done = await remote.run([python, "-c", _SOURCE, "probe"], timeout=PROBE_TIMEOUT)
        return _parse(host, python, done.code, done.lines)
    finally:
        await remote.close()


def probe_hosts(app_env: AppEnv, hosts: list[str], cluster=None, installed: bool = True) -> dict[str, dict]:
    """Host -> probe for each of ``hosts`` (remote ones in parallel over SSH).

    ``installed``: run the probe with the app's environment python (RUN: its CuPy and cuDF
    are what batches import); else with the system's (INSTALL, before the env exists).
    """
    from switchyard.cluster.env import env_python

    out: dict[str, dict] = {}
    local = [h for h in hosts if is_local_host(h)]
    remote = [h for h in hosts if not is_local_host(h)]
    if local:
        here_python = str(env_python(app_env)) if installed and env_python(app_env).exists() else None
        found = probe_here(here_python)
        out.update({h: found for h in local})
    if remote:
        from switchyard.cluster.remote import remote_env

        async def each(host: str) -> tuple[str, dict]:
            root = getattr(cluster.hosts.get(host), "root", None) if cluster is not None else None
            python = remote_env(root, app_env.app, False)[0] if installed and root else None
            try:
                return host, await probe_remote(cluster, host, python)
            except Exception as e:  # unreachable, auth failed, host key unknown: its own reason
                return host, {"host": host, "gpus": [], "reason": str(e)}

        async def all_() -> list[tuple[str, dict]]:
            return await asyncio.gather(*(each(h) for h in remote))

        out.update(dict(asyncio.run(all_())))
    return out


def problems(probes: dict[str, dict], workers: dict[str, int], on_workers: bool,
             need_packages: bool) -> list[str]:
    """The one-line problem of each host that cannot run the rapids bit."""
    out = []
    for host, found in probes.items():
        problem = device.rapids_problem(found, host=host, local=is_local_host(host), on_workers=on_workers,
                                        workers=workers.get(host), need_packages=need_packages)
        if problem:
            out.append(problem)
    return out


def check_hosts(app_env: AppEnv, mode: int, workers: dict[str, int], cluster=None, *, action: str = "RUN",
                need_packages: bool = True, on_line: Line | None = None) -> dict[str, dict]:
    """Refuse a rapids ``mode`` unless every host that runs its batches can: the Dask worker
    hosts (modes 12-15) or this machine (8-11, the driver's executor). Returns the probes.

    Raises:
        ModeError: one line naming the first host that cannot, its reason and the fix
            (and how many other hosts cannot either).
    """
    on_workers = bool(int(mode) & 4)
    hosts = list(workers) if on_workers else ["127.0.0.1"]
    probes = probe_hosts(app_env, hosts, cluster, installed=need_packages)
    found = problems(probes, workers if on_workers else {}, on_workers, need_packages)
    if found:
        more = f" (and {len(found) - 1} more host{'s' if len(found) > 2 else ''})" if len(found) > 1 else ""
        raise ModeError(f"{action} refused: mode {int(mode)} needs a GPU for its rapids bit (cupy, cudf): "
                        f"{found[0]}{more}")
    if on_line:
        for host, p in probes.items():
            gpus = ", ".join(f"{g['index']}: {g['name']}" for g in p.get("gpus", []))
            on_line(f"rapids: host '{host}': CUDA {p.get('cuda')}, driver {p.get('driver')}, GPUs {gpus}")
    return probes


def check_cluster_gpus(address: str, what: str, fix: str, action: str = "RUN") -> None:
    """Refuse a rapids run on a cluster it did not start (a warm cluster, a running scheduler)
    unless every worker there offers a GPU (``--resources GPU=1``, as rapids workers do).

    Raises:
        ModeError: naming the cluster, the workers without a GPU and ``fix``.
    """
    from switchyard.cluster.deployment import scheduler_info

    workers = scheduler_info(address).get("workers", {})
    without = sorted(str(w.get("name") or a) for a, w in workers.items()
                     if not (w.get("resources") or {}).get("GPU"))
    if without or not workers:
        shown = ", ".join(without[:5]) + (" ..." if len(without) > 5 else "")
        raise ModeError(f"{action} refused: the rapids bit needs GPU workers, and {what} at {address} has "
                        + (f"{len(without)} of {len(workers)} workers without a GPU ({shown})" if workers
                           else "no workers")
                        + f": {fix}")
