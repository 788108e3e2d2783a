"""Adaptive: partitions whose weight is their size while their cost is the size squared.

Think of image tiles weighted by their side length while the work is their area:
``n`` small partitions ``s000``, ``s001``, ... of size 1 and one big partition
``big`` of size ``big`` (the last one). A worker sleeps ``size**2 * unit_ms``
milliseconds (sleeping keeps the costs exact on a busy machine), times
``slow_factor`` on the worker slot named ``slow_worker``. Planned on the
weights, the big partition shares a worker with half of the small ones; planned
on measured costs, it gets a worker nearly to itself. Only ``n``, ``big`` and
``unit_ms`` change what a partition costs (``cost_args``). Used by
``benchmarks/bench_adaptive.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

from pydantic import Field

from switchyard.app import App, Args, Partition
from switchyard.workspace import atomic_write_text

RESULT_FILE = "sizes.txt"


class AdaptiveArgs(Args):
    """Run arguments of the adaptive app."""

    n: int = Field(40, ge=1, le=100_000, description="Number of small partitions (size 1).")
    big: float = Field(5.5, gt=0, le=100, description="Size of the big partition (the last one).")
    unit_ms: float = Field(100, ge=0, le=60_000, description="Milliseconds of sleep per unit of size squared.")
    slow_worker: str = Field("", description="Worker slot whose partitions run slow_factor times longer.")
    slow_factor: float = Field(3.0, ge=1, le=100, description="How much slower the slow worker is.")


class Adaptive(App):
    """Weights are sizes; costs are sizes squared."""

    Args = AdaptiveArgs
    cost_args = ("n", "big", "unit_ms")
    pure_batches = True  # a batch only sleeps and returns its size: a backup copy is harmless

    def partitions(self) -> list[Partition]:
        parts = [Partition(name=f"s{i:03d}", weight=1.0, items=(1.0,)) for i in range(self.args.n)]
        return parts + [Partition(name="big", weight=float(self.args.big), items=(float(self.args.big),))]

    def work(self, partition: Partition, map_items=map) -> float:
        size = partition.items[0]
        seconds = size * size * self.args.unit_ms / 1000
        if self.args.slow_worker and _worker_name() == self.args.slow_worker:
            seconds *= self.args.slow_factor
        time.sleep(seconds)
        return size

    def reduce(self, results: list[float], output_dir: Path) -> Path:
        return atomic_write_text(Path(output_dir) / RESULT_FILE, f"{len(results)} {sum(results):g}\n")


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except ValueError:
        return ""
