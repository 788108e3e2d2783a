"""Flight: per-segment distance and speed from synthetic flight-telemetry CSV files.

``prepare`` writes ``files`` CSV files of varied size (one aircraft each, one or
more flights in a row) under the data folder; each file is a partition weighted
by its size in bytes, cut into row ranges of ``chunk_rows`` rows that a pool
runs in parallel. ``reduce`` writes every point with its incoming segment
(``segments.parquet``) and one summary row per flight (``flights.parquet``).
"""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from switchyard.app import App, Args, Partition
from switchyard.workspace import atomic_write_bytes

from flight import worker

SEGMENTS_FILE = "segments.parquet"
FLIGHTS_FILE = "flights.parquet"
SEGMENT_COLUMNS = ["aircraft", "flight_id", "timestamp", "latitude", "longitude", "altitude_m",
                   "segment_km", "speed_kmh"]


class FlightArgs(Args):
    """Run arguments of the flight app."""

    files: int = Field(8, ge=1, le=100_000, description="Number of telemetry CSV files (partitions).")
    rows_per_file: int = Field(
        2000, ge=2, le=1_000_000,
        description="Typical rows per file; each file gets 0.3x to 1.7x this (about 10 s per row).",
    )
    aircraft: int = Field(4, ge=1, le=9999, description="Number of distinct aircraft flying the files.")
    seed: int = Field(42, ge=0, le=2**63 - 1, description="Seed of the generated data.")
    chunk_rows: int = Field(
        50_000, ge=2, le=100_000_000,
        description="Rows per work item: larger files are split into items a process pool runs in parallel.",
    )


class Flight(App):
    """Haversine segment distance and speed per point, and a summary per flight."""

    Args = FlightArgs
    compiled_modules = ("worker",)

    @property
    def dataset(self) -> str:
        """Folder (under the data folder) of the files these args generate."""
        a = self.args
        key = f"{a.files},{a.rows_per_file},{a.aircraft},{a.seed}"
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def file_path(self, index: int) -> Path:
        return self.data_dir / self.dataset / worker.FILE_PATTERN.format(index)

    # manager side ------------------------------------------------------------
    def prepare(self) -> None:
        a = self.args
        for index in range(a.files):
            worker.ensure_file(self.file_path(index), a.rows_per_file, a.aircraft, a.seed)

    def partitions(self) -> list[Partition]:
        a = self.args
        parts = []
        for index in range(a.files):
            rows = worker.file_rows(index, a.rows_per_file, a.seed)
            # Relative to the data folder: a worker resolves it against its own.
            rel_path = f"{self.dataset}/{worker.FILE_PATTERN.format(index)}"
            parts.append(Partition(
                name=Path(rel_path).stem,
                weight=float(worker.file_size(index, a.rows_per_file, a.seed)),
                items=tuple((rel_path, start, stop) for start, stop in worker.row_ranges(rows, a.chunk_rows)),
            ))
        return parts

    # worker side -------------------------------------------------------------
    def _chunk_function(self):
        a = self.args
        return functools.partial(worker.chunk_segments, str(self.data_dir), a.rows_per_file, a.aircraft, a.seed)

    def work_item(self, item) -> pd.DataFrame:
        return self._chunk_function()(item)

    def work(self, partition: Partition, map_items=map) -> pd.DataFrame:
        # A partial of a module-level function: a pool pickles it and the item
        # tuples, never the App instance.
        return self.combine(partition, list(map_items(self._chunk_function(), partition.items)))

    def combine(self, partition: Partition, results: list[pd.DataFrame]) -> pd.DataFrame:
        if not results:
            return empty_segments()
        frame = pd.concat(results)
        # Each chunk after the first repeats the row before it; the earlier
        # copy is the one that knows its incoming segment.
        frame = frame[~frame.index.duplicated(keep="first")].sort_index(kind="stable")
        return frame.reset_index(drop=True)

    # manager side ------------------------------------------------------------
    def reduce(self, results: list[pd.DataFrame], output_dir: Path) -> Path:
        output_dir = Path(output_dir)
        points = pd.concat(results, ignore_index=True) if results else empty_segments()
        points = points[SEGMENT_COLUMNS]
        flights = flight_summary(points)
        points = points.assign(timestamp=pd.to_datetime(points["timestamp"], unit="s", utc=True))
        write_parquet(flights, output_dir / FLIGHTS_FILE)
        return write_parquet(points, output_dir / SEGMENTS_FILE)


def empty_segments() -> pd.DataFrame:
    return pd.DataFrame({
        "aircraft": pd.Series([], dtype=str), "flight_id": pd.Series([], dtype=str),
        "timestamp": pd.Series([], dtype=np.int64),
        **{c: pd.Series([], dtype=np.float64) for c in SEGMENT_COLUMNS[3:]},
    })


def flight_summary(points: pd.DataFrame) -> pd.DataFrame:
    """One row per flight, in order of first appearance."""
    g = points.groupby("flight_id", sort=False)
    flights = pd.DataFrame({
        "aircraft": g["aircraft"].first(),
        "points": g.size(),
        "distance_km": g["segment_km"].sum(),
        "duration_s": g["timestamp"].last() - g["timestamp"].first(),
        "max_speed_kmh": g["speed_kmh"].max(),
        "start_latitude": g["latitude"].first(),
        "start_longitude": g["longitude"].first(),
        "end_latitude": g["latitude"].last(),
        "end_longitude": g["longitude"].last(),
    })
    duration = flights["duration_s"].astype(np.float64)
    flights.insert(4, "mean_speed_kmh", (flights["distance_km"] / duration * 3600.0).where(duration > 0))
    return flights.reset_index()[
        ["aircraft", "flight_id", "points", "distance_km", "duration_s", "mean_speed_kmh", "max_speed_kmh",
         "start_latitude", "start_longitude", "end_latitude", "end_longitude"]
    ]


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    return atomic_write_bytes(path, buffer.getvalue())
