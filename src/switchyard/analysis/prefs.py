"""The operator's Analysis choices, kept per app in ``[analysis]`` of ``app_settings.toml``.

::

    [analysis]
    views = ["map", "chart"]   # the views shown, in order
    sample_rows = 20000        # plots draw a random sample above this many rows
    source = ""                # "" = the app's export.csv; else a path in the workspace
    encoding = "utf-8"

    [analysis.chart]           # one table per view: its choices
    kind = "scatter"
    x = "longitude"

Reading never fails the page: values that do not fit are replaced by defaults
and reported in :attr:`AnalysisPrefs.problems`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switchyard.analysis.data import DEFAULT_SAMPLE_ROWS, MIN_SAMPLE_ROWS
from switchyard.exceptions import SettingsError
from switchyard.settings import load_settings, update_section

SECTION = "analysis"
TOP_KEYS = ("views", "sample_rows", "source", "encoding")


@dataclass
class AnalysisPrefs:
    """What ``[analysis]`` holds; ``views`` is None when the operator never chose."""

    views: list[str] | None = None
    sample_rows: int = DEFAULT_SAMPLE_ROWS
    source: str = ""
    encoding: str = "utf-8"
    per_view: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _plain(value: Any) -> Any:
    return value.unwrap() if hasattr(value, "unwrap") else value


def load_prefs(settings_path: Path | str) -> AnalysisPrefs:
    """``[analysis]`` of the app's settings; defaults (and a problem named) where a value is off."""
    prefs = AnalysisPrefs()
    try:
        doc = load_settings(settings_path).doc
    except SettingsError as e:
        prefs.problems.append(f"{e}; using default Analysis choices")
        return prefs
    raw = _plain(doc.get(SECTION, {}))
    if not isinstance(raw, dict):
        prefs.problems.append(f"{settings_path}: [{SECTION}] is not a table: using defaults")
        return prefs
    views = raw.get("views")
    if views is not None:
        if isinstance(views, list) and all(isinstance(v, str) for v in views):
            prefs.views = list(views)
        else:
            prefs.problems.append(f"{settings_path}: analysis.views {views!r} is not a list of view names")
    rows = raw.get("sample_rows", DEFAULT_SAMPLE_ROWS)
    if isinstance(rows, int) and not isinstance(rows, bool) and rows >= MIN_SAMPLE_ROWS:
        prefs.sample_rows = rows
    else:
        prefs.problems.append(f"{settings_path}: analysis.sample_rows {rows!r} is not a whole number >= "
                              f"{MIN_SAMPLE_ROWS}: using {DEFAULT_SAMPLE_ROWS}")
    for key in ("source", "encoding"):
        value = raw.get(key)
        if isinstance(value, str):
            setattr(prefs, key, value)
    prefs.encoding = prefs.encoding or "utf-8"
    prefs.per_view = {k: dict(v) for k, v in raw.items() if isinstance(v, dict)}
    return prefs


def _storable(value: Any) -> Any:
    """A choice as TOML can hold it: None removes the key, filters become a JSON string."""
    if value is None or value == "":
        return None
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return json.dumps(value, default=str)
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def save_view_choices(settings_path: Path | str, view: str, chosen: dict[str, Any],
                      previous: dict[str, Any] | None = None) -> bool:
    """Write a view's choices to ``[analysis.<view>]`` if they differ from ``previous``; True if written."""
    values = {k: _storable(v) for k, v in chosen.items()}
    before = {k: _storable(v) for k, v in (previous or {}).items()}
    if all(before.get(k) == v for k, v in values.items()):
        return False
    update_section(settings_path, f"{SECTION}.{view}", values)
    return True


def save_prefs(settings_path: Path | str, **values: Any) -> None:
    """Write top-level ``[analysis]`` keys (views, sample_rows, source, encoding)."""
    unknown = sorted(set(values) - set(TOP_KEYS))
    if unknown:
        raise SettingsError(settings_path, f"{SECTION}.{unknown[0]}", "unknown key",
                            f"use one of: {', '.join(TOP_KEYS)}")
    stored = {}
    for k, v in values.items():
        # an empty list of views is a choice worth keeping, unlike an empty column choice
        stored[k] = [str(x) for x in v] if isinstance(v, list) else (None if v is None else v)
    update_section(settings_path, SECTION, stored)
