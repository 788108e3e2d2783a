"""What the driver of an app run executes, read back from the store: the run request as a
:class:`Job`, its partitions read as they are submitted (:class:`StoredPartitions`: a run of
100,000 partitions is never all in the driver's memory), the due batches (:class:`Due`), and
the first engine's per-batch checkpoint files (still read for its old runs)."""

from __future__ import annotations

import heapq
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from switchyard.app import Partition, data_dir
from switchyard.cluster.addresses import slot_names
from switchyard.modes import Mode
from switchyard.runs import checkpoints
from switchyard.runs.request import RunRequest, app_env_of
from switchyard.runs.store import RunStore
from switchyard.runs.task import BatchSpec

JOB_FILE = "job.pkl"  # where the first engine kept a run's parameters (read for its old runs)


class StoredPartitions(Sequence):
    """A run's partitions, read from the store as the driver needs them: :meth:`prefetch`
    before submitting, :meth:`release` once settled; iterating reads them in chunks."""

    def __init__(self, store: RunStore, oid: str, total: int):
        self.store, self.oid, self.total = store, oid, int(total)
        self._held: dict[int, tuple[Partition, str]] = {}

    @staticmethod
    def _row(row) -> tuple[Partition, str]:
        _, name, weight, payload, planned = row
        return Partition(name=name, weight=weight, items=pickle.loads(payload) if payload else ()), planned or ""

    def prefetch(self, idxs) -> None:
        missing = [i for i in idxs if i not in self._held]
        for row in self.store.payloads(self.oid, missing) if missing else ():
            self._held[row[0]] = self._row(row)

    def release(self, idx: int) -> None:
        self._held.pop(idx, None)

    def _get(self, i: int) -> tuple[Partition, str]:
        if i not in self._held:
            self.prefetch([i])
        return self._held[i]

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.total))]
        return self._get(int(i))[0]

    def slot(self, i: int) -> str:
        return self._get(int(i))[1]

    def __iter__(self) -> Iterator[Partition]:
        for at in range(0, self.total, 1000):
            for row in self.store.payloads(self.oid, range(at, min(self.total, at + 1000))):
                yield self._row(row)[0]


class _Slots(Sequence):
    def __init__(self, partitions: StoredPartitions):
        self.partitions = partitions

    def __len__(self) -> int:
        return len(self.partitions)

    def __getitem__(self, i):
        return self.partitions.slot(i)


class Due(dict):
    """Batch index -> when it may be submitted next (0: now), with a heap so that taking the
    due ones costs what is taken, not the run's size."""

    def __init__(self, items=()):
        super().__init__()
        self._heap: list[tuple[float, int]] = []
        for i, at in items:
            self[i] = at

    def __setitem__(self, idx: int, at: float) -> None:
        super().__setitem__(idx, at)
        heapq.heappush(self._heap, (at, idx))

    def take(self, now: float, n: int, busy) -> list[int]:
        """Up to ``n`` indices due by ``now`` and not in ``busy``, earliest first (then by index)."""
        out: list[int] = []
        heap = self._heap
        while heap and len(out) < n and heap[0][0] <= now:
            at, idx = heapq.heappop(heap)
            if self.get(idx) == at and idx not in busy and idx not in out:
                out.append(idx)
        return out


@dataclass
class Job:
    """What the driver executes, read back from the store: the run request, the batches'
    partitions (their items are the batches' payloads) and each batch's planned worker."""

    spec: BatchSpec
    partitions: Sequence  # of Partition: StoredPartitions (read as needed), a list for old runs
    slot_of: Sequence  # planned worker slot per partition index
    slot_names: list[str]
    workers: dict[str, int]
    scheduler: str
    cluster: str  # "local": start one for this run; "existing": use the scheduler address as is
    mode: int
    max_attempts: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_inflight: int = 0  # 0: no cap
    plan_note: str = ""  # which plan this run uses, and why
    backups: bool = False  # straggler backups (switchyard.runs.backups)
    extra: dict = field(default_factory=dict)

    @staticmethod
    def from_store(store: RunStore, oid: str) -> "Job":
        o = store.get(oid)
        if not o.request:  # recorded by an engine before the run request (schema 1): its job file
            with open(Path(o.run_dir) / JOB_FILE, "rb") as f:
                return pickle.load(f)
        req = RunRequest.from_dict(o.request)
        app_env = app_env_of(req, store.path.parent)
        opts = dict(req.options)
        partitions = StoredPartitions(store, oid, o.total_batches)
        return Job(
            spec=BatchSpec(app=req.app, app_dir=str(app_env.app_dir), args=dict(req.args),
                           data_dir=str(data_dir(app_env)), pool_size=req.pool_size,
                           rapids=bool(int(req.mode or 0) & 8)),
            partitions=partitions, slot_of=_Slots(partitions),
            slot_names=slot_names(dict(req.workers or {})),
            workers=dict(req.workers or {}), scheduler=req.scheduler or "", cluster=req.cluster,
            mode=int(req.mode or 0), max_attempts=req.max_attempts, max_inflight=req.max_inflight,
            backoff_base=float(opts.get("backoff_base", 0.5)), backoff_cap=float(opts.get("backoff_cap", 30.0)),
            plan_note=str(opts.get("plan_note") or ""),
            backups=bool(opts.get("backups")) and Mode(int(req.mode or 0)).uses_dask,
        )


checkpoint_path = checkpoints.legacy_path  # the first engine's per-batch files (still read)


def write_checkpoint(path: Path, result: Any) -> None:
    """Write a batch's result as the first engine did (one file, temp file + rename), without
    fsync. Runs now append to group files (:class:`switchyard.runs.checkpoints.Writer`).

    A process crash never loses it (the page cache survives); a power loss may, like the
    store's last commits (WAL, synchronous=NORMAL): a checkpoint that cannot be read back
    at the end is not fatal, its batch runs again. An fsync per batch would cost
    milliseconds on a busy disk, more than everything else the driver does per batch.
    """
    data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except FileNotFoundError:  # first checkpoint of the run: make the folder, then again
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
