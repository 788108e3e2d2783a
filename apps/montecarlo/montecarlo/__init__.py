"""Monte Carlo: estimate pi with a hand-written PRNG in plain Python loops.

A CPU-bound app with no input data: each partition (a *task*) draws
``samples_per_task`` points in ``chunks`` items, so pool mode can run the chunks
of one task in parallel and the cython mode bit compiles the loop in
``worker.py``. Each (seed, task, chunk) has its own random stream, so results
do not depend on where or in which order the chunks run.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from switchyard.app import App, Args, Partition
from switchyard.workspace import atomic_write_bytes, atomic_write_json

from montecarlo import worker

RESULT_FILE = "result.parquet"
SUMMARY_FILE = "summary.json"


class MonteCarloArgs(Args):
    """Run arguments of the montecarlo app."""

    tasks: int = Field(8, ge=1, le=100_000, description="Number of partitions (tasks).")
    samples_per_task: int = Field(
        200_000, ge=1, le=10_000_000_000, description="Random points drawn by each task."
    )
    chunks: int = Field(
        4, ge=1, le=10_000,
        description="Items per task: the chunks a worker's process pool runs in parallel.",
    )
    seed: int = Field(7, ge=-(2**63), le=2**63 - 1, description="Seed of the random streams.")


def split_samples(total: int, parts: int) -> list[int]:
    """Split ``total`` into at most ``parts`` near-equal positive counts (larger first)."""
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    return [base + 1 if i < extra else base for i in range(parts)]


class MonteCarlo(App):
    """Estimate pi twice: hit-or-miss on the quarter circle, and the mean of 4/(1+x^2) on [0, 1]."""

    Args = MonteCarloArgs
    stream_results = True  # reduce only iterates its results
    pure_batches = True  # a batch only computes and returns: a backup copy is harmless
    compiled_modules = ("worker",)

    def partitions(self) -> list[Partition]:
        a = self.args
        counts = split_samples(a.samples_per_task, a.chunks)
        return [
            Partition(
                name=f"task-{task:04d}",
                weight=float(a.samples_per_task),
                items=tuple((task, chunk, n, a.seed) for chunk, n in enumerate(counts)),
            )
            for task in range(a.tasks)
        ]

    def work_item(self, item: Any) -> tuple:
        return worker.run_chunk(item)

    def work(self, partition: Partition, map_items=map) -> dict:
        # Map the module-level function, not the bound method: a pool then
        # pickles only the small item tuples, never the App instance.
        return self.combine(partition, list(map_items(worker.run_chunk, partition.items)))

    def combine(self, partition: Partition, results: list[tuple]) -> dict:
        # Sum in chunk order (results come back in item order from any map),
        # so the float total is the same whatever ran where.
        results = sorted(results, key=lambda r: r[1])
        task = results[0][0] if results else int(partition.name.rsplit("-", 1)[-1])
        integral_sum = 0.0
        for r in results:
            integral_sum += r[4]
        return {
            "task": task,
            "samples": sum(r[2] for r in results),
            "inside": sum(r[3] for r in results),
            "integral_sum": integral_sum,
        }

    def reduce(self, results: list[dict], output_dir: Path) -> Path:
        output_dir = Path(output_dir)
        rows = [dict(r) for r in results]
        for r in rows:
            r["estimate"] = 4.0 * r["inside"] / r["samples"]
            r["integral_estimate"] = r["integral_sum"] / r["samples"]
        frame = pd.DataFrame(
            rows, columns=["task", "samples", "inside", "estimate", "integral_estimate"]
        ).astype({"task": "int64", "samples": "int64", "inside": "int64",
                  "estimate": "float64", "integral_estimate": "float64"})
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
        path = atomic_write_bytes(output_dir / RESULT_FILE, buffer.getvalue())

        samples = int(frame["samples"].sum())
        inside = int(frame["inside"].sum())
        integral_sum = 0.0
        for r in rows:  # partition order, so the sum is reproducible
            integral_sum += r["integral_sum"]
        estimate = 4.0 * inside / samples if samples else float("nan")
        integral_estimate = integral_sum / samples if samples else float("nan")
        atomic_write_json(output_dir / SUMMARY_FILE, {
            "tasks": len(rows),
            "samples": samples,
            "inside": inside,
            "estimate": estimate,
            "error": estimate - math.pi,
            "integral_estimate": integral_estimate,
            "integral_error": integral_estimate - math.pi,
            "seed": self.args.seed,
        })
        return path
