# cython: language_level=3, annotation_typing=False
"""Flight telemetry: the synthetic input files and the per-segment computation.

Both the manager (``prepare``) and the workers import this module: a worker
whose host does not share the manager's file system regenerates a missing
input file from its index, byte for byte.

The CSV rows have a fixed width (``ROW_BYTES``), so a file's size is known
without generating it (idempotent ``prepare``, partition weights) and a worker
reads its row range with one seek instead of scanning the file from the top.
"""

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from switchyard import device
from switchyard.workspace import atomic_write_bytes

COLUMNS = ["aircraft", "flight_id", "timestamp", "latitude", "longitude", "altitude_m"]
HEADER = (",".join(COLUMNS) + "\n").encode("ascii")
# Field widths of one row: "AC0001,FL00000-0001,1704067200,+48.85660,+002.35220,10512.3\n"
WIDTHS = (6, 12, 10, 9, 10, 7)
ROW_BYTES = sum(WIDTHS) + len(WIDTHS)  # fields, 5 commas and the newline
FILE_PATTERN = "flight_{:04d}.csv"

EARTH_RADIUS_KM = 6371.0
SIZE_FACTOR = (0.3, 1.7)  # a file holds rows_per_file times a factor drawn in this range
FLIGHT_POINTS = (360, 2160)  # points per flight: 1 h to 6 h at one point per ~10 s
CRUISE_SPEED_MS = (200.0, 260.0)
CRUISE_ALTITUDE_M = (9500.0, 12500.0)
CLIMB_SHARE = 0.08  # share of a flight spent climbing, and again descending
MAX_LATITUDE = 80.0  # paths reflect off these parallels instead of crossing the poles
EPOCH_2024 = 1_704_067_200


# generation -------------------------------------------------------------------

def file_rng(seed, index):
    return np.random.default_rng([int(seed), int(index)])


def file_rows(index, rows_per_file, seed):
    """Number of rows of input file ``index`` (the first draw of its generator)."""
    factor = file_rng(seed, index).uniform(*SIZE_FACTOR)
    return max(2, int(round(rows_per_file * factor)))


def file_size(index, rows_per_file, seed):
    """Size in bytes of input file ``index``, without generating it."""
    return len(HEADER) + file_rows(index, rows_per_file, seed) * ROW_BYTES


def file_index(path):
    """The index of an input file from its name ``flight_0012.csv``."""
    stem = Path(path).stem
    try:
        return int(stem.rsplit("_", 1)[1])
    except (IndexError, ValueError):
        raise ValueError(f"{path}: not a flight input file (expected flight_<index>.csv)") from None


def generate_file(index, rows_per_file, aircraft, seed):
    """The bytes of input file ``index``: one aircraft flying one or more flights in a row."""
    rng = file_rng(seed, index)
    rows = max(2, int(round(rows_per_file * rng.uniform(*SIZE_FACTOR))))  # same draw as file_rows

    # Cut the rows into flights; a short remainder joins the last flight.
    shortest, longest = FLIGHT_POINTS
    lengths = rng.integers(shortest, longest + 1, size=rows // shortest + 1)
    cuts = np.cumsum(lengths)
    cuts = cuts[: int(np.searchsorted(cuts, rows, side="left"))]
    if len(cuts) and rows - cuts[-1] < shortest:
        cuts = cuts[:-1]
    starts = np.concatenate([[0], cuts]).astype(np.int64)
    n_flights = len(starts)
    flight = np.zeros(rows, dtype=np.int64)
    flight[starts[1:]] = 1
    flight = np.cumsum(flight)
    first = np.zeros(rows, dtype=bool)
    first[starts] = True
    pos = np.arange(rows) - starts[flight]  # point number within its flight
    length = np.diff(np.concatenate([starts, [rows]]))[flight]

    # Per-flight draws, then per-point noise.
    heading0 = rng.uniform(0.0, 2 * math.pi, size=n_flights)
    cruise_speed = rng.uniform(*CRUISE_SPEED_MS, size=n_flights)
    cruise_alt = rng.uniform(*CRUISE_ALTITUDE_M, size=n_flights)
    turnaround = rng.integers(3600, 3 * 3600, size=n_flights)
    lat0 = rng.uniform(-50.0, 60.0)
    lon0 = rng.uniform(-180.0, 180.0)
    t0 = EPOCH_2024 + int(rng.integers(0, 30 * 86400))
    turn = rng.normal(0.0, math.radians(0.5), size=rows)
    speed = np.clip(cruise_speed[flight] + rng.normal(0.0, 2.0, size=rows), *CRUISE_SPEED_MS)
    dt = rng.integers(9, 12, size=rows)
    alt_noise = rng.normal(0.0, 5.0, size=rows)

    # Heading: a random walk restarting at each flight's initial heading.
    walk = np.cumsum(turn)
    heading = heading0[flight] + walk - walk[starts][flight]
    # A new flight leaves from where the previous one landed, after a turnaround.
    step_km = np.where(first, 0.0, speed * dt / 1000.0)
    dt = np.where(first, turnaround[flight], dt)
    dt[0] = 0
    timestamp = t0 + np.cumsum(dt)

    # Local flat-earth steps: latitude first (it does not depend on longitude),
    # then each longitude step scaled by the latitude it starts from.
    lat = _reflect(lat0 + np.degrees(np.cumsum(step_km * np.cos(heading)) / EARTH_RADIUS_KM))
    lat_from = np.radians(np.concatenate([[lat[0]], lat[:-1]]))
    dlon = np.degrees(step_km * np.sin(heading) / (EARTH_RADIUS_KM * np.cos(lat_from)))
    lon = (lon0 + np.cumsum(dlon) + 180.0) % 360.0 - 180.0

    phase = pos / np.maximum(length - 1, 1)
    profile = np.minimum(1.0, np.minimum(phase, 1.0 - phase) / CLIMB_SHARE)
    altitude = np.clip(cruise_alt[flight] * profile + alt_noise, 0.0, 99999.9)

    return HEADER + encode_rows(index, 1 + index % aircraft, flight, timestamp, lat, lon, altitude)


def _reflect(lat):
    """Fold latitudes into [-MAX_LATITUDE, MAX_LATITUDE] like a path bouncing off two parallels."""
    span = 2 * MAX_LATITUDE
    y = (lat + MAX_LATITUDE) % (2 * span)
    return np.where(y <= span, y, 2 * span - y) - MAX_LATITUDE


def encode_rows(index, aircraft_number, flight, timestamp, lat, lon, altitude):
    """Fixed-width CSV rows as bytes, built with array arithmetic (no per-row Python)."""
    rows = len(flight)
    out = np.empty((rows, ROW_BYTES), dtype=np.uint8)
    col = 0

    def put(block):
        nonlocal col
        out[:, col: col + block.shape[1]] = block
        col += block.shape[1]
        if col < ROW_BYTES - 1:
            out[:, col] = ord(",")
            col += 1

    put(np.broadcast_to(np.frombuffer(f"AC{aircraft_number:04d}".encode(), np.uint8), (rows, 6)))
    flight_ids = np.frombuffer(
        "".join(f"FL{index:05d}-{n + 1:04d}" for n in range(int(flight[-1]) + 1)).encode(), np.uint8
    ).reshape(-1, 12)
    put(flight_ids[flight])
    put(_digits(np.asarray(timestamp, dtype=np.int64), 10))
    put(_fixed_point(lat, 2, 5, signed=True))
    put(_fixed_point(lon, 3, 5, signed=True))
    put(_fixed_point(altitude, 5, 1, signed=False))
    out[:, col] = ord("\n")
    return out.tobytes()


def _digits(values, width):
    """Zero-padded decimal digits of non-negative integers, one row of ``width`` bytes each."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values[:, None] // powers) % 10 + ord("0")).astype(np.uint8)


def _fixed_point(values, int_digits, frac_digits, signed):
    scaled = np.rint(np.asarray(values, dtype=np.float64) * 10**frac_digits).astype(np.int64)
    magnitude = np.abs(scaled)
    parts = []
    if signed:
        parts.append(np.where(scaled < 0, ord("-"), ord("+")).astype(np.uint8)[:, None])
    parts.append(_digits(magnitude // 10**frac_digits, int_digits))
    parts.append(np.full((len(scaled), 1), ord("."), dtype=np.uint8))
    parts.append(_digits(magnitude % 10**frac_digits, frac_digits))
    return np.hstack(parts)


def ensure_file(path, rows_per_file, aircraft, seed):
    """Make sure input file ``path`` exists with the right size; (re)generate it otherwise.

    Returns:
        True when the file was (re)written.
    """
    path = Path(path)
    index = file_index(path)
    try:
        if path.stat().st_size == file_size(index, rows_per_file, seed):
            return False
    except FileNotFoundError:
        pass
    atomic_write_bytes(path, generate_file(index, rows_per_file, aircraft, seed))
    return True


# segments ---------------------------------------------------------------------

def haversine_km(lat1, lon1, lat2, lon2, xp=np):
    """Great-circle distance in km between points given in degrees (scalars or arrays).

    ``xp`` is the array module that computes it (NumPy, or CuPy on the GPU in a rapids
    batch); the result is an array of that module.
    """
    lat1, lon1, lat2, lon2 = (xp.radians(xp.asarray(v, dtype=xp.float64))
                              for v in (lat1, lon1, lat2, lon2))
    a = (xp.sin((lat2 - lat1) / 2) ** 2
         + xp.cos(lat1) * xp.cos(lat2) * xp.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * xp.arcsin(xp.sqrt(xp.minimum(a, 1.0)))


def read_rows(path, start, stop):
    """Rows ``start`` (included) to ``stop`` (excluded) of an input file, indexed by row number."""
    with open(path, "rb") as f:
        f.seek(len(HEADER) + start * ROW_BYTES)
        data = f.read((stop - start) * ROW_BYTES)
    frame = pd.read_csv(
        io.BytesIO(data), header=None, names=COLUMNS,
        dtype={"aircraft": str, "flight_id": str, "timestamp": np.int64, "latitude": np.float64,
               "longitude": np.float64, "altitude_m": np.float64},
    )
    if len(frame) != stop - start:
        raise ValueError(f"{path}: expected rows {start}..{stop - 1}, read {len(frame)} rows")
    frame.index = pd.RangeIndex(start, stop, name="row")
    return frame


def segments(frame):
    """Add ``segment_km`` and ``speed_kmh``: from the previous point of the same flight to this one.

    A flight's first point (and a chunk's first row, whose predecessor is in
    another chunk) has no incoming segment: NaN. The numbers are computed with the
    batch's array module (CuPy on the GPU with the rapids bit, else NumPy).
    """
    segment_km, speed_kmh = segment_arrays(
        frame["latitude"].to_numpy(), frame["longitude"].to_numpy(), frame["timestamp"].to_numpy(),
        frame["flight_id"].to_numpy(), device.array_module())
    out = frame.copy()
    out["segment_km"] = segment_km
    out["speed_kmh"] = speed_kmh
    return out


def segment_arrays(lat, lon, ts, flight_ids, xp=np):
    """(km, km/h) of each point's incoming segment as NumPy arrays, computed with ``xp``."""
    same_flight = np.zeros(len(lat), dtype=bool)
    same_flight[1:] = flight_ids[1:] == flight_ids[:-1]  # strings: compared on the CPU
    lat, lon = xp.asarray(lat, dtype=xp.float64), xp.asarray(lon, dtype=xp.float64)
    km = xp.full(len(lat), xp.nan)
    km[1:] = haversine_km(lat[:-1], lon[:-1], lat[1:], lon[1:], xp)
    km[~xp.asarray(same_flight)] = xp.nan
    seconds = xp.full(len(lat), xp.nan)
    seconds[1:] = xp.diff(xp.asarray(ts)).astype(xp.float64)
    seconds[seconds <= 0] = xp.nan
    return device.to_numpy(km), device.to_numpy(km / seconds * 3600.0)


def chunk_segments(data_dir, rows_per_file, aircraft, seed, item):
    """Work one item ``(path relative to data_dir, start, stop)``; regenerates a missing input file.

    Module-level (bound with functools.partial) so a process pool can pickle it.
    """
    rel_path, start, stop = item
    path = Path(data_dir) / rel_path
    ensure_file(path, rows_per_file, aircraft, seed)
    return segments(read_rows(path, int(start), int(stop)))


def input_rows(path):
    """Rows of an input file given by the operator; ValueError unless it has the generated format."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(len(HEADER))
    size = path.stat().st_size
    if head != HEADER:
        raise ValueError(f"its first line is not the header {HEADER.decode().strip()!r}")
    if (size - len(HEADER)) % ROW_BYTES:
        raise ValueError(f"its size {size} is not the header plus whole {ROW_BYTES}-byte rows")
    return (size - len(HEADER)) // ROW_BYTES


def input_segments(data_dir, item):
    """Work one item of a given input file (never regenerated: it is the operator's data)."""
    rel_path, start, stop = item
    return segments(read_rows(Path(data_dir) / rel_path, int(start), int(stop)))


def row_ranges(rows, chunk_rows):
    """``(start, stop)`` ranges of ``chunk_rows`` rows; each after the first also takes the
    row before it, so the segment across a chunk border is computed."""
    return [(max(0, k - 1), min(k + chunk_rows, rows)) for k in range(0, rows, chunk_rows)]
