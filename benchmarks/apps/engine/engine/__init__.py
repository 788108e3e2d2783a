"""Engine: partitions that do (almost) nothing, to measure what a run costs around the work.

``n`` partitions ``p00000``, ``p00001``, ... of weight 1 with one item each; a
worker sleeps ``work_ms`` milliseconds per partition (not at all at 0) and
returns the partition's index. ``reduce`` writes the count of results in one
small file. Used by ``benchmarks/bench_engine.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from switchyard.app import App, Args, Partition
from switchyard.workspace import atomic_write_text

RESULT_FILE = "count.txt"


class EngineArgs(Args):
    """Run arguments of the engine app."""

    n: int = Field(8, ge=1, le=1_000_000, description="Number of partitions (one batch each).")
    work_ms: int = Field(0, ge=0, le=3_600_000, description="Milliseconds each partition sleeps.")


def noop(x=None) -> None:
    """The raw floor's task: nothing (imported by reference on the workers)."""


def nap(ms: int) -> None:
    """(e)'s raw floor task: sleep ``ms`` milliseconds, as a partition with ``work_ms`` does."""
    time.sleep(ms / 1000)
    return None


class Engine(App):
    """One partition per batch; the work is a sleep of ``work_ms`` or nothing."""

    Args = EngineArgs
    stream_results = True  # reduce only counts its results

    def partitions(self) -> list[Partition]:
        return [Partition(name=f"p{i:05d}", weight=1.0, items=(i,)) for i in range(self.args.n)]

    def work(self, partition: Partition, map_items=map) -> int:
        if self.args.work_ms:
            time.sleep(self.args.work_ms / 1000)
        return partition.items[0]

    def reduce(self, results: list[int], output_dir: Path) -> Path:
        return atomic_write_text(Path(output_dir) / RESULT_FILE, f"{len(results)}\n")
