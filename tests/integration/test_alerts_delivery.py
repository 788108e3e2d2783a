"""Alert delivery to real receivers on loopback: an HTTP server for the webhook, an aiosmtpd
SMTP server for email, and a real run store file."""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
import threading
from email import message_from_bytes
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from switchyard.alerts import add_channel, check, list_alerts, records, send_test
from switchyard.runs.store import RunStore

T0 = 1_800_000_000.0


class Hook:
    """A webhook receiver: a real HTTP server on 127.0.0.1 in a thread, recording each POST."""

    def __init__(self, port: int = 0, status: int = 204):
        self.requests: list[dict] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def store(tmp_path):
    s = RunStore(tmp_path / "switchyard.db")
    yield s
    s.close()


def failed_run(store, app="flight", error="ValueError: bad row 17\nTraceback (most recent call last): ...", now=None):
    oid = store.create_orchestration(kind="app", app=app, mode=4, args={}, workers={}, scheduler=None,
                                     plan_fingerprint=None, run_dir=str(store.path.parent / "runs" / "r1"),
                                     batches=[{"name": "b0"}], options={"origin": {"by": "schedule", "schedule": "s1"}},
                                     now=now)
    store.acquire_lease(oid, "drv", ttl=600, now=now)
    store.command(oid, "start", now=now)
    store.command(oid, "fail", error=error, now=None if now is None else now + 3)
    return oid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free now, and nothing listens on it


def dump_db(path) -> str:
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def test_webhook_receives_the_alert_json_and_no_secret_is_recorded(store, tmp_path, hook):
    url = f"http://bot:pa55@127.0.0.1:{hook.port}/hooks/ops?token=SECRET-TOKEN"
    add_channel({"name": "ops-hook", "kind": "webhook", "url": url, "headers": {"X-Team": "ops"}}, tmp_path)
    oid = failed_run(store, now=T0)
    [a] = check(store, home=tmp_path, now=T0 + 5)

    [req] = hook.requests
    assert req["path"] == "/hooks/ops?token=SECRET-TOKEN"  # the receiver gets the real URL
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["X-Team"] == "ops"
    assert req["headers"]["Authorization"] == "Basic " + base64.b64encode(b"bot:pa55").decode()
    body = json.loads(req["body"])
    assert body == {
        "schema": 1, "id": a["id"], "at": "2027-01-15T08:00:05Z", "rule": "failure", "severity": "error",
        "app": "flight", "subject": oid, "orchestration_id": oid, "kind": "app", "status": "failed",
        "title": f"run {oid} failed", "message": f"run {oid} of flight failed: ValueError: bad row 17",
        "details": {"error": "ValueError: bad row 17\nTraceback (most recent call last): ...", "seconds": 3.0,
                    "completed_batches": 0, "total_batches": 1},
        "links": {"log": str(tmp_path / "runs" / "r1" / "run.log")},
        "origin": {"by": "schedule", "schedule": "s1"},
    }
    hook_delivery = {d["channel"]: d for d in a["deliveries"]}["ops-hook"]
    assert hook_delivery["delivered"] and hook_delivery["target"] == f"http://127.0.0.1:{hook.port}/hooks/ops"
    assert hook_delivery["note"] == f"HTTP 204 from http://127.0.0.1:{hook.port}/hooks/ops"
    recorded = dump_db(store.path) + json.dumps(list_alerts(store)) + (tmp_path / "alerts.log").read_text()
    assert "SECRET-TOKEN" not in recorded and "pa55" not in recorded


def test_a_dead_webhook_is_recorded_failed_then_retried_and_delivered_once_it_is_up(store, tmp_path):
    port = free_port()
    add_channel({"name": "ops-hook", "kind": "webhook", "url": f"http://127.0.0.1:{port}/hook?key=K", "timeout": 2},
                tmp_path)
    failed_run(store, now=T0)
    [a] = check(store, home=tmp_path, now=T0 + 5)
    d = {x["channel"]: x for x in a["deliveries"]}["ops-hook"]
    assert (d["delivered"], d["attempts"], d["state"]) == (False, 1, "retrying")
    assert d["error"] == (f"channel 'ops-hook' (webhook): cannot reach http://127.0.0.1:{port}/hook "
                          "(Connection refused): check that the receiver runs and the URL")
    assert check(store, home=tmp_path, now=T0 + 6) == []  # the retry waits for its delay

    receiver = Hook(port=port)
    try:
        [again] = check(store, home=tmp_path, now=T0 + 5 + records.RETRY_DELAYS[0])
        d = {x["channel"]: x for x in again["deliveries"]}["ops-hook"]
        assert (again["new"], d["delivered"], d["attempts"], d["error"]) == (False, True, 2, None)
        assert [json.loads(r["body"])["id"] for r in receiver.requests] == [a["id"]]
        assert check(store, home=tmp_path, now=T0 + 1000) == []  # delivered: never sent again
        assert len(receiver.requests) == 1
    finally:
        receiver.close()


def test_a_webhook_error_status_is_a_failed_delivery(store, tmp_path):
    bad = Hook(status=500)
    try:
        add_channel({"name": "h", "kind": "webhook", "url": f"http://127.0.0.1:{bad.port}/x"}, tmp_path)
        a = send_test("h", store=store, home=tmp_path)
        d = a["deliveries"][0]
        assert not d["delivered"] and f"http://127.0.0.1:{bad.port}/x answered HTTP 500" in d["error"]
        assert json.loads(bad.requests[0]["body"])["rule"] == "test"
    finally:
        bad.close()


def test_a_failing_run_alerts_exactly_once_across_two_checks(store, tmp_path, hook):
    add_channel({"name": "ops-hook", "kind": "webhook", "url": f"http://127.0.0.1:{hook.port}/h"}, tmp_path)
    oid = failed_run(store)  # the real clock, as the scheduler's checks use it
    first = check(store, home=tmp_path)
    second = check(store, home=tmp_path)
    assert [(a["rule"], a["subject"], a["new"], a["delivered"]) for a in first] == [("failure", oid, True, True)]
    assert second == []
    assert [a["subject"] for a in list_alerts(store)] == [oid]
    assert len(hook.requests) == 1
    assert len((tmp_path / "alerts.log").read_text().splitlines()) == 1


# -- SMTP --------------------------------------------------------------------------------------------

class Inbox:
    """aiosmtpd handler: keeps every message with its envelope."""

    def __init__(self):
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "message": message_from_bytes(envelope.original_content or envelope.content,
                                                            policy=default_policy)})
        return "250 Message accepted for delivery"


def make_ca_and_server_cert(folder, name: str = "127.0.0.1"):
    """A throwaway CA and a server certificate for ``name`` (an IP address) signed by it:
    (ca.pem, server.pem, server.key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def cert(subject, key, issuer, issuer_key, ca: bool, san=None):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        if ca:
            b = b.add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                              content_commitment=False, key_encipherment=False,
                                              data_encipherment=False, key_agreement=False,
                                              encipher_only=False, decipher_only=False), critical=True)
        return b.sign(issuer_key, hashes.SHA256())

    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "switchyard test CA")])
    ca = cert(ca_name, ca_key, ca_name, ca_key, True)
    srv = cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), srv_key, ca_name, ca_key, False,
               [x509.IPAddress(ipaddress.ip_address(name))])
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(srv_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_ca_and_server_cert(tmp_path_factory.mktemp("smtp-tls"))


def _server_context(certs):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certs[1]), str(certs[2]))
    return context


@pytest.fixture
def smtp_server(certs):
    """aiosmtpd that offers STARTTLS and takes a login only after it (auth_require_tls)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"alerts" and auth_data.password == b"env-only-pw"
        logins.append((auth_data.login, ok))
        return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535

    inbox = Inbox()
    inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, authenticator=authenticator,
                            tls_context=_server_context(certs), require_starttls=True,
                            auth_require_tls=True, auth_required=False)
    controller.start()
    inbox.logins = logins
    inbox.ca = certs[0]
    yield inbox
    controller.stop()


def test_smtp_alert_is_received_with_subject_body_and_recipients(store, tmp_path, smtp_server, monkeypatch):
    monkeypatch.setenv("OPS_SMTP_PW", "env-only-pw")
    add_channel({"name": "mail", "kind": "smtp", "host": "127.0.0.1", "port": smtp_server.port,
                 "sender": "switchyard@example.com", "to": ["ops@example.com", "oncall@example.com"],
                 "username": "alerts", "password_env": "OPS_SMTP_PW", "starttls": True,
                 "ca_file": str(smtp_server.ca)}, tmp_path)
    oid = failed_run(store, now=T0)
    [a] = check(store, home=tmp_path, now=T0 + 5)

    [got] = smtp_server.messages
    assert smtp_server.logins == [(b"alerts", True)]
    assert got["from"] == "switchyard@example.com"
    assert got["to"] == ["ops@example.com", "oncall@example.com"]
    msg = got["message"]
    assert msg["Subject"] == f"[switchyard] failure flight: run {oid} failed"
    assert msg["To"] == "ops@example.com, oncall@example.com"
    assert msg["X-Switchyard-Alert"] == str(a["id"])
    body = msg.get_content().replace("\r\n", "\n")  # SMTP carries CRLF line ends
    assert body.startswith(f"run {oid} of flight failed: ValueError: bad row 17\n")
    for line in ("rule: failure", "severity: error", f"orchestration_id: {oid}", "status: failed",
                 "seconds: 3.0", f"log: {tmp_path / 'runs' / 'r1' / 'run.log'}", "at: 2027-01-15T08:00:05Z"):
        assert line in body.splitlines()
    assert json.loads(body.strip().splitlines()[-1])["id"] == a["id"]
    d = {x["channel"]: x for x in a["deliveries"]}["mail"]
    assert d["delivered"] and d["note"] == f"sent to ops@example.com, oncall@example.com via 127.0.0.1:{smtp_server.port}"
    assert "env-only-pw" not in dump_db(store.path) + (tmp_path / "alerts.toml").read_text()


def test_smtp_refused_login_and_missing_password_are_failed_deliveries(store, tmp_path, smtp_server, monkeypatch):
    add_channel({"name": "mail", "kind": "smtp", "host": "127.0.0.1", "port": smtp_server.port,
                 "sender": "switchyard@example.com", "to": ["ops@example.com"], "username": "alerts",
                 "password_env": "OPS_SMTP_PW", "starttls": True, "ca_file": str(smtp_server.ca)}, tmp_path)
    monkeypatch.delenv("OPS_SMTP_PW", raising=False)
    d = send_test("mail", store=store, home=tmp_path)["deliveries"][0]
    assert not d["delivered"] and "$OPS_SMTP_PW is empty: export OPS_SMTP_PW" in d["error"]
    monkeypatch.setenv("OPS_SMTP_PW", "wrong-pw")
    d = send_test("mail", store=store, home=tmp_path)["deliveries"][0]
    assert not d["delivered"] and "refused the login of 'alerts' (535)" in d["error"]
    assert "wrong-pw" not in d["error"] and smtp_server.messages == []


def test_smtp_login_needs_tls_and_a_certificate_the_channel_trusts(store, tmp_path, smtp_server, certs,
                                                                   monkeypatch):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from switchyard.exceptions import AlertError

    monkeypatch.setenv("OPS_SMTP_PW", "env-only-pw")
    base = {"kind": "smtp", "host": "127.0.0.1", "port": smtp_server.port, "sender": "switchyard@example.com",
            "to": ["ops@example.com"], "username": "alerts", "password_env": "OPS_SMTP_PW"}
    with pytest.raises(AlertError, match=r'channels\."clear"\.username: a login over a plaintext connection .* '
                                         r'would send the password in clear: set starttls = true'):
        add_channel({**base, "name": "clear"}, tmp_path)  # refused at configuration time: nothing written
    assert not (tmp_path / "alerts.toml").exists()
    # STARTTLS against the system store: the test CA is not in it, so nothing is sent (no login either).
    add_channel({**base, "name": "system-store", "starttls": True}, tmp_path)
    d = send_test("system-store", store=store, home=tmp_path)["deliveries"][0]
    assert not d["delivered"] and "certificate of 127.0.0.1" in d["error"] and "set ca_file" in d["error"]
    assert smtp_server.messages == [] and smtp_server.logins == []
    # SMTPS (TLS from the first byte) with the channel's CA.
    inbox = Inbox()
    inbox.port = free_port()
    tls_only = Controller(inbox, hostname="127.0.0.1", port=inbox.port, ssl_context=_server_context(certs),
                          auth_required=False, auth_require_tls=False,  # TLS from the first byte
                          authenticator=lambda *a: AuthResult(success=True))
    tls_only.start()
    try:
        add_channel({**base, "name": "smtps", "port": inbox.port, "smtps": True, "ca_file": str(certs[0])},
                    tmp_path)
        d = send_test("smtps", store=store, home=tmp_path)["deliveries"][0]
        assert d["delivered"], d["error"]
        assert [m["to"] for m in inbox.messages] == [["ops@example.com"]]
    finally:
        tls_only.stop()
