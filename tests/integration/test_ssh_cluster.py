"""INSTALL and warm clusters on two "hosts" reached over a real OpenSSH server on loopback.

127.0.0.2 and 127.0.0.3 are both this machine, each with its own install root; the
root of 127.0.0.3 holds quotes, spaces, ``;`` and ``$(...)`` so every command and
upload has to treat paths as data. 127.0.0.4 authorizes another key only, and
nothing listens on 127.0.0.5. The hosts are installed once for the module.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from switchyard.agi import AGI
from switchyard.runs.install import install_sync
from switchyard.app import AppEnv
from switchyard.cluster import ssh, warm
from switchyard.cluster.remote import WITH_ENV
from switchyard.exceptions import ClusterError
from switchyard.settings import update_cluster

from .conftest import cli, cli_json, copy_apps
from .sshd import SSHServer, running, ssh_settings_toml
from .tls_checks import assert_only_mutual_tls

pytestmark = pytest.mark.ssh

A, B = "127.0.0.2", "127.0.0.3"
SMALL = ["--arg", "files=4", "--arg", "rows_per_file=400"]


class Hosts:
    def __init__(self, server: SSHServer, root: Path):
        self.server = server
        self.root = root
        self.apps = copy_apps(root / "apps")
        self.home = root / "home"
        self.roots = {A: root / "hostA", B: root / "host B 'q' \"dq\" ; $(touch PWNED)"}
        self.app_env = AppEnv("flight", apps_dir=self.apps, workspace=self.home)
        self.settings = self.apps / "flight" / "app_settings.toml"
        text = self.settings.read_text().replace('"127.0.0.1" = 2', f'"{A}" = 1\n"{B}" = 1')
        text = text.replace('scheduler = "127.0.0.1:8786"', 'scheduler = "127.0.0.1:0"')
        self.settings.write_text(text + "\n" + ssh_settings_toml(server, self.roots))
        self.first: dict = {}
        self.first_seconds = 0.0

    def env_python(self, host: str) -> Path:
        return self.roots[host] / "envs" / "flight" / "bin" / "python"

    def log(self) -> str:
        return (self.home / "envs" / "flight" / "install.log").read_text()


# In the environment of every command of this module: none may reach a host's command line.
SECRETS = {"SWITCHYARD_API_TOKEN": "api-tok-R1", "SWITCHYARD_SMTP_PASSWORD": "smtp-pw-R2",
           "AWS_SECRET_ACCESS_KEY": "aws-R3"}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssh-hosts")
    sshd = SSHServer(root / "sshd", [A, B, "127.0.0.4"], refuse="127.0.0.4")
    sshd.record = root / "commands.log"  # each command the hosts are asked to run
    with pytest.MonkeyPatch.context() as mp, sshd as server:
        for name, value in SECRETS.items():
            mp.setenv(name, value)
        h = Hosts(server, root)
        started = time.monotonic()
        h.first = cli_json("install", "flight", home=h.home, apps=h.apps, timeout=900)
        h.first_seconds = time.monotonic() - started
        yield h
        if warm.read_record(h.app_env):
            warm.down_sync(h.app_env)


def test_install_provisions_both_hosts_and_checks_readiness(hosts):
    out = hosts.first
    assert out["ok"] is True, out
    assert set(out["hosts"]) == {A, B}
    for host in (A, B):
        result = out["hosts"][host]
        assert result["ok"] and not result["skipped"] and result["reason"] is None
        assert result["env_dir"] == str(hosts.roots[host] / "envs" / "flight")
        assert hosts.env_python(host).exists()
        assert (hosts.roots[host] / "bin" / "uv").exists()  # uv was missing: this machine's was uploaded
    log = hosts.log()
    for host in (A, B):
        assert f"[{host}] ready: flight.Flight loads with {hosts.env_python(host)}" in log
        assert f"[{host}] uv is not installed" in log
    # the readiness check imports the app from the uploaded wheel, not from this machine's apps folder
    assert f"{hosts.roots[A]}/envs/flight/lib/python3.11/site-packages/flight/worker.py" in log
    assert not list(hosts.root.rglob("PWNED")) and not (Path.home() / "PWNED").exists()


def install_until_unchanged(hosts: Hosts) -> tuple[dict, float, str]:
    """INSTALL again until nothing changed: other work on the switchyard package may change its wheel.

    Returns the result, its seconds and its part of the install log.
    """
    for _ in range(3):
        before = hosts.log()
        started = time.monotonic()
        out = cli_json("install", "flight", home=hosts.home, apps=hosts.apps)
        seconds = time.monotonic() - started
        log = hosts.log()[len(before):]
        assert out["ok"], out
        if out["skipped"]:
            return out, seconds, log
        assert "building the wheel of switchyard" in log, "rebuilt without a change"
    raise AssertionError("the switchyard sources kept changing")


def test_install_again_with_nothing_changed_is_fast(hosts):
    out, seconds, log = install_until_unchanged(hosts)
    assert all(h["skipped"] for h in out["hosts"].values())
    for host in (A, B):  # only the readiness check ran: no upload, no venv, no uv
        mine = [line for line in log.splitlines() if line.startswith(f"[{host}] ")]
        assert any("environment is up to date" in line for line in mine)
        assert not any(word in line for line in mine for word in ("uploading", "creating", "Installed"))
    assert seconds < hosts.first_seconds, (seconds, hosts.first_seconds)


def test_a_failing_host_does_not_hide_the_others(hosts):
    original = hosts.settings.read_text()
    try:
        update_cluster(hosts.settings, hosts={A: {"root": str(hosts.roots[A])},
                                              B: {"root": str(hosts.roots[B]), "python": "/nowhere/py3"}})
        started = time.monotonic()
        report = install_sync(hosts.app_env, workers={A: 1, B: 1, "127.0.0.4": 1, "127.0.0.5": 1},
                              on_line=lambda line: None)
        seconds = time.monotonic() - started
    finally:
        hosts.settings.write_text(original)
    reasons = {h: r.reason for h, r in report.hosts.items()}
    assert reasons == {A: None, B: ssh.PYTHON_MISSING, "127.0.0.4": ssh.AUTH_FAILED,
                       "127.0.0.5": ssh.UNREACHABLE}
    assert report.hosts[A].ok and report.hosts[A].skipped and not report.ok
    assert "/nowhere/py3" in report.hosts[B].message
    assert "127.0.0.5" in report.summary() and "FAILED" in report.summary()
    assert seconds < 60


def test_cluster_up_runs_flight_like_local_and_down_leaves_no_process(hosts, tmp_path, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_HOME", str(hosts.home))  # this process's clients use its certificates
    up = cli("cluster", "up", "flight", "--json", home=hosts.home, apps=hosts.apps, timeout=300)
    assert up.returncode == 0, up.stderr[-3000:]
    st = json.loads(up.stdout)
    assert st["state"] == "up" and st["workers"] == 2
    names = {h: [w["name"] for w in v["workers"]] for h, v in st["hosts"].items()}
    assert names == {A: [f"{A}-0"], B: [f"{B}-0"]}
    record = json.loads((hosts.home / "clusters" / "flight.json").read_text())
    pids = [record["scheduler"]["pid"]] + [w["pid"] for w in record["workers"]]
    assert len(running(pids)) >= 3
    # Mutual TLS on every listener over the hosts; the certificates reached them over SSH, key 0600.
    assert st["protocol"] == "tls" and st["address"].startswith("tls://")
    assert len(assert_only_mutual_tls(st["address"], hosts.home, tmp_path / "stranger")) == 5
    for host in (A, B):
        shipped = hosts.roots[host] / "clusters" / "flight" / record["id"] / "tls"
        assert stat.S_IMODE(shipped.stat().st_mode) == 0o700
        assert stat.S_IMODE((shipped / "cluster.key").stat().st_mode) == 0o600
        assert (shipped / "ca.pem").read_bytes() == (hosts.home / "tls" / "ca.pem").read_bytes()
        assert not (shipped / "ca.key").exists()  # the CA's key never leaves the workspace

    with ThreadPoolExecutor(1) as pool:  # the mode-0 reference runs meanwhile, on this machine
        reference = pool.submit(cli_json, "run", "flight", "--mode", "0", *SMALL, home=hosts.home,
                                apps=hosts.apps)
        run = cli("run", "flight", "--mode", "4", "--json", *SMALL, home=hosts.home, apps=hosts.apps,
                  timeout=300)
        ref = reference.result()
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout)
    assert out["status"] == "completed" and out["completed"] == out["batches"] == 4
    assert "using the warm cluster of 'flight'" in run.stderr
    db = sqlite3.connect(hosts.home / "switchyard.db")
    used = {w for (w,) in db.execute("SELECT worker FROM batches WHERE orchestration_id = ?",
                                     (out["orchestration_id"],))}
    assert used == {f"{A}-0", f"{B}-0"}
    pd.testing.assert_frame_equal(pd.read_parquet(out["output"]), pd.read_parquet(ref["output"]))

    status = cli_json("cluster", "status", "flight", home=hosts.home, apps=hosts.apps)
    assert status["state"] == "up" and status["address"] == st["address"]
    worker = status["hosts"][A]["workers"][0]
    assert worker["memory"] > 0 and worker["memory_limit"] > 0
    assert worker["pid"] == next(w["pid"] for w in record["workers"] if w["host"] == A)

    down = cli_json("cluster", "down", "flight", home=hosts.home, apps=hosts.apps)
    assert down["left"] == [] and set(down["stopped"]) == {"scheduler", f"{A}-0", f"{B}-0"}
    assert running(pids) == []
    assert not (hosts.home / "clusters" / "flight.json").exists()
    assert cli_json("cluster", "status", "flight", home=hosts.home, apps=hosts.apps)["state"] == "down"


def test_workers_that_do_not_join_in_time_are_named_and_stopped(hosts, monkeypatch):
    # Workers that spawn a fresh interpreter take seconds to join, far beyond 0.2 s: forked from
    # their nanny (the shipped default), host A's could join while host B's is still being launched.
    from switchyard.cluster import spec

    monkeypatch.setitem(spec.WORKER_ENV, "DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD", "spawn")
    lines: list[str] = []
    with pytest.raises(ClusterError) as e:
        warm.up_sync(hosts.app_env, join_timeout=0.2, on_line=lines.append)
    msg = str(e.value)
    assert "did not join within 0.2 s" in msg and A in msg and B in msg
    assert "check that" in msg and "can reach the scheduler" in msg
    pids = [int(s.rsplit("(pid ", 1)[1].rstrip(")")) for s in lines if "(pid " in s and "started" in s]
    pids += [int(s.split("(pid ")[1].rstrip(")")) for s in lines if s.startswith("scheduler at")]
    assert len(pids) == 3
    assert running(pids) == []
    assert warm.read_record(hosts.app_env) is None


def test_a_broken_venv_is_repaired(hosts):
    site = hosts.roots[A] / "envs" / "flight" / "lib" / "python3.11" / "site-packages"
    shutil.rmtree(site / "pandas")
    lines: list[str] = []
    report = install_sync(hosts.app_env, on_line=lines.append)
    assert report.ok, report.summary()
    assert not report.hosts[A].skipped
    of_a = [line for line in lines if line.startswith(f"[{A}] ")]
    # "broken" when the stamp still matched; "after the update" when the sources changed meanwhile
    assert any("environment is broken" in line or "does not load after the update" in line for line in of_a)
    assert not any("broken" in line or "rebuilding" in line for line in lines if line.startswith(f"[{B}] "))
    assert (site / "pandas" / "__init__.py").exists()
    out, _, _ = install_until_unchanged(hosts)
    assert out["hosts"][A]["skipped"]


def test_a_run_without_a_cluster_cold_starts_one_on_the_hosts(hosts):
    # The scheduler goes to a host too: 127.0.0.2 is not this machine here.
    lines: list[str] = []
    res = asyncio.run(AGI.run(hosts.app_env, mode=4, scheduler=f"{A}:0", on_line=lines.append,
                              files=3, rows_per_file=300))
    assert res.status == "completed" and res.batches == 3
    assert any("starting one (cold start)" in line for line in lines)
    record = warm.read_record(hosts.app_env)
    assert record is not None and record.idle_timeout == 600
    assert record.scheduler.host == A and not record.scheduler.local
    assert record.address.startswith(f"tls://{A}:")
    pids = [record.scheduler.pid] + [w.pid for w in record.workers]
    assert len(running(pids)) >= 3
    warm.down_sync(hosts.app_env)
    assert running(pids) == []


def test_no_secret_on_any_remote_command_line(hosts):
    commands = hosts.server.commands()
    assert len(commands) > 20  # install, cluster up/down, runs: all recorded by the ForceCommand wrapper
    everything = "\n".join(commands)
    assert not [name for name, value in SECRETS.items() if value in everything]
    assert "UV_NO_PROGRESS=1" not in everything  # uv's settings travel on stdin (an index URL may hold a password)
    assert any(WITH_ENV.strip().splitlines()[0] in c for c in commands)
