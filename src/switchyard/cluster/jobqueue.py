"""Batch-system clusters (``[cluster] kind = "slurm"``): workers are jobs, not SSH processes.

dask-jobqueue's cluster objects keep their scheduler inside the Python process that made
them, and a warm cluster must outlive the CLI call. So the scheduler is Switchyard's own
detached ``dask scheduler`` process (started, recorded and stopped like the warm local
cluster's, mutual TLS with the workspace's certificates) and dask-jobqueue does what it is
good at: :class:`dask_jobqueue.slurm.SLURMJob` writes the worker job script from
``[cluster.jobqueue]`` and submits it with ``sbatch``.

Every job carries the app's *tag* as its job name (``sy-<app>-<workspace digest>``, the
same from any process), so ``down`` finds and cancels the jobs of a caller that crashed
(``squeue --name`` / ``scancel --name``). A worker is named ``<tag>-<job id>``: which job a
batch ran in is read from its worker's name. Workers get ``--lifetime`` shorter than the
walltime, so they retire gracefully (their tasks go to other workers without a failure
counted) before SLURM kills the job. The scheduler preloads :mod:`switchyard.cluster.keeper`,
which keeps the number of jobs between the minimum and the maximum (jobs that ended are
replaced; adaptive clusters grow with the work waiting and shrink when idle).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from switchyard.app import AppEnv
from switchyard.cluster import tls
from switchyard.exceptions import ClusterError, SettingsError
from switchyard.settings import ClusterSettings, JobqueueSettings
from switchyard.workspace import atomic_write_json, atomic_write_text

Line = Callable[[str], None]
TOOLS = ("sbatch", "squeue", "scancel")
ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "RESIZING", "REQUEUED", "SUSPENDED")
KEEPER = "switchyard.cluster.keeper"


def tag_of(app_env: AppEnv) -> str:
    """The job name of every worker job of the app in this workspace (the same from any process)."""
    digest = hashlib.sha256(str(app_env.home).encode()).hexdigest()[:8]
    return f"sy-{app_env.app}-{digest}"[:64]


def files_dir(app_env: AppEnv, jq: JobqueueSettings) -> Path:
    """Where the job script, its logs, the keeper's config and (with ``shared``) the certificates
    go: a folder the compute nodes see."""
    root = Path(jq.shared).expanduser() if jq.shared else app_env.home
    return root / "clusters" / tag_of(app_env)


def worker_env_of(app_env: AppEnv, jq: JobqueueSettings) -> AppEnv:
    """The app as the jobs see it: its worker environment under ``<shared>/envs/<app>`` when
    ``shared`` is set (INSTALL builds it there), else the workspace's."""
    if not jq.shared:
        return app_env
    return AppEnv(app_env.app, apps_dir=app_env.apps_dir, workspace=Path(jq.shared).expanduser())


def ensure_worker_env(app_env: AppEnv, jq: JobqueueSettings, cython: bool, say: Line, force: bool = False):
    """Build the jobs' worker environment in the shared folder when it is missing or stale
    (nothing to do without ``shared``: the workspace's env is the jobs' env)."""
    from switchyard.cluster.env import install_local, is_current

    target = worker_env_of(app_env, jq)
    if target is app_env or (not force and is_current(target, cython)):
        return None
    say(f"worker environment of the jobs: {target.home / 'envs' / app_env.app} (the shared folder)")
    res = install_local(target, cython=cython, on_line=say, force=force)
    if not res.ok:
        raise ClusterError(f"install of '{app_env.app}' in the shared folder {jq.shared} failed: {res.error}: "
                           f"see {res.log_path}")
    return res


def check_folder(app_env: AppEnv, jq: JobqueueSettings) -> Path:
    """The cluster's folder, refused with one line when sbatch could not take it (a space)."""
    folder = files_dir(app_env, jq)
    if any(c.isspace() for c in str(folder)):  # sbatch reads #SBATCH -o/-e paths unquoted
        raise SettingsError(app_env.settings_path, "cluster.jobqueue.shared",
                            f"the cluster folder {str(folder)!r} has a space, which sbatch's -o/-e cannot take",
                            "set shared to a folder without one")
    return folder


def check_tools(app_env: AppEnv) -> None:
    """Refuse with one line when the SLURM commands are not on PATH (nothing is started)."""
    gone = [t for t in TOOLS if shutil.which(t) is None]
    if gone:
        raise SettingsError(app_env.settings_path, "cluster.kind",
                            f"'slurm' but {', '.join(gone)} is not on PATH",
                            "run switchyard where the SLURM client commands are (a login node), or install "
                            "them (Debian: apt-get install slurm-client)")


def _run(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def jobs_of(tag: str) -> list[dict]:
    """The tag's jobs squeue lists for this user: ``{"id", "state", "node", "reason"}`` each."""
    out = _run(["squeue", "-h", "--name", tag, "--user", str(os.getuid()), "-o", "%i|%T|%N|%r"])
    if out.returncode != 0:
        raise ClusterError(f"squeue failed: {(out.stderr or out.stdout).strip().splitlines()[-1:]}: "
                           "check that the SLURM controller answers (sinfo)")
    jobs = []
    for line in out.stdout.splitlines():
        parts = line.split("|")
        if len(parts) == 4:
            jobs.append({"id": parts[0], "state": parts[1], "node": parts[2], "reason": parts[3]})
    return jobs


def job_of_worker(tag: str, name: str) -> str | None:
    """The job id in worker name ``<tag>-<job id>`` (``-<i>`` follows with several processes)."""
    if not name.startswith(tag + "-"):
        return None
    return name[len(tag) + 1:].split("-", 1)[0] or None


@contextmanager
def submit_lock(folder: Path) -> Iterator[None]:
    """Held while jobs are counted and submitted (by ``up`` and by the keeper), so neither
    submits jobs the other just submitted."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "submit.lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- job script

def worker_certs(app_env: AppEnv, jq: JobqueueSettings) -> tls.Certs:
    """The certificate files the worker jobs present: the workspace's, or copies in the shared
    folder (a 0700 folder, the key 0600) when ``shared`` is set."""
    mine = tls.workspace_certs(app_env.home)
    if not jq.shared:
        return mine
    folder = files_dir(app_env, jq) / "tls"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    out = tls.Certs(str(folder / "ca.pem"), str(folder / "cluster.pem"), str(folder / "cluster.key"))
    for src, dst in ((mine.ca_file, out.ca_file), (mine.cert_file, out.cert_file), (mine.key_file, out.key_file)):
        fd = os.open(dst + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Path(src).read_bytes())
        os.replace(dst + ".tmp", dst)
    return out


def _slurm_job_class():
    """``dask_jobqueue.slurm.SLURMJob``. Importing dask_jobqueue installs a SIGINT handler
    (``dask_jobqueue/runner.py``), which raises outside the main thread (RUN and the page call
    this from threads) and would replace the caller's own: that one call is skipped."""
    import signal

    original = signal.signal

    def keep_sigint(sig, handler):
        return signal.getsignal(sig) if sig == signal.SIGINT else original(sig, handler)

    signal.signal = keep_sigint
    try:
        from dask_jobqueue.slurm import SLURMJob
    finally:
        signal.signal = original
    return SLURMJob


def make_job(app_env: AppEnv, jq: JobqueueSettings, address: str, cython: bool, certs: tls.Certs):
    """The dask-jobqueue ``SLURMJob`` of one worker job joining the scheduler at ``address``."""
    SLURMJob = _slurm_job_class()

    from switchyard.cluster.env import env_python, worker_environ
    from switchyard.cluster.spec import WORKER_ENV

    target = worker_env_of(app_env, jq)
    # The jobs' env (shared or not); the data and runs stay in the workspace.
    env = {**WORKER_ENV, **worker_environ(target, cython), "SWITCHYARD_HOME": str(app_env.home)}
    python = jq.python or str(env_python(target))
    folder = files_dir(app_env, jq)
    tag = tag_of(app_env)
    q = shlex.quote
    # dask-jobqueue joins the worker command with spaces: every value we pass is quoted here.
    extra = ["--lifetime", f"{jq.worker_lifetime}s", "--preload", q(app_env.app),
             *[q(a) for a in certs.argv()], "--local-directory", q(str(folder / "work"))]
    return SLURMJob(
        scheduler=q(address), name=f"{tag}-${{SLURM_JOB_ID}}", job_name=tag, queue=jq.queue,
        account=jq.account, walltime=jq.walltime, cores=jq.cores, memory=jq.memory, processes=jq.processes,
        python=q(python), death_timeout=60, log_directory=str(folder / "jobs"),
        # --export=NONE: the job does not inherit the caller's environment (its secrets);
        # what the worker needs is the allow-listed environment exported below.
        job_extra_directives=["--export=NONE", *jq.job_extra_directives],
        job_script_prologue=[f"export {k}={q(v)}" for k, v in sorted(env.items())],
        worker_extra_args=extra)


def write_script(app_env: AppEnv, jq: JobqueueSettings, address: str, cython: bool) -> Path:
    """Write the worker job script (made by dask-jobqueue) next to the keeper's config."""
    folder = check_folder(app_env, jq)
    job = make_job(app_env, jq, address, cython, worker_certs(app_env, jq))
    path = folder / "worker-job.sh"
    atomic_write_text(path, job.job_script())
    return path


async def submit(app_env: AppEnv, jq: JobqueueSettings, address: str, cython: bool, n: int) -> list[str]:
    """Submit ``n`` worker jobs through dask-jobqueue (``SLURMJob.start``: job file + sbatch); their ids."""
    certs = worker_certs(app_env, jq)
    ids = []
    for _ in range(n):
        job = make_job(app_env, jq, address, cython, certs)
        try:
            await job.start()
        except RuntimeError as e:
            detail = " ".join(str(e).split())[-300:]
            raise ClusterError(f"sbatch refused the worker job of '{app_env.app}': {detail}: check "
                               f"[cluster.jobqueue] in {app_env.settings_path} (queue, account, cores, memory)") from e
        ids.append(str(job.job_id))
    return ids


def keeper_config(app_env: AppEnv, jq: JobqueueSettings, script: Path) -> dict:
    return {"tag": tag_of(app_env), "script": str(script), "minimum": jq.minimum_jobs or jq.jobs,
            "maximum": jq.maximum_jobs or jq.jobs, "slots_per_job": jq.processes * (jq.cores // jq.processes),
            "idle_seconds": jq.scale_down_after, "uid": os.getuid()}


def scheduler_env(app_env: AppEnv, jq: JobqueueSettings) -> dict[str, str]:
    """What the scheduler process gets over the app's worker environment: the keeper preload and
    its config, and where the SLURM commands find their controller."""
    env = {"DASK_DISTRIBUTED__SCHEDULER__PRELOAD": json.dumps([KEEPER]),
           "SWITCHYARD_KEEPER": str(files_dir(app_env, jq) / "keeper.json")}
    if os.environ.get("SLURM_CONF"):
        env["SLURM_CONF"] = os.environ["SLURM_CONF"]
    return env


# ----------------------------------------------------------------------------- lifecycle

def cancel_all(tag: str, say: Line, timeout: float = 30) -> list[str]:
    """``scancel --name`` every job of the tag (this user's) and wait until squeue lists none."""
    jobs = jobs_of(tag)
    if not jobs:
        return []
    _run(["scancel", "--name", tag, "--user", str(os.getuid())])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = jobs_of(tag)
        if not left:
            break
        time.sleep(0.3)
    else:
        say(f"jobs still listed after scancel: {', '.join(j['id'] for j in left)}")
    say(f"cancelled job(s) {', '.join(j['id'] for j in jobs)} ({tag})")
    return [j["id"] for j in jobs]


async def ensure_jobs(app_env: AppEnv, jq: JobqueueSettings, address: str, cython: bool, say: Line) -> list[str]:
    """Submit jobs until the tag has its minimum (fixed: ``jobs``) active; the ids submitted."""
    folder = files_dir(app_env, jq)
    script = write_script(app_env, jq, address, cython)
    with submit_lock(folder):
        active = [j for j in jobs_of(tag_of(app_env)) if j["state"] in ACTIVE]
        wanted = jq.minimum_jobs or jq.jobs
        new = await submit(app_env, jq, address, cython, max(0, wanted - len(active)))
        atomic_write_json(folder / "keeper.json", keeper_config(app_env, jq, script))
    if new:
        say(f"submitted job(s) {', '.join(new)} to partition '{jq.queue}' (job name {tag_of(app_env)}, "
            f"walltime {jq.walltime}, worker lifetime {jq.worker_lifetime} s)")
    return new


async def wait_joined(app_env: AppEnv, address: str, minimum: int, timeout: float, say: Line) -> dict[str, str]:
    """Wait until ``minimum`` workers of the tag's jobs joined; worker name -> address."""
    from switchyard.cluster.deployment import names_of, scheduler_info

    tag = tag_of(app_env)
    started = time.monotonic()
    while True:
        joined = {n: a for n, a in names_of(await asyncio.to_thread(scheduler_info, address)).items()
                  if job_of_worker(tag, n)}
        if len(joined) >= minimum:
            say(f"{len(joined)} worker(s) joined in {time.monotonic() - started:.1f} s")
            return joined
        if time.monotonic() - started > timeout:
            jobs = await asyncio.to_thread(jobs_of, tag)
            listing = ", ".join(f"{j['id']} {j['state']}" + (f" ({j['reason']})" if j["reason"] not in ("", "None")
                                                              else "") for j in jobs) or "none"
            raise ClusterError(f"{len(joined)} of {minimum} worker job(s) joined within {timeout:g} s (jobs: "
                               f"{listing}): see the job logs in {app_env.home}/clusters or "
                               f"raise --timeout when the queue is busy")
        await asyncio.sleep(0.3)


def job_rows(app_env: AppEnv, info_workers: dict) -> list[dict]:
    """The tag's jobs with their SLURM ids, states, nodes and the workers they run."""
    tag = tag_of(app_env)
    try:
        jobs = jobs_of(tag)
    except (ClusterError, OSError, subprocess.TimeoutExpired):
        return []
    by_job: dict[str, list[str]] = {}
    for w in info_workers.values():
        job = job_of_worker(tag, str(w.get("name")))
        if job:
            by_job.setdefault(job, []).append(str(w.get("name")))
    return [{**j, "workers": sorted(by_job.get(j["id"], []))} for j in jobs]


def wanted_of(cluster: ClusterSettings) -> tuple[int, int]:
    jq = cluster.jobqueue
    assert jq is not None
    return (jq.minimum_jobs or jq.jobs) * jq.processes, (jq.maximum_jobs or jq.jobs) * jq.processes


async def up(app_env: AppEnv, settings, scheduler: str | None, join_timeout: float, say: Line) -> dict:
    """``cluster up`` for ``kind = "slurm"``: the detached scheduler here (started, or the recorded
    one adopted), the job script, jobs submitted up to the minimum, and a wait until they joined.

    Raises:
        SettingsError: sbatch / squeue / scancel are missing (nothing started or submitted).
        ClusterError: sbatch refused a job, or the jobs' workers did not join in time.
    """
    import secrets

    from switchyard.cluster.addresses import answers, split_address
    from switchyard.cluster.deployment import Deployment
    from switchyard.cluster.env import env_python, install_local, is_current, worker_environ
    from switchyard.cluster.hosts import Hosts
    from switchyard.cluster.procs import Process
    from switchyard.cluster.record import ClusterRecord, cluster_lock, read_record, save_record
    from switchyard.cluster.spec import ClusterSpec, HostSpec
    from switchyard.settings import check_scheduler

    cluster = settings.cluster
    jq = cluster.jobqueue
    check_tools(app_env)
    check_folder(app_env, jq)
    address_wanted = check_scheduler(scheduler if scheduler is not None else cluster.scheduler)
    tag = tag_of(app_env)
    with cluster_lock(app_env):
        record = read_record(app_env)
        alive = record is not None and answers(record.address)
        if alive and record.kind != "slurm":
            raise ClusterError(f"a warm cluster of '{app_env.app}' that is not a SLURM one runs at {record.address}: "
                               f"stop it first (switchyard cluster down {app_env.app})")
        if not alive:
            left = await asyncio.to_thread(cancel_all, tag, say)  # jobs of a crashed caller or of a dead scheduler
            if left:
                say(f"cleaned up {len(left)} job(s) left by an earlier cluster")
        if not is_current(app_env, cluster.cython):
            say(f"the worker environment of '{app_env.app}' is missing or stale: installing it first")
            res = await asyncio.to_thread(install_local, app_env, cython=cluster.cython, on_line=say)
            if not res.ok:
                raise ClusterError(f"install of '{app_env.app}' failed: {res.error}: see {res.log_path}")
        if not jq.python:
            await asyncio.to_thread(ensure_worker_env, app_env, jq, cluster.cython, say)
        await asyncio.to_thread(tls.ensure, app_env.home)
        cid = record.id if alive else f"sy-{app_env.app}-{secrets.token_hex(6)}"
        host = split_address(address_wanted)[0]
        folder = files_dir(app_env, jq)
        env = {**worker_environ(app_env, cluster.cython), **scheduler_env(app_env, jq)}
        hspec = HostSpec(python=str(env_python(app_env)), folder=str(app_env.home / "clusters" / f"{app_env.app}-{cid}"),
                         bind=host, env=env, inherit_env=False, tls=tls.workspace_certs(app_env.home))
        spec = ClusterSpec(scheduler=address_wanted, workers={}, hosts={host: hspec}, death_timeout=60)
        pool = Hosts(cluster, here={host})
        sched = Process.adopt(record.scheduler, pool, marker=record.marker) if alive else None
        deployment = Deployment(spec, pool, say, scheduler=sched, address=record.address if alive else None,
                                dashboard=record.dashboard if alive else None, home=app_env.home)
        try:
            await deployment.apply(join_timeout)
        finally:
            await pool.close()
        address = deployment.address or ""
        assert deployment.scheduler is not None and deployment.scheduler.recorded is not None
        saved = ClusterRecord(app=app_env.app, id=cid, address=address, dashboard=deployment.dashboard,
                              scheduler=deployment.scheduler.recorded, wanted={}, cython=cluster.cython,
                              started_at=record.started_at if alive else time.time(), kind="slurm", tag=tag)
        save_record(app_env, saved)  # before any job: a crash from here on leaves a record for `down`
        folder.mkdir(parents=True, exist_ok=True)
        await ensure_jobs(app_env, jq, address, cluster.cython, say)
    await wait_joined(app_env, address, (jq.minimum_jobs or jq.jobs) * jq.processes, join_timeout, say)
    from switchyard.cluster.warm import status_of

    return await asyncio.to_thread(status_of, app_env, saved)


def check_in_job(app_env: AppEnv, jq: JobqueueSettings, say: Line, timeout: float = 300) -> dict:
    """INSTALL's check from inside a job: ``srun`` the worker environment's python on a compute
    node of the queue and import the app and distributed there.

    Raises:
        ClusterError: srun failed or the import failed (its last lines in the message).
    """
    from switchyard.cluster.env import env_python

    if shutil.which("srun") is None:
        raise SettingsError(app_env.settings_path, "cluster.kind", "'slurm' but srun is not on PATH",
                            "run switchyard where the SLURM client commands are (a login node)")
    python = jq.python or str(env_python(worker_env_of(app_env, jq)))
    code = ("import importlib, os, socket, sys; import distributed; importlib.import_module(sys.argv[1]); "
            "print('ready', os.environ.get('SLURMD_NODENAME') or socket.gethostname(), distributed.__version__, "
            "'job', os.environ.get('SLURM_JOB_ID', '?'))")
    argv = ["srun", "--export=NONE", f"--partition={jq.queue}", f"--job-name={tag_of(app_env)}-install",
            "--ntasks=1", f"--cpus-per-task={max(1, jq.cores // jq.processes)}", "--time=00:05:00",
            *([f"--account={jq.account}"] if jq.account else []),
            python, "-c", code, app_env.app]
    say(f"checking the worker environment from inside a job: {shlex.join(argv[:6])} ...")
    try:
        out = _run(argv, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise ClusterError(f"the check job of '{app_env.app}' did not finish within {timeout:g} s: the queue "
                           f"'{jq.queue}' may be busy: run switchyard install again later") from e
    text = (out.stdout + out.stderr).strip()
    if out.returncode != 0 or "ready" not in out.stdout:
        raise ClusterError(f"the worker environment {python} does not run the app inside a job on '{jq.queue}': "
                           f"{' | '.join(text.splitlines()[-3:])}: put the workspace and apps folder on the "
                           "shared file system, or set [cluster.jobqueue].python")
    line = next(x for x in out.stdout.splitlines() if x.startswith("ready"))
    say(f"inside a job: {line}")
    return {"node": line.split()[1], "distributed": line.split()[2], "job": line.split()[-1], "python": python}
