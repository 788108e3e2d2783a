"""Lineage: a sidecar JSON next to an exported file or a run output saying where it came from.

``export.csv`` gets ``export.csv.lineage.json`` with the run id, the app, its
args, the work plan fingerprint, the input files (path, size, SHA-256) and
the file itself (size, mtime, SHA-256), so a later reader can tell whether
the file changed since. Written atomically; read back with :func:`read_lineage`.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterable

from switchyard.exceptions import AnalysisError
from switchyard.workspace import atomic_write_json

SCHEMA = "switchyard.lineage.v1"
SUFFIX = ".lineage.json"
# Inputs larger than this are recorded without a hash: hashing them would slow every export.
MAX_HASH_BYTES = 256 * 1024 * 1024


def sidecar_path(path: Path | str) -> Path:
    """``<path>.lineage.json`` (for a folder output: next to the folder)."""
    path = Path(path)
    return path.with_name(path.name + SUFFIX)


def sha256_of(path: Path, max_bytes: int = MAX_HASH_BYTES) -> str | None:
    """The SHA-256 of a file (or None above ``max_bytes``)."""
    if path.stat().st_size > max_bytes:
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_record(path: Path | str, max_hash_bytes: int = MAX_HASH_BYTES) -> dict[str, Any]:
    """Path, size, mtime and SHA-256 of a file; of a folder, its total size and file count."""
    path = Path(path).resolve()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return {"path": str(path), "kind": "folder", "files": len(files),
                "size": sum(p.stat().st_size for p in files)}
    if not path.is_file():
        return {"path": str(path), "kind": "missing"}
    st = path.stat()
    record = {"path": str(path), "kind": "file", "size": st.st_size, "mtime_ns": st.st_mtime_ns,
              "sha256": sha256_of(path, max_hash_bytes)}
    if record["sha256"] is None:
        record["hash_skipped"] = f"larger than {max_hash_bytes:,} bytes"
    return record


def write_lineage(path: Path | str, *, app: str, run_id: str | None = None, args: dict | None = None,
                  plan_fingerprint: str | None = None, inputs: Iterable[Path | str] = (),
                  derived_from: Iterable[Path | str] = (), columns: list[str] | None = None,
                  extra: dict[str, Any] | None = None, now: float | None = None,
                  max_hash_bytes: int = MAX_HASH_BYTES) -> Path:
    """Write the sidecar of ``path`` (which must exist) and return the sidecar's path.

    Args:
        path: The exported file or run output.
        app: The app that produced it.
        run_id: The orchestration id of the run.
        args: The run's args.
        plan_fingerprint: The fingerprint of the work plan the run used.
        inputs: The files the run read (recorded with size and SHA-256).
        derived_from: Files this one was made from (e.g. the run output an export was cut from).
        columns: The columns kept, for an export.
        extra: Anything else worth keeping (JSON-serialisable).
        now: The time recorded as ``created_at``.
        max_hash_bytes: Files above this size are recorded without a hash.

    Raises:
        AnalysisError: ``path`` does not exist.
    """
    path = Path(path)
    if not path.exists():
        raise AnalysisError(f"cannot record the lineage of {path}: it does not exist; write the file first")
    doc = {
        "schema": SCHEMA,
        "created_at": time.time() if now is None else float(now),
        "app": app, "run_id": run_id, "args": dict(args or {}),
        "plan_fingerprint": plan_fingerprint,
        "file": file_record(path, max_hash_bytes),
        "inputs": [file_record(p, max_hash_bytes) for p in inputs],
        "derived_from": [file_record(p, max_hash_bytes) for p in derived_from],
    }
    if columns is not None:
        doc["columns"] = list(columns)
    if extra:
        doc["extra"] = extra
    return atomic_write_json(sidecar_path(path), json.loads(json.dumps(doc, default=str)))


def write_run_lineage(output: Path | str, orchestration: Any, inputs: Iterable[Path | str] = (),
                      **kw: Any) -> Path:
    """The sidecar of a run output, from its orchestration record (id, app, args, fingerprint)."""
    o = orchestration
    return write_lineage(output, app=o.app, run_id=o.id, args=o.args, plan_fingerprint=o.plan_fingerprint,
                         inputs=inputs, **kw)


def write_export_lineage(export: Path | str, source: Path | str, columns: list[str] | None = None,
                         store: Any = None, run_id: str | None = None, app: str | None = None) -> Path:
    """The sidecar of an export cut from the run output ``source``.

    The run id, app, args, fingerprint and inputs come from the source's own sidecar when it
    has one, else from the orchestration ``run_id`` in ``store``.
    """
    parent = read_lineage(source) or {}
    run = None
    if store is not None and run_id is not None:
        run = store.get(run_id)
    return write_lineage(
        export,
        app=parent.get("app") or (run.app if run else app) or "?",
        run_id=parent.get("run_id") or run_id,
        args=parent.get("args") or (run.args if run else {}),
        plan_fingerprint=parent.get("plan_fingerprint") or (run.plan_fingerprint if run else None),
        inputs=[i["path"] for i in parent.get("inputs", []) if i.get("kind") == "file"],
        derived_from=[source], columns=columns,
    )


def inputs_from_items(data_dir: Path | str, partitions: Iterable[Any]) -> list[Path]:
    """Files of ``data_dir`` named by partition items (a path, or a tuple starting with one).

    A generic guess at a run's inputs for apps whose items name their files, like flight's
    ``(relative path, first row, last row)``.
    """
    root = Path(data_dir)
    found: dict[str, Path] = {}
    for p in partitions:
        for item in getattr(p, "items", ()):
            first = item[0] if isinstance(item, (tuple, list)) and item else item
            if isinstance(first, str) and first and first not in found:
                candidate = root / first
                if candidate.is_file():
                    found[first] = candidate
    return list(found.values())


def read_lineage(path: Path | str) -> dict[str, Any] | None:
    """The lineage recorded for ``path``, or None when it has no sidecar.

    Raises:
        AnalysisError: the sidecar exists but is not a lineage document.
    """
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AnalysisError(f"{side} is not readable JSON ({e}): delete it, or export again to rewrite it") from e
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise AnalysisError(f"{side} is not a lineage document (schema {SCHEMA}): delete it, or export again")
    return doc


def lineage_state(path: Path | str, doc: dict[str, Any]) -> str:
    """``current`` if the file still has the recorded size and mtime, ``changed`` or ``missing``."""
    path = Path(path)
    if not path.exists():
        return "missing"
    recorded = doc.get("file", {})
    if recorded.get("kind") != "file":
        return "current"  # a folder: nothing cheap to compare
    st = path.stat()
    same = recorded.get("size") == st.st_size and recorded.get("mtime_ns") == st.st_mtime_ns
    return "current" if same else "changed"
