"""Nothing secret on a remote command line, nothing of the caller's secrets in an SSH
session (issue 14), checked on a real sshd whose ForceCommand wrapper records every command
it is asked to run: what `ps` on that host would have shown."""

from __future__ import annotations

import asyncio
import json

import pytest

from switchyard.cluster import remote as remote_install
from switchyard.cluster import ssh
from switchyard.cluster.ssh import HostAccess

from .sshd import SSHServer

pytestmark = pytest.mark.ssh

INDEX = "https://guards:index-pw-Z1@packages.example/simple"
SECRETS = {"SWITCHYARD_API_TOKEN": "api-tok-Z2", "SWITCHYARD_SMTP_PASSWORD": "smtp-pw-Z3",
           "AWS_SECRET_ACCESS_KEY": "aws-Z4"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("sshd-record")
    s = SSHServer(root, ["127.0.0.2"])
    s.record = root / "commands.log"
    with s:
        yield s


def test_uv_settings_reach_the_remote_process_on_stdin_not_argv(server, monkeypatch):
    monkeypatch.setenv("UV_INDEX_URL", INDEX)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    access = HostAccess(host="127.0.0.2", user="root", port=server.port, key_path=str(server.client_key),
                        known_hosts=str(server.known_hosts))
    show = "import json, os, sys; print(json.dumps(dict(os.environ))); print(json.dumps(sys.stdin.read()))"

    async def go():
        async with await ssh.connect(access) as r:
            # as remote INSTALL runs uv: WITH_ENV reads the settings from stdin, then execs
            done = await r.run(["python3", "-c", remote_install.WITH_ENV, "python3", "-c", show],
                               stdin=json.dumps(remote_install.uv_environ()) + "\n")
            plain = await r.run(["python3", "-c", "import json, os; print(json.dumps(dict(os.environ)))"])
        return done, plain

    done, plain = asyncio.run(go())
    assert done.code == 0, done.text
    seen = json.loads(done.lines[-2])
    assert seen["UV_INDEX_URL"] == INDEX and seen["UV_NO_PROGRESS"] == "1" and "VIRTUAL_ENV" not in seen
    assert json.loads(done.lines[-1]) == ""  # the program itself reads an empty stdin
    session = json.loads(plain.lines[-1])  # an SSH session gets none of this process's environment
    assert not {*SECRETS, "UV_INDEX_URL"} & set(session) and session.get("HOME")
    commands = server.commands()
    assert len(commands) >= 2 and any("execvp" in c for c in commands)  # the wrapper saw both
    everything = "\n".join(commands)
    assert "index-pw-Z1" not in everything and "UV_INDEX_URL" not in everything
    assert not any(v in everything for v in SECRETS.values())
