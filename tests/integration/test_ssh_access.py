"""The SSH layer against a real OpenSSH server on loopback: keys, host keys, timeouts, quoting."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from switchyard.cluster import ssh
from switchyard.cluster.ssh import HostAccess
from switchyard.exceptions import GuardError, HostError
from switchyard.settings import parse_settings

from .conftest import cli, copy_apps
from .sshd import SSHServer

pytestmark = pytest.mark.ssh

WEIRD = ["it's", 'say "hi"', "a b  c", "x; touch PWNED", "$(touch PWNED)", "`touch PWNED`", "$HOME", "*",
         "tab\there", "back\\slash", "new\nline", "-n", ""]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with SSHServer(tmp_path_factory.mktemp("sshd"), ["127.0.0.2", "127.0.0.3", "127.0.0.4"],
                   refuse="127.0.0.4") as s:
        yield s


def access(server: SSHServer, host: str = "127.0.0.2", **kw) -> HostAccess:
    values = dict(host=host, user="root", port=server.port, key_path=str(server.client_key),
                  known_hosts=str(server.known_hosts))
    values.update(kw)
    return HostAccess(**values)


def run(coro):
    return asyncio.run(coro)


def fingerprint(server: SSHServer) -> str:
    import asyncssh

    return asyncssh.import_public_key(server.host_public_key()).get_fingerprint("sha256")


async def _argv_echo(a: HostAccess, args: list[str]) -> list[str]:
    async with await ssh.connect(a) as remote:
        done = await remote.run(["python3", "-c", "import json, sys; print(json.dumps(sys.argv[1:]))", *args])
    assert done.code == 0, done.text
    return json.loads(done.lines[-1])


def test_arguments_reach_the_remote_side_as_data(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(_argv_echo(access(server), WEIRD)) == WEIRD
    assert not list(tmp_path.rglob("PWNED")) and not (Path.home() / "PWNED").exists()


def test_paths_with_quotes_spaces_and_substitutions_are_created_verbatim(server, tmp_path):
    folder = tmp_path / "dir 'q' \"dq\" ; $(touch PWNED) `id`"
    target = folder / "file $HOME.txt"
    source = tmp_path / "payload.bin"
    source.write_bytes(b"\x00data\xff")

    async def go():
        async with await ssh.connect(access(server)) as remote:
            done = await remote.run(["python3", "-c", "import os, sys; os.makedirs(sys.argv[1]); "
                                     "open(os.path.join(sys.argv[1], sys.argv[2]), 'w').write(sys.argv[3])",
                                     str(folder), target.name, "it's $(data)"])
            assert done.code == 0, done.text
            await remote.put(source, str(folder / "up load;.bin"))

    run(go())
    assert target.read_text() == "it's $(data)"
    assert (folder / "up load;.bin").read_bytes() == b"\x00data\xff"
    assert not list(tmp_path.rglob("PWNED"))


def test_output_is_streamed_line_by_line_with_the_exit_code(server):
    seen: list[tuple[float, str]] = []

    async def go():
        async with await ssh.connect(access(server)) as remote:
            script = ("import sys, time\nprint('one')\ntime.sleep(0.6)\n"
                      "print('two', file=sys.stderr)\nsys.exit(3)")
            return await remote.run(["python3", "-u", "-c", script],
                                    on_line=lambda s: seen.append((time.monotonic(), s)), prefix="[h] ")

    done = run(go())
    assert done.code == 3
    assert [s for _, s in seen] == ["[h] one", "[h] two"]
    assert seen[1][0] - seen[0][0] > 0.4  # the first line arrived before the command ended


def test_wrong_key_is_auth_failed(server):
    with pytest.raises(HostError) as e:
        run(ssh.connect(access(server, key_path=str(server.other_key))))
    assert e.value.reason == ssh.AUTH_FAILED and e.value.host == "127.0.0.2"
    assert "ssh-copy-id" in str(e.value)
    # the host that authorizes only the other key refuses the test key
    with pytest.raises(HostError) as e:
        run(ssh.connect(access(server, host="127.0.0.4")))
    assert e.value.reason == ssh.AUTH_FAILED


def test_missing_key_file_is_auth_failed(server, tmp_path):
    with pytest.raises(HostError) as e:
        run(ssh.connect(access(server, key_path=str(tmp_path / "nope"))))
    assert e.value.reason == ssh.AUTH_FAILED and "does not exist" in str(e.value)


def test_unknown_host_key_is_refused_with_the_how_to_then_trusted(server, tmp_path):
    known = tmp_path / "ssh" / "known_hosts"  # does not exist yet: nothing is trusted
    a = access(server, known_hosts=str(known))
    with pytest.raises(HostError) as e:
        run(ssh.connect(a))
    msg = str(e.value)
    assert e.value.reason == ssh.HOST_KEY_UNKNOWN
    assert "switchyard cluster trust APP 127.0.0.2" in msg and "SHA256:" in msg
    assert fingerprint(server) in msg and "--fingerprint" in msg
    assert not known.exists()  # refusing never records anything

    wrong = "SHA256:" + "A" * 43
    with pytest.raises(HostError) as e:  # a fingerprint the host does not present: nothing recorded
        run(ssh.trust_host(a, wrong))
    assert e.value.reason == ssh.HOST_KEY_UNKNOWN and "nothing recorded" in str(e.value)
    assert fingerprint(server) in str(e.value) and wrong in str(e.value)  # the presented one is shown
    assert not known.exists()
    for bad in ("", "MD5:ab:cd", "SHA256:", "deadbeef"):
        with pytest.raises(GuardError):
            run(ssh.trust_host(a, bad))
    assert not known.exists()

    info = run(ssh.trust_host(a, fingerprint(server)))
    assert info["added"] and info["pattern"] == f"[127.0.0.2]:{server.port}"
    assert known.read_text() == server.known_hosts_line("127.0.0.2")
    assert oct(known.stat().st_mode & 0o777) == "0o600"
    assert run(_argv_echo(a, ["ok"])) == ["ok"]
    assert run(ssh.trust_host(a, fingerprint(server) + "="))["added"] is False  # the same key again
    assert known.read_text().count("\n") == 1


def test_a_changed_host_key_is_refused_and_not_overwritten(server, tmp_path):
    known = tmp_path / "known_hosts"
    other = Path(f"{server.other_key}.pub").read_text().split()[:2]  # some other key, posing as the host's
    known.write_text(f"[127.0.0.2]:{server.port} {' '.join(other)}\n")
    a = access(server, known_hosts=str(known))
    with pytest.raises(HostError) as e:
        run(ssh.connect(a))
    assert e.value.reason == ssh.HOST_KEY_UNKNOWN and "differs" in str(e.value)
    with pytest.raises(HostError) as e:
        run(ssh.trust_host(a, fingerprint(server)))
    assert "different key" in str(e.value)
    assert known.read_text().count("\n") == 1


def test_host_not_listening_is_unreachable_at_once(server):
    started = time.monotonic()
    with pytest.raises(HostError) as e:
        run(ssh.connect(access(server, host="127.0.0.5")))
    assert e.value.reason == ssh.UNREACHABLE
    assert time.monotonic() - started < 5


def test_silent_host_is_unreachable_within_the_connect_timeout():
    # A port that accepts TCP but never speaks SSH: only the timeout ends the wait.
    listener = socket.socket()
    listener.bind(("127.0.0.6", 0))
    listener.listen(5)
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    try:
        a = HostAccess(host="127.0.0.6", user="root", port=listener.getsockname()[1], connect_timeout=1.0)
        started = time.monotonic()
        with pytest.raises(HostError) as e:
            run(ssh.connect(a))
        assert e.value.reason == ssh.UNREACHABLE
        assert time.monotonic() - started < 4
    finally:
        listener.close()


def test_access_comes_from_ssh_and_host_settings(tmp_path):
    text = ('[cluster]\n[cluster.workers]\n"h1" = 1\n"h2" = 1\n[cluster.ssh]\nuser = "ops"\nport = 2222\n'
            'key_path = "~/k"\n[cluster.hosts."h2"]\nport = 22\nuser = "root"\nroot = "/srv/sy"\n'
            'python = "/opt/py/bin/python3.11"\n')
    cluster = parse_settings(text, tmp_path / "app_settings.toml").cluster
    h1, h2 = ssh.access_for(cluster, "h1"), ssh.access_for(cluster, "h2")
    assert (h1.user, h1.port, h1.key_path, h1.root, h1.python) == ("ops", 2222, "~/k", ssh.DEFAULT_ROOT, None)
    assert (h2.user, h2.port, h2.root, h2.python) == ("root", 22, "/srv/sy", "/opt/py/bin/python3.11")
    assert h2.pattern == "h2" and h1.pattern == "[h1]:2222"


def test_a_password_is_tried_after_the_keys_and_kept_in_memory_only(server):
    a = access(server)
    ssh.remember_password(a, "s3cret-pass")
    try:
        assert run(_argv_echo(a, ["x"])) == ["x"]  # the key still gets in first
        wrong = access(server, key_path=str(server.other_key))
        ssh.remember_password(wrong, "s3cret-pass")
        with pytest.raises(HostError) as e:  # this sshd takes keys only
            run(ssh.connect(wrong))
        assert e.value.reason == ssh.AUTH_FAILED and "or the password" in str(e.value)
        assert "s3cret-pass" not in str(e.value)
    finally:
        ssh.forget_passwords()
    assert not ssh._passwords


def test_cli_trust_records_the_hosts_of_the_app(server, tmp_path):
    apps = copy_apps(tmp_path / "apps")
    known = tmp_path / "known_hosts"
    settings = apps / "flight" / "app_settings.toml"
    text = settings.read_text().replace('"127.0.0.1" = 2', '"127.0.0.2" = 1\n"127.0.0.3" = 1')
    settings.write_text(text + f'\n[cluster.ssh]\nport = {server.port}\nknown_hosts = "{known}"\n')
    for args, why in [((), "name the host to trust"), (("127.0.0.2",), "no --fingerprint given"),
                      (("127.0.0.9", "--fingerprint", fingerprint(server)), "is not a remote host of 'flight'"),
                      (("127.0.0.2", "--fingerprint", "SHA256:" + "B" * 43), "nothing recorded")]:
        proc = cli("cluster", "trust", "flight", *args, home=tmp_path / "home", apps=apps)
        assert proc.returncode == 2 and why in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, \
            proc.stderr
        assert not known.exists()  # no trust-all, no blind trust
    found = []
    for host in ("127.0.0.2", "127.0.0.3"):  # one host at a time, each with its confirmed fingerprint
        proc = cli("cluster", "trust", "flight", host, "--fingerprint", fingerprint(server), "--json",
                   home=tmp_path / "home", apps=apps)
        assert proc.returncode == 0, proc.stderr
        found += json.loads(proc.stdout)["hosts"]
    assert [h["host"] for h in found] == ["127.0.0.2", "127.0.0.3"] and all(h["added"] for h in found)
    assert known.read_text() == server.known_hosts_line("127.0.0.2") + server.known_hosts_line("127.0.0.3")


@pytest.mark.parametrize("table, key", [
    ('[cluster.ssh]\nprt = 22', "cluster.ssh.prt"),
    ('[cluster.ssh]\nport = 0', "cluster.ssh.port"),
    ('[cluster.ssh]\nport = true', "cluster.ssh.port"),
    ('[cluster.ssh]\nuser = "ops@h1"', "cluster.ssh.user"),
    ('[cluster.ssh]\nkey_path = ""', "cluster.ssh.key_path"),
    ('[cluster.hosts."bad host"]\nroot = "/x"', "cluster.hosts"),
    ('[cluster.hosts."h1"]\nroot = 3', 'cluster.hosts."h1".root'),
    ('[cluster.hosts."h1"]\nfolder = "/x"', 'cluster.hosts."h1".folder'),
])
def test_bad_ssh_settings_name_the_key(tmp_path, table, key):
    from switchyard.exceptions import SettingsError

    with pytest.raises(SettingsError) as e:
        parse_settings(table + "\n", tmp_path / "app_settings.toml")
    assert e.value.key == key and str(e.value).startswith(f"{tmp_path / 'app_settings.toml'}: {key}")


def test_where_the_scheduler_runs_and_who_can_reach_it():
    from switchyard.cluster.warm import _check_reachable, scheduler_runs_here
    from switchyard.exceptions import ClusterError

    assert scheduler_runs_here("127.0.0.1") and scheduler_runs_here("localhost")
    assert not scheduler_runs_here("127.0.0.2")  # stands for another host, as in these tests
    _check_reachable("127.0.0.1", ["127.0.0.2", "localhost"])  # the same machine: reachable
    with pytest.raises(ClusterError, match="host '10.0.0.7' cannot reach it"):
        _check_reachable("127.0.0.1", ["127.0.0.2", "10.0.0.7"])
    with pytest.raises(ClusterError, match="every interface"):
        _check_reachable("0.0.0.0", ["10.0.0.7"])
