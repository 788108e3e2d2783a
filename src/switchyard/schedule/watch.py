"""File triggers: which new files in a watched folder start a run, and when.

New files gather in a pending set; each time the set (or a pending file's size) changes the
quiet clock restarts, and once nothing changed for ``debounce`` seconds the whole set fires
one run. Files that were there when the schedule was added, and hidden or temporary files
(``.name``, ``*.tmp``, ``*.part``: a writer that renames into place is only seen once
complete), never fire. :func:`step` is pure; :func:`scan` is the only I/O.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp")

Listing = dict[str, list[int]]  # file name -> [size, mtime_ns]


def scan(folder: Path | str, pattern: str = "*") -> Listing:
    """Regular files directly in ``folder`` whose name matches ``pattern`` (a missing folder
    is empty: it may be created later)."""
    found: Listing = {}
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return found
    for e in entries:
        if e.name.startswith(".") or e.name.endswith(_TEMP_SUFFIXES) or not fnmatch.fnmatch(e.name, pattern):
            continue
        try:
            if e.is_file():
                st = e.stat()
                found[e.name] = [st.st_size, st.st_mtime_ns]
        except FileNotFoundError:
            continue  # removed while we looked
    return found


def initial_state(listing: Listing) -> dict[str, Any]:
    """The state of a new file trigger: what is there now is already seen."""
    return {"seen": sorted(listing), "pending": {}, "changed_at": None}


def step(state: dict[str, Any], listing: Listing, now: float, debounce: float) -> tuple[dict[str, Any], list[str]]:
    """Advance a file trigger by one look at its folder.

    Returns the new state and the file names to launch a run with (empty when it does not
    fire now). Names are sorted.
    """
    seen = set(state.get("seen") or ()) & set(listing)  # a name removed and added again is new
    old_pending: dict[str, list[int]] = dict(state.get("pending") or {})
    pending = {n: sig for n, sig in listing.items() if n not in seen}
    changed_at = state.get("changed_at")
    if pending != old_pending:
        changed_at = now
    if pending and changed_at is not None and now - changed_at >= debounce:
        fired = sorted(pending)
        return {"seen": sorted(seen | set(pending)), "pending": {}, "changed_at": None}, fired
    return {"seen": sorted(seen), "pending": pending, "changed_at": changed_at if pending else None}, []


def run_paths(folder: Path, names: list[str], data_dir: Path) -> list[str]:
    """How a run receives the files: relative to the app's data folder when the watched folder
    is inside it (workers resolve them against their own data folder), absolute otherwise."""
    out = []
    for name in names:
        path = (Path(folder) / name).resolve()
        try:
            out.append(path.relative_to(Path(data_dir).resolve()).as_posix())
        except ValueError:
            out.append(str(path))
    return out


def total_bytes(listing: Listing, names: list[str]) -> int:
    return sum(listing[n][0] for n in names if n in listing)
