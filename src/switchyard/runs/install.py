"""INSTALL: the app's worker environments, here and on every remote host of a request."""

from __future__ import annotations

from typing import Callable

from switchyard.app import AppEnv
from switchyard.exceptions import InstallError, ModeError
from switchyard.modes import Mode, unsupported_reason
from switchyard.runs.request import resolve

Line = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


def install_sync(app_env: AppEnv, modes_enabled: int | str | None = None, workers: dict[str, int] | None = None,
                 on_line: Line | None = None, force: bool = False):
    """Provision the worker environment of every host the app's workers (and scheduler) run on."""
    from switchyard.cluster.env import install_local
    from switchyard.cluster.local import is_local_host, split_address
    from switchyard.cluster.warm import scheduler_runs_here

    req = resolve(app_env, mode=modes_enabled, workers=workers).request
    cython = req.modes.uses_cython
    reason = unsupported_reason(req.modes & Mode.CYTHON)
    if reason:
        raise ModeError(reason)
    rapids_cuda = None
    if req.modes.uses_rapids:  # a GPU on every host that runs batches; the packages come with the install
        from switchyard.runs.submit import check_rapids

        probes = check_rapids(app_env, req.modes, dict(req.workers), "INSTALL", on_line or _print,
                              need_packages=False)
        rapids_cuda = next((p.get("cuda_major") for h, p in probes.items() if is_local_host(h)), None)
    from switchyard.settings import load_settings

    cluster = load_settings(app_env.settings_path).cluster
    if cluster.kind == "slurm":  # the env here, the jobs' env (in `shared` if set), checked inside a job
        from switchyard.cluster import jobqueue

        jobqueue.check_tools(app_env)
        result = install_local(app_env, cython=cython, on_line=on_line or _print, force=force)
        if not result.ok:
            raise InstallError(f"install of app '{app_env.app}' failed: {result.error}: see {result.log_path}")
        if not cluster.jobqueue.python:
            jobqueue.ensure_worker_env(app_env, cluster.jobqueue, cython, on_line or _print, force=force)
        jobqueue.check_in_job(app_env, cluster.jobqueue, on_line or _print)
        return result
    scheduler_host = split_address(req.scheduler)[0]
    hosts = list(req.workers) + ([] if scheduler_runs_here(scheduler_host) or scheduler_host in req.workers
                                 else [scheduler_host])
    if any(not is_local_host(h) for h in hosts):
        # Remote hosts: the driver's env here and the workers' env on each host, over SSH.
        from switchyard.cluster.remote import install_everywhere

        return install_everywhere(app_env, cluster, hosts, cython=cython,
                                  force=force, on_line=on_line or _print)
    result = install_local(app_env, cython=cython, on_line=on_line or _print, force=force, rapids_cuda=rapids_cuda)
    if not result.ok:
        raise InstallError(f"install of app '{app_env.app}' failed: {result.error}: see {result.log_path}")
    return result
