"""Mutual TLS on a warm cluster of this machine: strangers are refused, runs complete, the
certificate shows in status and rotates; a cluster recorded before TLS reads as plaintext."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import ssl
import stat

import distributed
import pytest

from switchyard.app import AppEnv
from switchyard.cluster import tls, warm
from switchyard.cluster.connect import connect
from switchyard.cluster.record import ClusterRecord, record_path, save_record
from switchyard.cluster.spec import Recorded
from switchyard.commands.cluster import format_status
from switchyard.exceptions import ClusterError

from .conftest import cli, cli_json
from .tls_checks import assert_only_mutual_tls

ARGS = ("--arg", "tasks=4", "--arg", "samples_per_task=2000", "--arg", "chunks=1")


def presented(address: str, home) -> str:
    """The SHA256 fingerprint of the certificate the listener at ``address`` presents."""
    certs = tls.workspace_certs(home)
    context = ssl.create_default_context(cafile=certs.ca_file)
    context.check_hostname = False  # Dask's certificates name no host; the CA is what is checked
    context.load_cert_chain(certs.cert_file, certs.key_file)
    host, port = tls.host_port(address).rsplit(":", 1)
    with socket.create_connection((host.strip("[]"), int(port)), timeout=5) as raw:
        with context.wrap_socket(raw) as conn:
            return "SHA256:" + hashlib.sha256(conn.getpeercert(binary_form=True)).hexdigest()


def test_a_warm_cluster_refuses_strangers_runs_and_rotates_its_certificate(run_home, tmp_path, monkeypatch):
    apps, home = run_home
    monkeypatch.setenv("SWITCHYARD_HOME", str(home))
    up = cli_json("cluster", "up", "montecarlo", "--scheduler", "127.0.0.1:0", home=home, apps=apps)
    try:
        assert up["protocol"] == "tls" and up["address"].startswith("tls://127.0.0.1:")
        expires = dt.datetime.fromisoformat(up["certificate"]["expires"])
        assert expires - dt.datetime.now(dt.timezone.utc) > dt.timedelta(days=300)
        assert up["certificate"]["restart_needed"] is False
        folder = home / "tls"
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        for key in ("ca.key", "cluster.key"):
            assert stat.S_IMODE(os.stat(folder / key).st_mode) == 0o600
        assert len(assert_only_mutual_tls(up["address"], home, tmp_path / "stranger")) == 5

        run = cli_json("run", "montecarlo", "--mode", "4", *ARGS, home=home, apps=apps)
        assert run["status"] == "completed" and run["completed"] == 4, run
        text = cli("cluster", "status", "montecarlo", home=home, apps=apps).stdout
        assert f"at {up['address']}" in text and "traffic: tls: mutual TLS, certificate expires" in text

        rotated = cli("cluster", "rotate-certs", "montecarlo", home=home, apps=apps)
        assert rotated.returncode == 0, rotated.stderr
        assert "must be restarted" in rotated.stdout and "--restart" in rotated.stdout
        st = cli_json("cluster", "status", "montecarlo", home=home, apps=apps)
        assert st["certificate"]["fingerprint"] != up["certificate"]["fingerprint"]
        assert st["certificate"]["ca_fingerprint"] == up["certificate"]["ca_fingerprint"]
        assert st["certificate"]["restart_needed"] is True
        with connect(up["address"]) as client:  # the new leaf is trusted by the running processes
            assert len(client.scheduler_info()["workers"]) == 2
        assert "renewed after this cluster started" in format_status(st)
        assert presented(up["address"], home) == up["certificate"]["fingerprint"]  # still the old leaf

        # --restart: a new leaf again, and the cluster back at its address presenting it everywhere
        again = cli_json("cluster", "rotate-certs", "montecarlo", "--restart", home=home, apps=apps)
        now = again["status"]
        assert again["restarted"] is True and now["address"] == up["address"], now["address"]
        assert now["certificate"]["restart_needed"] is False
        assert now["certificate"]["fingerprint"] not in (up["certificate"]["fingerprint"],
                                                         st["certificate"]["fingerprint"])
        assert now["certificate"]["ca_fingerprint"] == up["certificate"]["ca_fingerprint"]
        listeners = assert_only_mutual_tls(now["address"], home, tmp_path / "stranger")
        assert len(listeners) == 5
        assert {presented(a, home) for a in listeners} == {now["certificate"]["fingerprint"]}
        assert "renewed after this cluster started" not in format_status(now)
    finally:
        cli("cluster", "down", "montecarlo", home=home, apps=apps)


def test_a_cluster_recorded_before_tls_reads_as_plaintext_and_is_not_extended(run_home, tmp_path):
    apps, home = run_home
    app_env = AppEnv("flight", apps_dir=apps, workspace=home)
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                                  dashboard_address=":0", scheduler_port=0) as old:
        me = Recorded("scheduler", "127.0.0.1", os.getpid(), started=None)  # never stopped: no down here
        save_record(app_env, ClusterRecord(app="flight", id="sy-flight-old", address=old.scheduler_address,
                                           dashboard=None, scheduler=me, wanted={"127.0.0.1": 2},
                                           cython=False, started_at=0.0))
        try:
            st = warm.status(app_env)
            assert st["protocol"] == "tcp" and st["certificate"] is None and st["state"] == "degraded"
            assert "PLAINTEXT, unauthenticated (started before TLS" in format_status(st)
            with pytest.raises(ClusterError, match="started before TLS and runs in plaintext"):
                warm.up_sync(app_env)
            lines: list[str] = []
            assert warm.choose_cluster(app_env, "127.0.0.1:1", {"127.0.0.1": 2}, False, lines.append)[1] \
                == old.scheduler_address
            assert any("runs in plaintext (started before TLS)" in line for line in lines)
        finally:
            record_path(app_env).unlink()
    assert tls.protocol_of(old.scheduler_address) == "tcp"
