"""Edits of ``<home>/alerts.toml`` from the CLI and the UI: add or remove a channel, set rules.

Each edit works on the tomlkit document (comments and order kept), validates the whole
result with the same checks as reading, and writes it atomically; a refused edit writes
nothing. Without a file, the first edit starts from :data:`~switchyard.alerts.config.DEFAULT_TEXT`
so the default log channel stays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomlkit

from switchyard import workspace
from switchyard.alerts.config import (
    DEFAULT_TEXT, RULE_DEFAULTS, AlertSettings, check_channel, load, parse, settings_error)


def _document(home: Path | str | None) -> tuple[Path, Any]:
    settings = load(home)
    doc = settings.doc if settings.exists else tomlkit.parse(DEFAULT_TEXT)
    return settings.path, tomlkit.parse(tomlkit.dumps(doc))  # a copy: the cached one stays as read


def _save(path: Path, doc: Any) -> AlertSettings:
    text = tomlkit.dumps(doc)
    settings = parse(text, path)  # never write what we could not read back
    workspace.atomic_write_text(path, text)
    return settings


def add_channel(spec: dict[str, Any], home: Path | str | None = None) -> AlertSettings:
    """Append a channel (``name``, ``kind`` and its keys) to the file, validated; comments kept.

    Without a file, it is created from the defaults first (so the log channel stays).

    Raises:
        AlertError: a value is invalid or the name is taken.
    """
    path, doc = _document(home)
    clean = {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec.items() if v not in (None, "", [], ())}
    check_channel(clean, path, len(doc.get("channels", [])))
    if any(c.get("name") == clean["name"] for c in doc.get("channels", [])):
        raise settings_error(path, f'channels."{clean["name"]}"', "a channel with this name exists",
                     "pick another name or remove it first (switchyard alerts channel remove NAME)")
    if "channels" not in doc:
        doc["channels"] = tomlkit.aot()
    channels = doc["channels"]
    if len(channels) and not channels[-1].as_string().endswith("\n\n"):
        channels[-1].add(tomlkit.nl())  # a blank line between entries, as a person would write it
    table = tomlkit.table()
    for k, v in clean.items():
        table[k] = v
    channels.append(table)
    return _save(path, doc)


def remove_channel(name: str, home: Path | str | None = None) -> AlertSettings:
    """Remove the channel called ``name``; AlertError when there is none."""
    path, doc = _document(home)
    channels = doc.get("channels", [])
    idx = next((i for i, c in enumerate(channels) if c.get("name") == name), None)
    if idx is None:
        known = ", ".join(str(c.get("name")) for c in channels) or "none"
        raise settings_error(path, f'channels."{name}"', "no such channel", f"use one of: {known}")
    del channels[idx]
    return _save(path, doc)


def set_rule(name: str, value: Any, home: Path | str | None = None) -> AlertSettings:
    """Set one rule; ``value`` may be text from a command line (``"true"``, ``"2.5"``).

    Raises:
        AlertError: unknown rule or invalid value.
    """
    return set_rules({name: value}, home)


def set_rules(values: dict[str, Any], home: Path | str | None = None) -> AlertSettings:
    """Set several rules in one validated, atomic write (see :func:`set_rule`)."""
    path, doc = _document(home)
    if "rules" not in doc:
        doc["rules"] = tomlkit.table()
    for name, value in values.items():
        if name not in RULE_DEFAULTS:
            raise settings_error(path, f"rules.{name}", "unknown rule", f"use one of: {', '.join(RULE_DEFAULTS)}")
        doc["rules"][name] = _rule_value(name, value) if isinstance(value, str) else value
    return _save(path, doc)


def _rule_value(name: str, text: str) -> Any:
    t = text.strip().lower()
    kind = type(RULE_DEFAULTS[name])
    if kind is bool:
        return {"true": True, "on": True, "yes": True, "1": True,
                "false": False, "off": False, "no": False, "0": False}.get(t, text)
    try:
        return int(t) if kind is int else float(t)
    except ValueError:
        return text  # validation names the key and the expected value
