"""Cleanup of the service's artifact files: finished jobs, failed jobs and heartbeats.

Each kind has its own folder under ``<workspace>/service/<app>/``, an age limit
(TTL) and a count limit. Every service action calls :func:`cleanup` so the
folders never grow without bound; what it removed is reported back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

HOUR = 3600.0


@dataclass(frozen=True)
class Retention:
    """How long and how many artifact files of each kind are kept."""

    done_ttl_hours: float = 168.0
    failed_ttl_hours: float = 336.0
    heartbeat_ttl_hours: float = 24.0
    done_max_files: int = 2000
    failed_max_files: int = 2000
    heartbeat_max_files: int = 1000

    def limits(self) -> dict[str, tuple[float, int]]:
        """Kind -> (TTL in seconds, max files)."""
        return {"done": (self.done_ttl_hours * HOUR, self.done_max_files),
                "failed": (self.failed_ttl_hours * HOUR, self.failed_max_files),
                "heartbeat": (self.heartbeat_ttl_hours * HOUR, self.heartbeat_max_files)}


FOLDERS = {"done": "done", "failed": "failed", "heartbeat": "heartbeats"}


def sweep(folder: Path, ttl_sec: float, max_files: int, now: float) -> list[Path]:
    """Remove the files of ``folder`` older than ``ttl_sec``, then the oldest beyond ``max_files``.

    Returns:
        The removed paths, oldest first.
    """
    if not folder.is_dir():
        return []
    files: list[tuple[float, str, Path]] = []
    for p in folder.iterdir():
        try:
            if p.is_file() and not p.name.startswith("."):
                files.append((p.stat().st_mtime, p.name, p))
        except FileNotFoundError:  # removed by another process meanwhile
            continue
    files.sort()
    expired = [f for f in files if now - f[0] > ttl_sec]
    kept = [f for f in files if now - f[0] <= ttl_sec]
    excess = kept[:max(0, len(kept) - max_files)]
    removed = []
    for _, _, p in expired + excess:
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            continue
    return removed


def cleanup(service_dir: Path, retention: Retention | None = None,
            now: float | None = None) -> dict[str, list[str]]:
    """Apply the retention to the done/, failed/ and heartbeats/ folders of ``service_dir``.

    Returns:
        Kind (done, failed, heartbeat) -> names of the files removed.
    """
    retention = retention or Retention()
    now = time.time() if now is None else now
    out: dict[str, list[str]] = {}
    for kind, (ttl, most) in retention.limits().items():
        out[kind] = [p.name for p in sweep(Path(service_dir) / FOLDERS[kind], ttl, most, now)]
    return out
