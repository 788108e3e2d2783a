"""Flight: per-segment distance and speed from synthetic flight-telemetry CSV files.

``prepare`` writes ``files`` CSV files of varied size (one aircraft each, one or
more flights in a row) under the data folder; each file is a partition weighted
by its size in bytes, cut into row ranges of ``chunk_rows`` rows that a pool
runs in parallel. ``reduce`` writes every point with its incoming segment
(``segments.parquet``) and one summary row per flight (``flights.parquet``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from switchyard.app import App, Args, Partition
from switchyard.exceptions import ArgsError
from switchyard.workspace import atomic_write_bytes

from flight import worker

SEGMENTS_FILE = "segments.parquet"
FLIGHTS_FILE = "flights.parquet"
SEGMENT_COLUMNS = ["aircraft", "flight_id", "timestamp", "latitude", "longitude", "altitude_m",
                   "segment_km", "speed_kmh"]
SEGMENTS_SCHEMA = pa.schema([
    ("aircraft", pa.string()),
    ("flight_id", pa.string()),
    ("timestamp", pa.timestamp("s", tz="UTC")),
    *[(c, pa.float64()) for c in SEGMENT_COLUMNS[3:]],
])
FLIGHT_COLUMNS = ["aircraft", "flight_id", "points", "distance_km", "duration_s", "mean_speed_kmh",
                  "max_speed_kmh", "start_latitude", "start_longitude", "end_latitude",
                  "end_longitude"]
# segments.parquet row groups hold whole partitions, about this many rows each
ROW_GROUP_ROWS = 1_000_000


class FlightArgs(Args):
    """Run arguments of the flight app."""

    files: int = Field(
        8, ge=1, le=100_000, description="Number of telemetry CSV files (partitions)."
    )
    rows_per_file: int = Field(
        2000, ge=2, le=1_000_000,
        description="Typical rows per file; each file gets 0.3x to 1.7x this (about 10 s per row).",
    )
    aircraft: int = Field(
        4, ge=1, le=9999, description="Number of distinct aircraft flying the files."
    )
    seed: int = Field(42, ge=0, le=2**63 - 1, description="Seed of the generated data.")
    chunk_rows: int = Field(
        50_000, ge=2, le=100_000_000,
        description="Rows per work item: larger files are split into items that a "
                    "process pool runs in parallel.",
    )
    inputs: list[str] = Field(
        default_factory=list,
        description="Telemetry CSV files to process instead of generating them (a file trigger "
                    "passes its new files here): paths relative to the data folder, e.g. "
                    "inbox/day1.csv, or absolute, in the generated files' fixed-width format.",
    )


class Flight(App):
    """Haversine segment distance and speed per point, and a summary per flight."""

    Args = FlightArgs
    compiled_modules = ("worker",)
    pure_batches = True  # a batch reads its files and returns its result: a backup copy is harmless

    @property
    def dataset(self) -> str:
        """Folder (under the data folder) of the files these args generate."""
        a = self.args
        if a.inputs:
            return ""
        key = f"{a.files},{a.rows_per_file},{a.aircraft},{a.seed}"
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    def file_path(self, index: int) -> Path:
        return self.data_dir / self.dataset / worker.FILE_PATTERN.format(index)

    # manager side ------------------------------------------------------------
    def prepare(self) -> None:
        a = self.args
        if a.inputs:
            for rel_path in a.inputs:
                self.input_rows(rel_path)  # refuses a missing or malformed file before any work
            return
        for index in range(a.files):
            worker.ensure_file(self.file_path(index), a.rows_per_file, a.aircraft, a.seed)

    def input_rows(self, rel_path: str) -> int:
        """Rows of a given input file, checked against the fixed-width format."""
        path = self.data_dir / rel_path
        try:
            rows = worker.input_rows(path)
        except (OSError, ValueError) as e:
            raise ArgsError("flight", "inputs", f"{path}: {e}",
                            "give telemetry CSV files in the generated format (see apps/flight/README.md)") from None
        return rows

    def partitions(self) -> list[Partition]:
        a = self.args
        if a.inputs:
            return self.input_partitions()
        parts = []
        for index in range(a.files):
            rows = worker.file_rows(index, a.rows_per_file, a.seed)
            # Relative to the data folder: a worker resolves it against its own.
            rel_path = f"{self.dataset}/{worker.FILE_PATTERN.format(index)}"
            parts.append(Partition(
                name=Path(rel_path).stem,
                weight=float(worker.file_size(index, a.rows_per_file, a.seed)),
                items=tuple((rel_path, start, stop)
                            for start, stop in worker.row_ranges(rows, a.chunk_rows)),
            ))
        return parts

    def input_partitions(self) -> list[Partition]:
        parts, names = [], set()
        for rel_path in self.args.inputs:
            rows = self.input_rows(rel_path)
            name = Path(rel_path).stem
            while name in names:  # same file name in two folders
                name += "_"
            names.add(name)
            parts.append(Partition(
                name=name, weight=float((self.data_dir / rel_path).stat().st_size),
                items=tuple((rel_path, start, stop)
                            for start, stop in worker.row_ranges(rows, self.args.chunk_rows)),
            ))
        return parts

    # worker side -------------------------------------------------------------
    def _chunk_function(self):
        a = self.args
        if a.inputs:
            return functools.partial(worker.input_segments, str(self.data_dir))
        return functools.partial(
            worker.chunk_segments, str(self.data_dir), a.rows_per_file, a.aircraft, a.seed
        )

    def work_item(self, item) -> pd.DataFrame:
        return self._chunk_function()(item)

    def work(self, partition: Partition, map_items=map) -> pd.DataFrame:
        # A partial of a module-level function: a pool pickles it and the item
        # tuples, never the App instance.
        frame = self.combine(partition, list(map_items(self._chunk_function(), partition.items)))
        print(f"{partition.name}: {len(frame)} segments")  # the app's own output, shown in the run log
        return frame

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
        # A flight never spans two files, so each partition is summarised on its own.
        flights = [flight_summary(r) for r in results] or [flight_summary(empty_segments())]
        write_parquet(pd.concat(flights, ignore_index=True), output_dir / FLIGHTS_FILE)
        # Streamed in row groups of ~ROW_GROUP_ROWS whole partitions: the manager
        # never holds a second copy of millions of points.
        path = output_dir / SEGMENTS_FILE
        with atomic_file(path) as tmp, pq.ParquetWriter(tmp, SEGMENTS_SCHEMA) as writer:
            group: list[pd.DataFrame] = []
            for i, result in enumerate(results):
                group.append(result)
                if sum(len(g) for g in group) >= ROW_GROUP_ROWS or i == len(results) - 1:
                    writer.write_table(segments_table(pd.concat(group, ignore_index=True)))
                    group = []
            if not results:
                writer.write_table(segments_table(empty_segments()))
        return path


def segments_table(frame: pd.DataFrame) -> pa.Table:
    columns = {c: pa.array(frame[c], type=SEGMENTS_SCHEMA.field(c).type) for c in SEGMENT_COLUMNS
               if c != "timestamp"}
    # Epoch seconds in the CSV; a UTC timestamp in the output.
    seconds = pa.array(frame["timestamp"].to_numpy(np.int64))
    columns["timestamp"] = seconds.cast(SEGMENTS_SCHEMA.field("timestamp").type)
    return pa.table({c: columns[c] for c in SEGMENT_COLUMNS}, schema=SEGMENTS_SCHEMA)


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
        "points": g.size().astype(np.int64),
        "distance_km": g["segment_km"].sum(),
        "duration_s": (g["timestamp"].last() - g["timestamp"].first()).astype(np.int64),
        "max_speed_kmh": g["speed_kmh"].max(),
        "start_latitude": g["latitude"].first(),
        "start_longitude": g["longitude"].first(),
        "end_latitude": g["latitude"].last(),
        "end_longitude": g["longitude"].last(),
    })
    duration = flights["duration_s"].astype(np.float64)
    mean_speed = (flights["distance_km"] / duration * 3600.0).where(duration > 0)
    flights.insert(4, "mean_speed_kmh", mean_speed)
    return flights.reset_index()[FLIGHT_COLUMNS]


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    return atomic_write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def atomic_file(path: Path):
    """A temp file next to ``path`` that replaces it on success and vanishes on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
