"""LocalCluster with real dask scheduler/worker processes running in a provisioned env."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from switchyard.cluster.connect import connect
from switchyard.cluster.env import env_python, worker_environ
from switchyard.cluster.local import LocalCluster
from switchyard.exceptions import ClusterError

from .tls_checks import assert_only_mutual_tls


def group_members(pgids: list[int]) -> list[int]:
    """Every live process whose process group is one of ``pgids`` (nannies' workers included)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) in pgids:
                found.append(int(entry.name))
    return found


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def test_two_workers_run_in_the_env_and_close_leaves_nothing(provisioned_env, tmp_path, monkeypatch):
    app_env = provisioned_env.app_env
    monkeypatch.setenv("SWITCHYARD_HOME", str(app_env.home))  # the workspace whose certificates clients use

    def where_am_i():  # local, so cloudpickle ships it by value (workers cannot import this module)
        import sys

        from distributed import get_worker

        import tinyapp.worker

        return get_worker().name, sys.executable, tinyapp.worker.info()["python"]

    lines: list[str] = []
    started = time.monotonic()
    cluster = LocalCluster(env_python(app_env), {"127.0.0.1": 2}, env=worker_environ(app_env, False),
                           on_line=lines.append, home=app_env.home)
    with cluster:
        cold_start = time.monotonic() - started
        assert cluster.worker_names == ["127.0.0.1-0", "127.0.0.1-1"]
        assert set(cluster.pids) == {"scheduler", "127.0.0.1-0", "127.0.0.1-1"}
        with connect(cluster.address) as client:
            answers = [client.submit(where_am_i, workers=[name], allow_other_workers=False,
                                     pure=False).result(timeout=30) for name in cluster.worker_names]
        # A run's own cluster: mutual TLS on the scheduler, both workers and both nannies.
        checked = assert_only_mutual_tls(cluster.address, app_env.home, tmp_path / "stranger")
        assert len(checked) == 5
        with pytest.raises(ClusterError, match="requires TLS"):
            connect(cluster.address.replace("tls://", "tcp://"))
        pids = list(cluster.pids.values())
        members = group_members(pids)
        assert len(members) >= 5  # scheduler + 2 nannies + their 2 worker processes
        # Every listener of the cluster (Dask's comms and its HTTP servers, which bind 0.0.0.0
        # unless told otherwise, even with --no-dashboard) is on the loopback bind address.
        import psutil

        listening = [(pid, c.laddr.ip) for pid in members for c in psutil.Process(pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening and {ip for _, ip in listening} == {"127.0.0.1"}, listening
    print(f"cold start of 1 scheduler + 2 workers: {cold_start:.1f} s")
    assert [a[0] for a in answers] == ["127.0.0.1-0", "127.0.0.1-1"]
    assert all(a[1] == str(env_python(app_env)) == a[2] for a in answers)
    assert any(s.startswith("[scheduler] ") for s in lines)
    assert any(s.startswith("[127.0.0.1-1] ") for s in lines)
    for pid in members:
        assert not is_alive(pid), f"process {pid} outlived close()"
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)
    cluster.close()  # idempotent
    assert cluster.pids == {}


def test_busy_requested_port_falls_back_to_a_free_one(provisioned_env):
    app_env = provisioned_env.app_env
    lines: list[str] = []
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with LocalCluster(env_python(app_env), {}, scheduler_address=f"127.0.0.1:{port}",
                          env=worker_environ(app_env, False), on_line=lines.append) as cluster:
            assert cluster.address.startswith("tls://127.0.0.1:")
            assert not cluster.address.endswith(f":{port}")
    assert any(f"port {port}" in s and "busy" in s for s in lines)


def test_worker_that_does_not_join_in_time_is_named_and_everything_is_closed(provisioned_env):
    app_env = provisioned_env.app_env
    cluster = LocalCluster(env_python(app_env), {"localhost": 1}, env=worker_environ(app_env, False),
                           join_timeout=0.2)
    seen: dict[str, int] = {}
    original = cluster._wait_for_workers

    def remember_then_wait():
        seen.update(cluster.pids)
        original()

    cluster._wait_for_workers = remember_then_wait  # observe the pids; the wait itself is real
    with pytest.raises(ClusterError, match="localhost-0"):
        cluster.start()
    assert set(seen) == {"scheduler", "localhost-0"}
    for pid in seen.values():
        assert not is_alive(pid)


def test_remote_hosts_are_refused_with_a_pointer_to_ssh(tmp_path):
    with pytest.raises(ClusterError, match="SSH"):
        LocalCluster(Path("/usr/bin/python3"), {"127.0.0.2": 1})
    with pytest.raises(ClusterError, match="port 'x'"):
        LocalCluster(Path("/usr/bin/python3"), {"127.0.0.1": 1}, scheduler_address="127.0.0.1:x")
