"""__Class__: a Switchyard app made by `switchyard new __app__`.

Manager side: ``partitions()`` splits the job; worker side: ``work(partition)`` runs
``work_item`` over a partition's items (in a process pool in pool mode) and
``combine``s them; manager side again: ``reduce(results, output_dir)`` writes the
output. Replace the sums of squares with your own work.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field

from switchyard.app import App, Args, Partition
from switchyard.workspace import atomic_write_bytes

OUTPUT_FILE = "result.parquet"


class __Class__Args(Args):
    """Run arguments of __app__ (``[args]`` of app_settings.toml; errors name the field)."""

    parts: int = Field(4, ge=1, le=10_000, description="Number of partitions.")
    items_per_part: int = Field(2, ge=1, le=1_000, description="Items per partition (a pool runs them in parallel).")
    numbers: int = Field(10_000, ge=1, le=100_000_000, description="Random numbers drawn by each item.")
    seed: int = Field(1, description="Same seed, same output.")


def sum_of_squares(item: tuple[int, int, int, int]) -> dict:
    """One item: draw ``n`` numbers from its own random stream (so where it runs does not matter)."""
    part, index, n, seed = item
    rng = random.Random(f"{seed}-{part}-{index}")
    total = 0.0
    for _ in range(n):
        x = rng.random()
        total += x * x
    return {"part": part, "item": index, "n": n, "sum_sq": total}


class __Class__(App):
    Args = __Class__Args

    def partitions(self) -> list[Partition]:
        a = self.args
        return [Partition(name=f"part-{p:04d}", weight=float(a.items_per_part * a.numbers),
                          items=tuple((p, i, a.numbers, a.seed) for i in range(a.items_per_part)))
                for p in range(a.parts)]

    def work_item(self, item: Any) -> dict:
        return sum_of_squares(item)

    def work(self, partition: Partition, map_items=map) -> list[dict]:
        # Map the module-level function: a pool then pickles the small items, never the App.
        rows = list(map_items(sum_of_squares, partition.items))
        print(f"{partition.name}: {len(rows)} items done")  # shown in the run log
        return rows

    def reduce(self, results: list[list[dict]], output_dir: Path) -> Path:
        frame = pd.DataFrame([row for rows in results for row in rows],
                             columns=["part", "item", "n", "sum_sq"])
        frame = frame.sort_values(["part", "item"], kind="stable").reset_index(drop=True)
        frame["mean_sq"] = frame["sum_sq"] / frame["n"]
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return atomic_write_bytes(Path(output_dir) / OUTPUT_FILE, buffer.getvalue())
