"""The record of a warm cluster: what runs where, in ``<workspace>/clusters/<app>.json``.

Written by ``cluster up`` once every worker joined, read by ``status``, ``down`` and RUN
from any process. Each process is kept with its host, pid, create time and log file
there, so a reused pid is never mistaken for one of ours (records written before the
create time was kept fall back to the cluster's id in the command line; see
:mod:`switchyard.cluster.hostops`).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from switchyard import workspace
from switchyard.app import AppEnv
from switchyard.cluster import tls
from switchyard.cluster.spec import Recorded

RECORD_SCHEMA = 1


# A recorded process: name, host, pid, log file, local, create time (kept as ``Proc`` here).
Proc = Recorded


@dataclass
class ClusterRecord:
    """What a warm cluster runs: written by ``up``, read by ``status``, ``down`` and RUN."""

    app: str
    id: str
    address: str
    dashboard: str | None
    scheduler: Proc
    wanted: dict[str, int]
    cython: bool
    started_at: float
    workers: list[Proc] = field(default_factory=list)
    pythons: dict[str, str] = field(default_factory=dict)  # host -> python of the helper scripts there
    idle_timeout: float | None = None
    kind: str | None = None  # "slurm": workers are batch jobs named ``tag`` (see cluster/jobqueue.py)
    tag: str | None = None

    def to_dict(self) -> dict:
        return {"schema": RECORD_SCHEMA, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "ClusterRecord":
        if d.get("schema") != RECORD_SCHEMA:
            raise ValueError(f"schema {d.get('schema')!r}")
        return cls(app=d["app"], id=d["id"], address=d["address"], dashboard=d.get("dashboard"),
                   scheduler=Proc.from_dict(d["scheduler"]),
                   wanted={k: int(v) for k, v in d["wanted"].items()},
                   cython=bool(d["cython"]), started_at=float(d["started_at"]),
                   workers=[Proc.from_dict(w) for w in d.get("workers", [])],
                   pythons=dict(d.get("pythons", {})), idle_timeout=d.get("idle_timeout"),
                   kind=d.get("kind"), tag=d.get("tag"))

    @property
    def marker(self) -> str:
        return self.id


def record_path(app_env: AppEnv) -> Path:
    return app_env.home / "clusters" / f"{app_env.app}.json"


def read_record(app_env: AppEnv) -> ClusterRecord | None:
    """The app's warm-cluster record, or None (none, or unreadable: then it is set aside)."""
    path = record_path(app_env)
    try:
        record = ClusterRecord.from_dict(json.loads(path.read_text()))
        tls.remember_home(record.address, app_env.home)  # its clients here use this workspace's certificates
        return record
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        path.replace(path.with_suffix(".json.bad"))  # keep it for a look, never trust it
        return None


def save_record(app_env: AppEnv, record: ClusterRecord) -> None:
    workspace.atomic_write_json(record_path(app_env), record.to_dict())


@contextmanager
def cluster_lock(app_env: AppEnv) -> Iterator[None]:
    path = app_env.home / "clusters" / f".{app_env.app}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with workspace.file_lock(path):
        yield
