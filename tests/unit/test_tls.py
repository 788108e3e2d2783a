"""Workspace certificates, [cluster.tls] and which security a client gets (no processes)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import stat

import pytest

from switchyard.app import AppEnv
from switchyard.cluster import tls, warm
from switchyard.cluster.spec import ClusterSpec, HostSpec, scheduler_argv, worker_argv
from switchyard.exceptions import ClusterError, SettingsError
from switchyard.settings import TLSSettings, check_scheduler, check_tls, parse_settings, update_cluster


def test_certificates_are_made_private_renewed_near_expiry_and_rotated_under_the_same_ca(tmp_path):
    certs = tls.ensure(tmp_path)
    d = tmp_path / "tls"
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert {p.name for p in d.iterdir()} == {".lock", "ca.pem", "ca.key", "cluster.pem", "cluster.key"}
    for key in (certs.key_file, d / "ca.key"):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    first = tls.info(tmp_path)
    assert tls.ensure(tmp_path) == certs and tls.info(tmp_path) == first  # current: untouched
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=tls.LEAF_DAYS - 10)
    tls.ensure(tmp_path, now=later)  # expires within 30 days of "later": renewed, same CA
    renewed = tls.info(tmp_path)
    assert renewed["fingerprint"] != first["fingerprint"] and renewed["ca_fingerprint"] == first["ca_fingerprint"]
    assert renewed["expires"] > first["expires"]
    new_ca = tls.rotate(tmp_path, new_ca=True)
    assert new_ca["ca_fingerprint"] != first["ca_fingerprint"]
    assert stat.S_IMODE(os.stat(certs.key_file).st_mode) == 0o600
    assert not list(d.glob(".*.tmp"))
    # Key material travels as file paths only.
    argv = certs.argv()
    assert argv[:2] == ["--protocol", "tls"] and certs.key_file in argv
    assert not any("PRIVATE KEY" in a for a in argv)
    sec = certs.security()
    assert sec.require_encryption and sec.tls_ca_file == certs.ca_file
    assert sec.tls_client_key == sec.tls_worker_key == sec.tls_scheduler_key == certs.key_file


def test_spec_command_lines_carry_the_tls_flags_of_each_host():
    a = HostSpec(python="/a/python", folder="/a", bind="10.0.0.1", tls=tls.Certs("/a/ca", "/a/c", "/a/k"))
    b = HostSpec(python="/b/python", folder="/b", bind="10.0.0.2")
    spec = ClusterSpec(scheduler="10.0.0.1:8786", workers={"10.0.0.2": 1, "10.0.0.1": 1},
                       hosts={"10.0.0.1": a, "10.0.0.2": b})
    s = scheduler_argv(spec, 8786, dashboard=True)
    assert s[s.index("--protocol") + 1] == "tls" and s[s.index("--tls-key") + 1] == "/a/k"
    assert s[s.index("--dashboard-address") + 1] == "10.0.0.1:0"  # the scheduler host only
    w = worker_argv(spec, "10.0.0.1", "10.0.0.1-0", "tls://10.0.0.1:8786")
    assert w[w.index("--tls-ca-file") + 1] == "/a/ca" and "--no-dashboard" in w
    assert "--protocol" not in worker_argv(spec, "10.0.0.2", "10.0.0.2-0", "tcp://10.0.0.1:8786")


def test_tls_addresses_and_the_cluster_tls_table_are_validated(tmp_path):
    assert check_scheduler("tls://10.0.0.5:8786") == "tls://10.0.0.5:8786"
    assert check_scheduler("tls://[fe80::1]:1") == "tls://[fe80::1]:1"
    with pytest.raises(SettingsError, match="tls://10.0.0.5:8786"):
        check_scheduler("udp://10.0.0.5:8786")
    got = check_tls({"ca_file": "/c/ca.pem", "cert_file": "/c/me.pem", "key_file": "/c/me.key"})
    assert got.has_files and not got.allow_plaintext
    with pytest.raises(SettingsError, match="cluster.tls.key_file.*all three"):
        check_tls({"ca_file": "/c/ca.pem", "cert_file": "/c/me.pem"})
    with pytest.raises(SettingsError, match="cluster.tls.allow_plaintext"):
        check_tls({"allow_plaintext": "yes"})
    with pytest.raises(SettingsError, match="cluster.tls.cafile.*unknown key"):
        check_tls({"cafile": "/c/ca.pem"})
    path = tmp_path / "app_settings.toml"
    path.write_text('# mine\n[cluster]\nscheduler = "tls://10.0.0.5:8786"\n')
    saved = update_cluster(path, tls={"allow_plaintext": True})
    assert saved.cluster.tls.allow_plaintext and saved.cluster.scheduler == "tls://10.0.0.5:8786"
    assert "# mine" in path.read_text() and "[cluster.tls]" in path.read_text()
    assert parse_settings(path.read_text(), path).cluster.tls == TLSSettings(allow_plaintext=True)


def test_external_schedulers_need_their_certificates_or_an_explicit_plaintext(tmp_path):
    files = TLSSettings("/c/ca.pem", "/c/me.pem", "/c/me.key")
    assert tls.external_address("10.0.0.5:8786", files) == "tls://10.0.0.5:8786"
    with pytest.raises(ClusterError, match="write tls://10.0.0.5:8786"):
        tls.external_address("tcp://10.0.0.5:8786", files)
    with pytest.raises(ClusterError, match="allow_plaintext = true"):
        tls.external_address("10.0.0.5:8786", TLSSettings())
    assert tls.external_address("10.0.0.5:8786", TLSSettings(allow_plaintext=True)) == "10.0.0.5:8786"
    tls.remember_external("tls://10.0.0.5:8786", files, tmp_path)
    address, sec = tls.security_for("tls://10.0.0.5:8786", tmp_path)
    assert address == "tls://10.0.0.5:8786" and sec.tls_ca_file == "/c/ca.pem" and sec.tls_client_key == "/c/me.key"
    assert tls.security_for("tcp://10.0.0.9:1", tmp_path) == ("tcp://10.0.0.9:1", None)
    with pytest.raises(ClusterError, match="has no cluster certificates"):
        tls.security_for("tls://10.0.0.9:1", tmp_path)
    tls.ensure(tmp_path)
    assert tls.security_for("tls://10.0.0.9:1", tmp_path)[1].tls_ca_file == str(tmp_path / "tls" / "ca.pem")


def test_plain_tcp_to_a_tls_cluster_of_the_workspace_is_one_line(tmp_path):
    (tmp_path / "clusters").mkdir()
    (tmp_path / "clusters" / "flight.json").write_text('{"address": "tls://127.0.0.1:4321"}')
    for plain in ("tcp://127.0.0.1:4321", "127.0.0.1:4321"):
        with pytest.raises(ClusterError, match=r"requires TLS: connect to tls://127.0.0.1:4321") as e:
            tls.security_for(plain, tmp_path)
        assert "\n" not in str(e.value)
    tls.remember_local("tls://127.0.0.1:5555")
    try:
        with pytest.raises(ClusterError, match="requires TLS"):
            tls.security_for("tcp://127.0.0.1:5555", tmp_path)
    finally:
        tls.forget_local("tls://127.0.0.1:5555")
    assert tls.security_for("tcp://127.0.0.1:5555", tmp_path)[1] is None


def test_a_run_refuses_a_foreign_plaintext_scheduler_unless_allowed(tmp_path):
    app = tmp_path / "apps" / "x"
    app.mkdir(parents=True)
    with socket.socket() as listener:  # something answers at the address: a scheduler Switchyard did not start
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        (app / "app_settings.toml").write_text(f'[cluster]\nscheduler = "127.0.0.1:{port}"\n')
        env = AppEnv("x", apps_dir=tmp_path / "apps", workspace=tmp_path / "home")
        with pytest.raises(ClusterError, match="would be reached in plaintext.*allow_plaintext = true"):
            warm.choose_cluster(env, f"127.0.0.1:{port}", {"127.0.0.1": 1}, False, lambda line: None)
