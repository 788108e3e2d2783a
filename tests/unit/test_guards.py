"""Security guards that need no process of their own: binds, the API token's sources and the
documentation routes behind it (issue 14)."""

from __future__ import annotations

import os
import stat

import pytest
from fastapi.testclient import TestClient

from switchyard.api import create_app, read_token_file
from switchyard.binds import check_ui_bind
from switchyard.cli import main
from switchyard.exceptions import GuardError
from switchyard.runs.store import RunStore

TOKEN = "docs-token-91c2"


def test_documentation_routes_need_the_token_like_every_other(tmp_path):
    store = RunStore(tmp_path / "switchyard.db")
    try:
        with TestClient(create_app(store.path, TOKEN)) as c:
            for path in ("/docs", "/redoc", "/openapi.json"):
                assert c.get(path).status_code == 401, path
                assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
                assert c.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, path
            doc = c.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
            assert "/orchestrations/{oid}" in doc["paths"] and "/docs" not in doc["paths"]
        with TestClient(create_app(store.path, None)) as c:  # loopback without a token: open
            assert c.get("/docs").status_code == 200 and "swagger" in c.get("/docs").text.lower()
    finally:
        store.close()


def test_token_file_is_read_only_when_private_and_not_empty(tmp_path):
    f = tmp_path / "token"
    f.write_text(f"  {TOKEN}\n")
    f.chmod(0o644)
    with pytest.raises(GuardError, match=r"other users may read it \(mode 0644\): run chmod 600"):
        read_token_file(f)
    f.chmod(0o600)
    assert read_token_file(f) == TOKEN
    f.write_text("\n")
    with pytest.raises(GuardError, match="the file is empty"):
        read_token_file(f)
    with pytest.raises(GuardError, match="cannot read it"):
        read_token_file(tmp_path / "missing")


def test_cli_refuses_a_token_on_argv_and_a_public_workbench(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SWITCHYARD_HOME", str(tmp_path))
    code = main(["api", "--token", TOKEN, "--port", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "--token is refused" in err and "--token-file FILE" in err
    assert "SWITCHYARD_API_TOKEN" in err and TOKEN not in err and len(err.strip().splitlines()) == 1
    for address in ("0.0.0.0", "192.0.2.7", "::", "workbench.example.org"):
        code = main(["ui", "--address", address, "--port", "1"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"refusing to serve the workbench on {address}" in err
        assert "arbitrary code" in err and "reverse proxy with authentication" in err and "--expose" in err
    check_ui_bind("0.0.0.0", expose=True)
    for address in ("127.0.0.1", "::1", "localhost", "127.0.0.9"):
        check_ui_bind(address, expose=False)


def test_saved_app_settings_keep_their_mode_and_new_files_follow_the_umask(tmp_path):
    from switchyard.settings import update_args, update_cluster
    from switchyard.workspace import atomic_write_text

    path = tmp_path / "app_settings.toml"
    path.write_text("# operator's comment\n[args]\nn = 4\n\n[cluster]\ndask = true\n")
    for mode in (0o640, 0o604, 0o600):
        path.chmod(mode)
        update_args(path, {"n": 5})
        update_cluster(path, pool=True)
        assert stat.S_IMODE(path.stat().st_mode) == mode
    assert "# operator's comment" in path.read_text() and "n = 5" in path.read_text()
    old = os.umask(0o027)
    try:
        fresh = atomic_write_text(tmp_path / "new.txt", "x")
        given = atomic_write_text(tmp_path / "given.txt", "x", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640 and stat.S_IMODE(given.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app_settings.toml", "given.txt", "new.txt"]


def test_smtp_login_is_allowed_over_tls_or_when_plaintext_is_explicitly_allowed(tmp_path):
    from switchyard.alerts import config

    base = ('[[channels]]\nname = "m"\nkind = "smtp"\nhost = "127.0.0.1"\nsender = "a@b"\nto = ["c@d"]\n'
            'username = "alerts"\n')
    for extra, encryption in (("port = 465\n", "smtps"), ("port = 587\nstarttls = true\n", "starttls"),
                              ("port = 2525\nsmtps = true\n", "smtps"),
                              ("port = 25\nallow_plaintext_login = true\n", "none")):
        (tmp_path / "alerts.toml").write_text(base + extra)
        mail = config.load(tmp_path).channel("m")
        assert mail.encryption == encryption and mail.ca_path(tmp_path) is None
    (tmp_path / "ca.pem").write_text("-")
    (tmp_path / "alerts.toml").write_text(base + 'port = 465\nca_file = "ca.pem"\n')
    mail = config.load(tmp_path).channel("m")
    assert mail.ca_path(tmp_path) == tmp_path / "ca.pem" and mail.target().startswith("smtps://127.0.0.1:465")
