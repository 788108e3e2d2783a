"""Delivering one alert through one channel: a file (JSON lines), a webhook (HTTP POST of
the JSON payload) or email over SMTP. Standard library only.

:func:`deliver` returns a short note on success and raises
:class:`~switchyard.exceptions.AlertError` with a one-line reason otherwise; no message
ever carries a password or a webhook URL's query string or userinfo.
"""

from __future__ import annotations

import base64
import json
import os
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from switchyard import workspace
from switchyard.alerts.config import Channel, password, redact_url
from switchyard.exceptions import AlertError

USER_AGENT = "switchyard-alerts/1"


def deliver(channel: Channel, payload: dict[str, Any], home: Path | str | None = None) -> str:
    """Send ``payload`` through ``channel``; return a note such as ``HTTP 204``.

    Raises:
        AlertError: the channel could not deliver it (the reason in one line).
    """
    home = Path(home or workspace.home())
    try:
        if channel.kind == "file":
            return _to_file(channel, payload, home)
        if channel.kind == "webhook":
            return _to_webhook(channel, payload)
        if channel.kind == "smtp":
            return _to_smtp(channel, payload, home)
    except AlertError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of a channel is recorded, not raised further
        raise AlertError(f"channel '{channel.name}' ({channel.kind}): {_clean(channel, e)}") from None
    raise AlertError(f"channel '{channel.name}': unknown kind '{channel.kind}': use file, webhook or smtp")


def _clean(channel: Channel, error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".replace("\n", " ").replace("\r", " ")
    if channel.url:
        text = text.replace(channel.url, redact_url(channel.url))
    secret = password(channel) if channel.kind == "smtp" else None
    if secret:
        text = text.replace(secret, "***")
    return text[:500]


# -- file --------------------------------------------------------------------------------------

def _to_file(channel: Channel, payload: dict[str, Any], home: Path) -> str:
    path = channel.file_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(payload, sort_keys=True, default=str) + "\n").encode("utf-8")
    # One write() on an O_APPEND descriptor: lines of concurrent checks never interleave, and
    # rewriting a growing log through a temp file on every alert would cost O(size).
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return f"appended to {path}"


# -- webhook -----------------------------------------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib turns a redirected POST into a GET without body; refuse instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {redact_url(newurl)} not followed",
                                     headers, fp)


def _to_webhook(channel: Channel, payload: dict[str, Any]) -> str:
    body = json.dumps(payload, sort_keys=True, default=str).encode("utf-8")
    headers = {"User-Agent": USER_AGENT, **channel.headers, "Content-Type": "application/json"}
    url, auth = _split_userinfo(channel.url)
    if auth and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = auth
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(_NoRedirect())
    shown = redact_url(channel.url)
    try:
        with opener.open(request, timeout=channel.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        e.close()
        raise AlertError(f"channel '{channel.name}' (webhook): {shown} answered HTTP {e.code} {e.reason}: "
                         "check the URL and that the receiver accepts a JSON POST") from None
    except urllib.error.URLError as e:
        raise AlertError(f"channel '{channel.name}' (webhook): cannot reach {shown} ({_reason(e.reason)}): "
                         "check that the receiver runs and the URL") from None
    except (TimeoutError, socket.timeout):
        raise AlertError(f"channel '{channel.name}' (webhook): {shown} did not answer within "
                         f"{channel.timeout:g} s: check the receiver or raise timeout") from None
    if not 200 <= status < 300:
        raise AlertError(f"channel '{channel.name}' (webhook): {shown} answered HTTP {status}")
    return f"HTTP {status} from {shown}"


def _split_userinfo(url: str) -> tuple[str, str | None]:
    """urllib does not send a URL's ``user:password@``: move it to a Basic Authorization header."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    netloc = parts.netloc.rsplit("@", 1)[1]
    token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
    return urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"


def _reason(reason: Any) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)


# -- email -------------------------------------------------------------------------------------

def email_message(channel: Channel, payload: dict[str, Any]) -> EmailMessage:
    """The alert as a plain-text email: subject ``[switchyard] <rule> <app>: <title>``."""
    msg = EmailMessage()
    app = payload.get("app") or "-"
    short = payload.get("title") or payload.get("message")
    msg["Subject"] = f"[switchyard] {payload.get('rule')} {app}: {short}"
    msg["From"] = channel.sender
    msg["To"] = ", ".join(channel.to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=channel.sender.rsplit("@", 1)[-1])
    msg["X-Switchyard-Alert"] = str(payload.get("id"))
    msg.set_content(email_body(payload))
    return msg


def email_body(payload: dict[str, Any]) -> str:
    """The facts of the payload, one per line, then the payload itself as JSON."""
    lines = [payload.get("message") or "", ""]
    for key in ("rule", "severity", "app", "subject", "orchestration_id", "kind", "status", "at"):
        if payload.get(key) is not None:
            lines.append(f"{key}: {payload[key]}")
    for key, value in (payload.get("details") or {}).items():
        if value is not None:
            lines.append(f"{key}: {value}")
    for key, value in (payload.get("links") or {}).items():
        if value:
            lines.append(f"{key}: {value}")
    if payload.get("origin"):
        lines.append(f"origin: {json.dumps(payload['origin'], sort_keys=True)}")
    lines += ["", f"alert id {payload.get('id')}; payload:", json.dumps(payload, sort_keys=True, default=str)]
    return "\n".join(lines) + "\n"


def tls_context(channel: Channel, home: Path | None = None) -> ssl.SSLContext:
    """Certificate and host name checked: against the channel's ``ca_file``, else the system store."""
    ca = channel.ca_path(home)
    return ssl.create_default_context(cafile=str(ca) if ca else None)


def _to_smtp(channel: Channel, payload: dict[str, Any], home: Path | None = None) -> str:
    msg = email_message(channel, payload)
    secret = password(channel)
    if channel.username and not secret:
        raise AlertError(f"channel '{channel.name}' (smtp): username '{channel.username}' is set but "
                         f"${channel.password_env} is empty: export {channel.password_env} in the environment "
                         "of the process that checks alerts (the password is never read from a file)")
    if channel.username and channel.encryption == "none" and not channel.allow_plaintext_login:
        raise AlertError(f"channel '{channel.name}' (smtp): refusing to log in over plaintext: set "
                         "starttls = true or port = 465 (SMTPS)")  # a Channel built without check_channel
    where = f"{channel.host}:{channel.port}"
    try:
        context = tls_context(channel, home) if channel.encryption != "none" else None
        if channel.smtps:
            connection = smtplib.SMTP_SSL(channel.host, channel.port, timeout=channel.timeout, context=context)
        else:
            connection = smtplib.SMTP(channel.host, channel.port, timeout=channel.timeout)
        with connection as smtp:
            smtp.ehlo()
            if channel.starttls:
                smtp.starttls(context=context)
                smtp.ehlo()
            if channel.username:
                smtp.login(channel.username, secret or "")
            refused = smtp.send_message(msg, from_addr=channel.sender, to_addrs=list(channel.to))
    except smtplib.SMTPAuthenticationError as e:
        raise AlertError(f"channel '{channel.name}' (smtp): {where} refused the login of '{channel.username}' "
                         f"({e.smtp_code}): check username and ${channel.password_env}") from None
    except smtplib.SMTPNotSupportedError as e:
        if "STARTTLS" not in str(e):
            raise AlertError(f"channel '{channel.name}' (smtp): {where}: {_clean(channel, e)}") from None
        raise AlertError(f"channel '{channel.name}' (smtp): {where} does not offer STARTTLS: use its SMTPS "
                         "port (465) or a server that encrypts; nothing was sent") from None
    except smtplib.SMTPException as e:
        raise AlertError(f"channel '{channel.name}' (smtp): {where}: {_clean(channel, e)}") from None
    except ssl.SSLCertVerificationError as e:
        raise AlertError(f"channel '{channel.name}' (smtp): the certificate of {where} was not accepted "
                         f"({e.verify_message}): set ca_file to the CA that signed it, or check that host "
                         "is the name in the certificate; nothing was sent") from None
    except ssl.SSLError as e:
        raise AlertError(f"channel '{channel.name}' (smtp): TLS with {where} failed ({e.reason or e}): check "
                         "the port (465 is SMTPS, 587 STARTTLS); nothing was sent") from None
    except OSError as e:
        raise AlertError(f"channel '{channel.name}' (smtp): cannot reach {where} ({_reason(e)}): "
                         "check host, port and that the server runs") from None
    accepted = [a for a in channel.to if a not in refused]
    note = f"sent to {', '.join(accepted)} via {where}"
    # Some recipients got it: a retry would send them a copy again, so it counts as delivered.
    return note + (f"; refused: {', '.join(sorted(refused))}" if refused else "")
