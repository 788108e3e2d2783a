"""Batch-system clusters without a batch system: ``[cluster] kind`` and ``[cluster.jobqueue]``
validation, the job script dask-jobqueue writes, the keeper's sizing rule, and that bad input
(unknown kind, missing queue, a wrong walltime, sbatch missing) gives one line and submits
nothing. The real SLURM runs are in tests/integration/test_slurm.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from switchyard.app import AppEnv
from switchyard.cluster import jobqueue, keeper, tls, warm
from switchyard.exceptions import SettingsError, SwitchyardError
from switchyard.settings import load_settings, update_cluster

from ..conftest import make_tiny_app

SWITCHYARD = Path(sys.executable).parent / "switchyard"
BASE = '[args]\n\n[cluster]\ndask = true\nscheduler = "127.0.0.1:0"\n'


def settings(tmp_path: Path, text: str):
    p = tmp_path / "app_settings.toml"
    p.write_text(BASE + text)
    return p


@pytest.mark.parametrize("text, key, words", [
    ('kind = "slurmy"\n', "cluster.kind", "use one of: local, ssh, address, slurm"),
    ('kind = "pbs"\n', "cluster.kind", "only slurm is tested end to end"),
    ('kind = "slurm"\n', "cluster.jobqueue.queue", "is missing"),
    ('kind = "slurm"\n[cluster.jobqueue]\ncores = 2\n', "cluster.jobqueue.queue", "is missing"),
    ('kind = "slurm"\n[cluster.jobqueue]\nqueue = "debug"\nwalltime = "2h"\n', "cluster.jobqueue.walltime",
     "HH:MM:SS or D-HH:MM:SS"),
    ('kind = "slurm"\n[cluster.jobqueue]\nqueue = "debug"\nwalltime = "00:61:00"\n', "cluster.jobqueue.walltime",
     "HH:MM:SS"),
    ('kind = "slurm"\n[cluster.jobqueue]\nqueue = "debug"\nwalltime = "00:10:00"\nlifetime = 600\n',
     "cluster.jobqueue.lifetime", "below the walltime"),
    ('kind = "slurm"\n[cluster.jobqueue]\nqueue = "debug"\nmemory = "lots"\n', "cluster.jobqueue.memory", "4GB"),
    ('kind = "slurm"\n[cluster.jobqueue]\nqueue = "debug"\ncores = 3\nprocesses = 2\n',
     "cluster.jobqueue.processes", "same number of threads"),
    ('kind = "slurm"\n[cluster.jobqueue]\nqueue = "debug"\nminimum_jobs = 3\nmaximum_jobs = 2\n',
     "cluster.jobqueue.maximum_jobs", ">= minimum_jobs"),
    ('kind = "slurm"\n[cluster.jobqueue]\nqueue = "debug"\njobs = 2\nmaximum_jobs = 4\n',
     "cluster.jobqueue.jobs", "not both"),
    ('kind = "slurm"\n[cluster.jobqueue]\nqueue = "debug"\njob_extra_directives = ["--qos=a\\n#SBATCH -x"]\n',
     "cluster.jobqueue.job_extra_directives", "one-line strings"),
    ('kind = "slurm"\n[cluster.jobqueue]\nqueue = "debug"\nwalltme = "01:00:00"\n', "cluster.jobqueue.walltme",
     "unknown key"),
    ('kind = "local"\n[cluster.workers]\n"10.0.0.7" = 2\n', "cluster.kind", 'kind = "ssh"'),
])
def test_bad_cluster_kind_and_jobqueue_give_one_line_naming_the_key(tmp_path, text, key, words):
    path = settings(tmp_path, text)
    with pytest.raises(SettingsError) as e:
        load_settings(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and f"{key}:" in msg and words in msg, msg


def test_jobqueue_defaults_lifetime_and_update_keeps_the_table(tmp_path):
    path = settings(tmp_path, "")
    assert load_settings(path).cluster.kind is None  # absent: today's automatic choice
    update_cluster(path, kind="slurm", jobqueue={"queue": "debug", "walltime": "1-00:00:00", "minimum_jobs": 1,
                                                 "maximum_jobs": 4, "cores": 4, "processes": 2})
    c = load_settings(path).cluster
    jq = c.jobqueue
    assert c.kind == "slurm" and jq.adaptive and (jq.minimum_jobs, jq.maximum_jobs, jq.jobs) == (1, 4, 1)
    assert jq.walltime_seconds == 86400 and jq.worker_lifetime == 86400 - 300
    assert jobqueue.wanted_of(c) == (2, 8)  # worker processes at the minimum and the maximum
    update_cluster(path, jobqueue={"queue": "short", "walltime": "00:05:00"})
    jq = load_settings(path).cluster.jobqueue
    assert not jq.adaptive and jq.jobs == 1 and jq.worker_lifetime == 270 and jq.queue == "short"


def test_the_job_script_dask_jobqueue_writes(tmp_path, monkeypatch):
    apps = tmp_path / "apps"
    make_tiny_app(apps, "tinyapp")
    home = tmp_path / "home"
    app_env = AppEnv("tinyapp", apps_dir=apps, workspace=home)
    monkeypatch.setenv("SWITCHYARD_API_TOKEN", "s3cret-token")
    tls.ensure(home)
    update_cluster(app_env.settings_path, kind="slurm", jobqueue={
        "queue": "batch", "account": "proj1", "walltime": "00:30:00", "cores": 2, "memory": "4GB",
        "job_extra_directives": ["--qos=low"], "python": "/shared/my env/bin/python",
        "shared": str(tmp_path / "shared")})
    jq = load_settings(app_env.settings_path).cluster.jobqueue
    path = jobqueue.write_script(app_env, jq, "tls://10.0.0.5:8786", cython=False)
    script = path.read_text()
    tag = jobqueue.tag_of(app_env)
    assert path.parent == tmp_path / "shared" / "clusters" / tag
    for line in (f"#SBATCH -J {tag}", "#SBATCH -p batch", "#SBATCH -A proj1", "#SBATCH -t 00:30:00",
                 "#SBATCH --cpus-per-task=2", "#SBATCH --export=NONE", "#SBATCH --qos=low"):
        assert line in script.splitlines(), (line, script)
    command = script.splitlines()[-1]
    assert command.startswith("'/shared/my env/bin/python' -m distributed.cli.dask_worker tls://10.0.0.5:8786")
    assert f"--name {tag}-${{SLURM_JOB_ID}}" in command and "--lifetime 1620s" in command
    # The certificates the jobs present were copied to the shared folder, the key 0600.
    certs = jobqueue.worker_certs(app_env, jq)
    assert f"--tls-key {certs.key_file}" in command and Path(certs.key_file).stat().st_mode & 0o077 == 0
    assert Path(certs.ca_file).read_bytes() == Path(tls.workspace_certs(home).ca_file).read_bytes()
    # The job's environment is the allow-listed one: never the workbench's secrets.
    assert "s3cret-token" not in script and "export SWITCHYARD_HOME=" in script
    # bash reads the script as written (quoting holds).
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
    assert jobqueue.job_of_worker(tag, f"{tag}-1234") == "1234"
    assert jobqueue.job_of_worker(tag, f"{tag}-1234-1") == "1234"
    assert jobqueue.job_of_worker(tag, "127.0.0.1-0") is None
    # sbatch takes the -o/-e paths unquoted: a folder with a space is refused before anything runs.
    jq.shared = str(tmp_path / "my shared")
    with pytest.raises(SettingsError) as e:
        jobqueue.check_folder(app_env, jq)
    assert "cluster.jobqueue.shared" in str(e.value) and "\n" not in str(e.value)


def test_keeper_sizes_jobs_to_the_work_within_minimum_and_maximum():
    assert keeper.wanted_jobs(0, 1, 1, 3) == 1
    assert keeper.wanted_jobs(12, 1, 1, 3) == 3
    assert keeper.wanted_jobs(3, 2, 1, 4) == 2
    assert keeper.wanted_jobs(5, 2, 2, 2) == 2  # a fixed size: min = max


def test_sbatch_missing_gives_one_line_and_starts_nothing(tmp_path):
    apps = tmp_path / "apps"
    make_tiny_app(apps, "tinyapp")
    home = tmp_path / "home"
    app_env = AppEnv("tinyapp", apps_dir=apps, workspace=home)
    update_cluster(app_env.settings_path, kind="slurm", jobqueue={"queue": "debug"})
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    env = {"PATH": str(bare), "SWITCHYARD_HOME": str(home), "SWITCHYARD_APPS": str(apps), "HOME": str(tmp_path)}
    proc = subprocess.run([str(SWITCHYARD), "cluster", "up", "tinyapp"], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and "cluster.kind" in line and "sbatch" in line and "slurm-client" in line, line
    assert not (home / "clusters").exists() and not (home / "envs").exists()  # nothing started, nothing built
    if shutil.which("sbatch") is None:  # the library path too, where no SLURM is installed
        with pytest.raises(SwitchyardError):
            warm.up_sync(app_env)


def test_preview_of_a_slurm_app_plans_on_the_minimum_and_address_starts_nothing(tmp_path):
    from switchyard.exceptions import ClusterError
    from switchyard.runs.request import resolve

    apps = tmp_path / "apps"
    make_tiny_app(apps, "tinyapp")
    app_env = AppEnv("tinyapp", apps_dir=apps, workspace=tmp_path / "home")
    update_cluster(app_env.settings_path, kind="slurm", dask=True,
                   jobqueue={"queue": "debug", "minimum_jobs": 2, "maximum_jobs": 5, "cores": 2, "processes": 2})
    lines: list[str] = []
    req = resolve(app_env, mode=4, place=True, on_line=lines.append).request
    assert dict(req.workers) == {"slurm-job": 4} and req.workers_from == "slurm settings", req
    assert any("planning on its minimum of 4 worker(s)" in x for x in lines), lines
    assert not (app_env.home / "clusters").exists()  # a preview submits nothing

    update_cluster(app_env.settings_path, kind="address", scheduler="127.0.0.1:1")
    with pytest.raises(ClusterError) as e:
        resolve(app_env, mode=4, place=True, start_cluster=True)
    assert "\n" not in str(e.value) and 'kind = "address"' in str(e.value) and "nothing answers" in str(e.value)
    assert not (app_env.home / "clusters").exists()


def test_dask_jobqueue_loads_from_a_thread_and_keeps_the_callers_sigint_handler():
    # RUN (AGI in a thread) and the page's Start cluster (a background job) build jobs outside the
    # main thread; a fresh interpreter, so that dask_jobqueue is imported there for the first time.
    code = ("import signal, threading\n"
            "from switchyard.cluster import jobqueue\n"
            "before = signal.getsignal(signal.SIGINT)\n"
            "out = []\n"
            "t = threading.Thread(target=lambda: out.append(jobqueue._slurm_job_class().__name__))\n"
            "t.start(); t.join()\n"
            "print(out, signal.getsignal(signal.SIGINT) is before)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "['SLURMJob'] True", proc.stderr[-2000:]
