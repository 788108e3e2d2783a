"""``<home>/alerts.toml``: the alert rules and the channels alerts go to.

Read with tomlkit, and edited through :mod:`switchyard.alerts.edits` so the
operator's comments and order survive an edit from the CLI or the UI. Every
value is checked when the file is read; a bad one raises
:class:`~switchyard.exceptions.AlertError` naming the file, the key and the fix.
Without the file the rules have their defaults and alerts go to one file channel,
``<home>/alerts.log``.

Secrets: an SMTP password only ever comes from an environment variable (the
file names the variable) and only crosses an encrypted connection: a channel with a
login needs STARTTLS or SMTPS (port 465, or ``smtps = true``) unless it says
``allow_plaintext_login = true``; the server certificate is checked against the system
store or the channel's ``ca_file``. A webhook URL's userinfo and query string are cut
from every place it is shown or recorded (:func:`redact_url`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomlkit
from tomlkit.exceptions import ParseError

from switchyard import workspace
from switchyard.exceptions import AlertError

FILE_NAME = "alerts.toml"
KINDS = ("file", "webhook", "smtp")
RULE_DEFAULTS: dict[str, Any] = {"on_failure": True, "duration_factor": 3.0, "min_history": 3,
                                 "health_gate": True}
# Keys each channel kind accepts (besides name, kind and apps).
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "file": ("path",),
    "webhook": ("url", "timeout", "headers"),
    "smtp": ("host", "port", "sender", "to", "starttls", "smtps", "ca_file", "allow_plaintext_login",
             "username", "password_env", "timeout"),
}
SMTPS_PORT = 465
DEFAULT_PASSWORD_ENV = "SWITCHYARD_SMTP_PASSWORD"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")

DEFAULT_TEXT = """\
# Switchyard alerts: which conditions alert, and where alerts go (see docs/alerts.md).

[rules]
on_failure = true        # a run (app or pipeline orchestration) ended failed
duration_factor = 3.0    # a run takes more than this many times its usual duration; 0 = off
min_history = 3          # completed runs of the same app and kind needed to know "usual"
health_gate = true       # the health gate of an app's started service fails

# One JSON line per alert, relative to the workspace folder.
[[channels]]
name = "log"
kind = "file"
path = "alerts.log"
"""


@dataclass(frozen=True)
class Rules:
    """Which conditions alert (``[rules]``)."""

    on_failure: bool = True
    duration_factor: float = 3.0
    min_history: int = 3
    health_gate: bool = True


@dataclass(frozen=True)
class Channel:
    """One ``[[channels]]`` entry. Only the fields of its kind are meaningful."""

    name: str
    kind: str
    apps: tuple[str, ...] = ()
    path: str = ""
    url: str = ""
    timeout: float = 5.0
    headers: dict = field(default_factory=dict)
    host: str = ""
    port: int = 25
    sender: str = ""
    to: tuple[str, ...] = ()
    starttls: bool = False
    smtps: bool = False
    ca_file: str = ""
    allow_plaintext_login: bool = False
    username: str = ""
    password_env: str = DEFAULT_PASSWORD_ENV

    def accepts(self, app: str | None) -> bool:
        """Whether an alert about ``app`` goes to this channel (no ``apps`` filter: all)."""
        return not self.apps or not app or app in self.apps

    def file_path(self, home: Path) -> Path:
        """The file of a ``file`` channel (a relative path is relative to the workspace)."""
        p = Path(self.path).expanduser()
        return p if p.is_absolute() else Path(home) / p

    def ca_path(self, home: Path | None = None) -> Path | None:
        """The CA bundle the server certificate is checked against (None: the system store)."""
        if not self.ca_file:
            return None
        p = Path(self.ca_file).expanduser()
        return p if p.is_absolute() else Path(home or workspace.home()) / p

    @property
    def encryption(self) -> str:
        """``smtps``, ``starttls`` or ``none``."""
        return "smtps" if self.smtps else "starttls" if self.starttls else "none"

    def target(self, home: Path | None = None) -> str:
        """Where it delivers, safe to show: no secret, the URL redacted."""
        if self.kind == "file":
            return str(self.file_path(home or workspace.home()))
        if self.kind == "webhook":
            return redact_url(self.url)
        scheme = "smtps" if self.smtps else "smtp"
        return f"{scheme}://{_host_port(self.host, self.port)} -> {', '.join(self.to)}"

    def describe(self, home: Path | None = None) -> dict[str, Any]:
        """A JSON-able view for listings (header names only, never their values)."""
        d: dict[str, Any] = {"name": self.name, "kind": self.kind, "target": self.target(home),
                             "apps": list(self.apps)}
        if self.kind == "webhook":
            d.update(timeout=self.timeout, headers=sorted(self.headers))
        elif self.kind == "smtp":
            d.update(host=self.host, port=self.port, sender=self.sender, to=list(self.to),
                     starttls=self.starttls, smtps=self.smtps, ca_file=self.ca_file,
                     allow_plaintext_login=self.allow_plaintext_login, username=self.username,
                     password_env=self.password_env, timeout=self.timeout)
        else:
            d["path"] = self.path
        return d


@dataclass
class AlertSettings:
    """The parsed file: rules, channels and the tomlkit document (None when there is no file)."""

    path: Path
    rules: Rules
    channels: list[Channel]
    doc: Any = None

    @property
    def exists(self) -> bool:
        return self.doc is not None

    def channel(self, name: str) -> Channel:
        """The channel called ``name``; AlertError naming the known ones otherwise."""
        for c in self.channels:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.channels) or "none"
        raise AlertError(f"{self.path}: no channel '{name}': use one of: {known} "
                         "(or add it with `switchyard alerts channel add`)")


def redact_url(url: str) -> str:
    """``scheme://host:port/path`` of ``url``: userinfo, query string and fragment cut."""
    try:
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid url>"
    if not parts.scheme or not host:
        return "<invalid url>"
    return f"{parts.scheme}://{_host_port(host, port)}{parts.path}"


def _host_port(host: str, port: int | None) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port else shown


def settings_path(home: Path | str | None = None) -> Path:
    return Path(home or workspace.home()) / FILE_NAME


# -- reading -----------------------------------------------------------------------------------

_cache: dict[str, tuple[tuple[int, int], AlertSettings]] = {}


def load(home: Path | str | None = None) -> AlertSettings:
    """The alert settings of the workspace ``home`` (defaults when the file is missing).

    Re-parsed only when the file changed (the scheduler checks alerts every few seconds).

    Raises:
        AlertError: the file is not valid TOML or a value is invalid (names file and key).
    """
    path = settings_path(home)
    try:
        st = path.stat()
    except FileNotFoundError:
        return AlertSettings(path, Rules(), [Channel(name="log", kind="file", path="alerts.log")])
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _cache.get(str(path))
    if hit and hit[0] == stamp:
        return hit[1]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise AlertError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}): save it as UTF-8") from None
    settings = parse(text, path)
    _cache[str(path)] = (stamp, settings)
    return settings


def parse(text: str, path: Path) -> AlertSettings:
    """Validate the text of an alerts file; see :func:`load`."""
    try:
        doc = tomlkit.parse(text)
    except ParseError as e:
        raise settings_error(path, None, f"invalid TOML at line {e.line} column {e.col}",
                     "fix the syntax (strings need quotes, [[channels]] entries one key per line)") from None
    raw = doc.unwrap()
    unknown = sorted(set(raw) - {"rules", "channels"})
    if unknown:
        raise settings_error(path, unknown[0], "unknown key", "use only [rules] and [[channels]]")
    rules = check_rules(raw.get("rules", {}), path)
    channels_raw = raw.get("channels", [])
    if not isinstance(channels_raw, list):
        raise settings_error(path, "channels", "must be an array of tables", "write each channel as [[channels]]")
    channels: list[Channel] = []
    for i, entry in enumerate(channels_raw):
        channel = check_channel(entry, path, i)
        if any(c.name == channel.name for c in channels):
            raise settings_error(path, f"channels[{i}].name", f"'{channel.name}' is used twice",
                         "give every channel its own name")
        channels.append(channel)
    return AlertSettings(path, rules, channels, doc)


def settings_error(path: Path | None, key: str | None, problem: str, fix: str) -> AlertError:
    """``<file>: <key>: <problem>: <fix>`` as an AlertError."""
    where = str(path) if path is not None else FILE_NAME
    if key:
        where += f": {key}"
    return AlertError(f"{where}: {problem}: {fix}")


def check_rules(raw: Any, path: Path | None = None) -> Rules:
    """``[rules]`` with defaults filled in."""
    if not isinstance(raw, dict):
        raise settings_error(path, "rules", "must be a table", "write it as [rules]")
    unknown = sorted(set(raw) - set(RULE_DEFAULTS))
    if unknown:
        raise settings_error(path, f"rules.{unknown[0]}", "unknown rule", f"use one of: {', '.join(RULE_DEFAULTS)}")
    values = {**RULE_DEFAULTS, **raw}
    for key in ("on_failure", "health_gate"):
        if not isinstance(values[key], bool):
            raise settings_error(path, f"rules.{key}", f"{values[key]!r} is not true/false",
                         f"write {key} = true or {key} = false")
    factor = values["duration_factor"]
    if (isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor)
            or not (factor == 0 or factor > 1)):
        raise settings_error(path, "rules.duration_factor", f"{factor!r} is not 0 or a number > 1",
                     "write e.g. duration_factor = 3.0 (0 turns the rule off)")
    mh = values["min_history"]
    if isinstance(mh, bool) or not isinstance(mh, int) or not 1 <= mh <= 20:
        raise settings_error(path, "rules.min_history", f"{mh!r} is not a whole number 1..20",
                     "write e.g. min_history = 3")
    return Rules(on_failure=values["on_failure"], duration_factor=float(factor), min_history=mh,
                 health_gate=values["health_gate"])


def check_channel(raw: Any, path: Path | None = None, index: int = 0) -> Channel:
    """One ``[[channels]]`` entry (``index`` is its position, for the error messages)."""
    key = f"channels[{index}]"
    if not isinstance(raw, dict):
        raise settings_error(path, key, "must be a table", "write it as [[channels]] with name and kind")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise settings_error(path, f"{key}.name", f"{name!r} is not a channel name",
                     'write e.g. name = "ops-hook" (letters, digits, - _ .)')
    key = f'channels."{name}"'
    kind = raw.get("kind")
    if kind not in KINDS:
        raise settings_error(path, f"{key}.kind", f"{kind!r} is not a channel kind",
                     f"write kind = one of {', '.join(KINDS)}")
    if "password" in raw:
        raise settings_error(path, f"{key}.password", "a password is never read from a file",
                     f'remove it, set password_env = "{DEFAULT_PASSWORD_ENV}" and export that variable')
    allowed = ("name", "kind", "apps", *KIND_KEYS[kind])
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise settings_error(path, f"{key}.{unknown[0]}", f"unknown key for a {kind} channel",
                     f"use only: {', '.join(allowed)}")
    values: dict[str, Any] = {"name": name, "kind": kind, "apps": _apps_in(raw.get("apps", []), path, key)}
    if kind == "file":
        values["path"] = _text_in(raw.get("path"), path, f"{key}.path", 'path = "alerts.log"')
    elif kind == "webhook":
        values["url"] = _url_in(raw.get("url"), path, f"{key}.url")
        values["timeout"] = _timeout_in(raw.get("timeout", 5.0), path, f"{key}.timeout")
        values["headers"] = _headers_in(raw.get("headers", {}), path, f"{key}.headers")
    else:
        values["host"] = _text_in(raw.get("host"), path, f"{key}.host", 'host = "smtp.example.com"')
        values["port"] = _port_in(raw.get("port", 25), path, f"{key}.port")
        values["sender"] = _address_in(raw.get("sender"), path, f"{key}.sender")
        to = raw.get("to")
        if not isinstance(to, list) or not to:
            raise settings_error(path, f"{key}.to", f"{to!r} is not a list of addresses",
                         'write to = ["ops@example.com"]')
        values["to"] = tuple(_address_in(a, path, f"{key}.to") for a in to)
        for flag, default in (("starttls", False), ("smtps", values["port"] == SMTPS_PORT and not raw.get("starttls")),
                              ("allow_plaintext_login", False)):
            value = raw.get(flag, default)
            if not isinstance(value, bool):
                raise settings_error(path, f"{key}.{flag}", f"{value!r} is not true/false",
                                     f"write {flag} = true or false")
            values[flag] = value
        if values["starttls"] and values["smtps"]:
            raise settings_error(path, f"{key}.starttls", "STARTTLS and SMTPS exclude each other (port "
                                 f"{values['port']} {'is' if values['port'] == SMTPS_PORT else 'has smtps = true,'} "
                                 "SMTPS)", "use starttls = true with port 587, or SMTPS on port 465 alone")
        if "ca_file" in raw:
            ca = _text_in(raw["ca_file"], path, f"{key}.ca_file", 'ca_file = "/etc/ssl/my-ca.pem"')
            full = Path(ca).expanduser()
            full = full if full.is_absolute() else (path.parent if path else workspace.home()) / full
            if not full.is_file():
                raise settings_error(path, f"{key}.ca_file", f"{full} is not a file",
                                     "point it at the PEM file of the CA that signed the server's certificate")
            if not (values["starttls"] or values["smtps"]):
                raise settings_error(path, f"{key}.ca_file", "is set but the connection is not encrypted",
                                     "set starttls = true (or port = 465 for SMTPS)")
            values["ca_file"] = ca
        username = raw.get("username", "")
        if not isinstance(username, str) or any(ch.isspace() for ch in username):
            raise settings_error(path, f"{key}.username", f"{username!r} is not a user name",
                         'write e.g. username = "alerts" (or "" for no login)')
        values["username"] = username
        if username and not (values["starttls"] or values["smtps"] or values["allow_plaintext_login"]):
            raise settings_error(path, f"{key}.username", f"a login over a plaintext connection to "
                                 f"{_host_port(values['host'], values['port'])} would send the password in clear",
                                 "set starttls = true (port 587), or port = 465 (SMTPS); for a trusted relay on "
                                 "loopback only, allow_plaintext_login = true")
        env = raw.get("password_env", DEFAULT_PASSWORD_ENV)
        if not isinstance(env, str) or not _ENV_NAME.match(env):
            raise settings_error(path, f"{key}.password_env", f"{env!r} is not an environment variable name",
                         f'write e.g. password_env = "{DEFAULT_PASSWORD_ENV}"')
        values["password_env"] = env
        values["timeout"] = _timeout_in(raw.get("timeout", 10.0), path, f"{key}.timeout")
    return Channel(**values)


def _text_in(value: Any, path: Path | None, key: str, example: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise settings_error(path, key, f"{value!r} is not a non-empty string", f"write e.g. {example}")
    return value.strip()


def _apps_in(value: Any, path: Path | None, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(a, str) and a.strip() for a in value):
        raise settings_error(path, f"{key}.apps", f"{value!r} is not a list of app names",
                     'write e.g. apps = ["flight"]')
    return tuple(a.strip() for a in value)


def _url_in(value: Any, path: Path | None, key: str) -> str:
    if not isinstance(value, str):
        raise settings_error(path, key, f"{value!r} is not a URL", 'write e.g. url = "https://hooks.example.com/alerts"')
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        # Shown redacted: the value may carry a token.
        raise settings_error(path, key, f"{redact_url(value)} is not an http(s) URL with a host",
                     'write e.g. url = "https://hooks.example.com/alerts"')
    return value.strip()


def _timeout_in(value: Any, path: Path | None, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 300:
        raise settings_error(path, key, f"{value!r} is not a number of seconds in (0, 300]", "write e.g. timeout = 5")
    return float(value)


def _headers_in(value: Any, path: Path | None, key: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise settings_error(path, key, "must be a table", 'write e.g. headers = { "X-Team" = "ops" }')
    for name, v in value.items():
        if not re.match(r"^[A-Za-z0-9-]+$", name) or not isinstance(v, str) or "\n" in v or "\r" in v:
            # The value is never echoed: it may be a token.
            raise settings_error(path, f"{key}.{name}", "is not a header name with a one-line string value",
                         'write e.g. headers = { "X-Team" = "ops" }')
    return dict(value)


def _port_in(value: Any, path: Path | None, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise settings_error(path, key, f"{value!r} is not a port number",
                     "write a whole number 1..65535, e.g. 25 or 587")
    return value


def _address_in(value: Any, path: Path | None, key: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.match(value.strip()):
        raise settings_error(path, key, f"{value!r} is not an email address", 'write e.g. "ops@example.com"')
    return value.strip()


def rules_dict(rules: Rules) -> dict[str, Any]:
    return {f.name: getattr(rules, f.name) for f in fields(rules)}


def password(channel: Channel) -> str | None:
    """The SMTP password from the channel's environment variable (None when unset)."""
    return os.environ.get(channel.password_env) or None
