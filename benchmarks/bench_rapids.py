"""Flight's worker numerics in mode 0 (NumPy) and mode 8 (CuPy on the GPU), through the batch path.

Each input file is one batch run by ``switchyard.runs.task.run_batch`` (what the
driver's executor calls in modes 0 and 8) with the rapids bit off, then on; the
outputs are compared column by column. Timed twice per mode: the whole batch
(CSV read + segments + frame build) and the numerics alone
(``worker.segment_arrays`` on arrays already in memory, which is what moves to
the GPU). Writes a JSON document with the host's GPU model, driver and CUDA
version, the CuPy version, whether cuDF is importable, both timings and the
comparison. Without CuPy or a GPU, mode 8 is reported as skipped with the
probe's reason and mode 0 still runs (the CPU path of this script).

No Dask needed: the batches run in this process (the driver's executor).

Usage: python benchmarks/bench_rapids.py [--points 20000000] [--files 20] [--repeat 3]
                                         [--out benchmarks/results/rapids-<host>.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLIGHT = REPO / "apps" / "flight"
sys.path[:0] = [str(REPO / "src"), str(FLIGHT)]


def _make(args) -> int:
    from flight import worker

    path, rows_per_file, seed = args
    worker.ensure_file(path, rows_per_file, 4, seed)
    return worker.input_rows(path)


def make_inputs(data_dir: Path, dataset: str, files: int, rows_per_file: int, seed: int) -> list[tuple]:
    """The input files (generated in parallel) and one batch item per file."""
    from flight import worker

    paths = [data_dir / dataset / worker.FILE_PATTERN.format(i) for i in range(files)]
    with ProcessPoolExecutor(max_workers=min(files, os.cpu_count() or 1)) as pool:
        rows = list(pool.map(_make, [(p, rows_per_file, seed) for p in paths]))
    return [(f"{dataset}/{p.name}", 0, n) for p, n in zip(paths, rows)]


def run_mode(spec_args: dict, data_dir: Path, items: list[tuple], rapids: bool, repeat: int) -> dict:
    """Each file one batch through run_batch; best of ``repeat`` for the whole set."""
    from switchyard.app import Partition
    from switchyard.runs.task import BatchSpec, run_batch

    spec = BatchSpec(app="flight", app_dir=str(FLIGHT), args=spec_args, data_dir=str(data_dir), rapids=rapids)
    parts = [Partition(name=Path(rel).stem, weight=1.0, items=((rel, a, b),)) for rel, a, b in items]
    warm = run_batch(spec, 0, parts[0])  # imports the app and, with rapids, CuPy: not timed
    if warm.error:
        return {"status": "failed", "error": warm.error, "traceback": warm.traceback}
    best, frames, devices = None, None, set()
    for _ in range(repeat):
        t0 = time.perf_counter()
        outs = [run_batch(spec, i, p) for i, p in enumerate(parts)]
        seconds = time.perf_counter() - t0
        failed = [o for o in outs if o.error]
        if failed:
            return {"status": "failed", "error": failed[0].error, "traceback": failed[0].traceback}
        best = seconds if best is None else min(best, seconds)
        frames = [o.result for o in outs]
        devices = {o.device for o in outs}
    return {"status": "completed", "batch_seconds": best, "devices": sorted(devices), "frames": frames}


def numerics(frames: list, xp, repeat: int) -> float:
    """Seconds of the numeric hot path alone (segment_arrays) over every file, best of ``repeat``."""
    from flight import worker

    cols = [(f["latitude"].to_numpy(), f["longitude"].to_numpy(), f["timestamp"].to_numpy(),
             f["flight_id"].to_numpy()) for f in frames]
    best = None
    for _ in range(repeat + 1):  # the first pass warms the GPU's kernels up; not counted alone
        t0 = time.perf_counter()
        for lat, lon, ts, ids in cols:
            worker.segment_arrays(lat, lon, ts, ids, xp)
        if xp.__name__ == "cupy":
            xp.cuda.Device().synchronize()
        seconds = time.perf_counter() - t0
        best = seconds if best is None else min(best, seconds)
    return best


def compare(cpu: list, gpu: list) -> dict:
    import numpy as np

    worst = {"segment_km": 0.0, "speed_kmh": 0.0}
    same_other = True
    for a, b in zip(cpu, gpu):
        for col in worst:
            x, y = a[col].to_numpy(), b[col].to_numpy()
            if not np.array_equal(np.isnan(x), np.isnan(y)):
                return {"equal": False, "why": f"{col}: NaN positions differ"}
            ok = ~np.isnan(x)
            if ok.any():
                rel = np.abs(x[ok] - y[ok]) / np.maximum(np.abs(x[ok]), 1e-12)
                worst[col] = max(worst[col], float(rel.max()))
        other = [c for c in a.columns if c not in worst]
        same_other = same_other and a[other].equals(b[other])
    return {"equal": same_other and all(v <= 1e-9 for v in worst.values()), "rtol": 1e-9,
            "max_relative_difference": worst, "other_columns_identical": same_other}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=20_000_000)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)

    from switchyard import device, gpu_probe

    probe = gpu_probe.probe()
    root = Path(tempfile.mkdtemp(prefix="switchyard-rapids-"))
    os.environ["SWITCHYARD_HOME"] = str(root / "home")  # run_batch reads a worker's data folder there
    data_dir = root / "home" / "data" / "flight"
    rows_per_file = max(2, a.points // a.files)
    t0 = time.perf_counter()
    items = make_inputs(data_dir, "bench", a.files, rows_per_file, a.seed)
    generated = time.perf_counter() - t0
    points = sum(b - s for _, s, b in items)
    spec_args = {"files": a.files, "rows_per_file": rows_per_file, "seed": a.seed, "chunk_rows": 100_000_000}

    import numpy as np
    import pandas as pd

    doc = {
        "benchmark": "rapids", "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(), "cpu": device.cpu_name(), "python": platform.python_version(),
        "numpy": np.__version__, "pandas": pd.__version__, "points": points, "files": a.files,
        "generate_seconds": generated,
        "gpu": {"model": probe["gpus"][0]["name"] if probe["gpus"] else None,
                "gpus": probe["gpus"], "driver": probe.get("driver"), "cuda": probe.get("cuda"),
                "reason": probe.get("reason")},
        "cupy": probe.get("cupy"),
        "cudf": {"available": bool(probe.get("cudf")),
                 "note": None if probe.get("cudf") else "cuDF is not importable here: dataframes stay pandas"},
        "modes": {},
    }
    cpu = run_mode(spec_args, data_dir, items, rapids=False, repeat=a.repeat)
    frames0 = cpu.pop("frames", None)
    if frames0 is not None:
        cpu["numerics_seconds"] = numerics(frames0, np, a.repeat)
    doc["modes"]["0"] = cpu

    problem = device.rapids_problem(probe, host=platform.node(), local=True, on_workers=False)
    if problem:
        doc["modes"]["8"] = {"status": "skipped", "reason": problem}
    else:
        gpu = run_mode(spec_args, data_dir, items, rapids=True, repeat=a.repeat)
        frames8 = gpu.pop("frames", None)
        if frames8 is not None:
            import cupy

            gpu["numerics_seconds"] = numerics(frames8, cupy, a.repeat)
            doc["comparison"] = compare(frames0, frames8)
            doc["speedup"] = {"batch": cpu["batch_seconds"] / gpu["batch_seconds"],
                              "numerics": cpu["numerics_seconds"] / gpu["numerics_seconds"]}
        doc["modes"]["8"] = gpu

    out = a.out or REPO / "benchmarks" / "results" / f"rapids-{platform.node()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, out)
    m0, m8 = doc["modes"]["0"], doc["modes"]["8"]
    print(f"rapids bench: {points} points in {a.files} files on {doc['host']} ({doc['gpu']['model'] or 'no GPU'})")
    print(f"  mode 0: {m0.get('batch_seconds', float('nan')):.3f} s batches, "
          f"{m0.get('numerics_seconds', float('nan')):.3f} s numerics on {', '.join(m0.get('devices', []))}")
    if m8["status"] == "completed":
        print(f"  mode 8: {m8['batch_seconds']:.3f} s batches, {m8['numerics_seconds']:.3f} s numerics on "
              f"{', '.join(m8['devices'])}; equal to mode 0: {doc['comparison']['equal']}")
    else:
        print(f"  mode 8: {m8['status']}: {m8.get('reason') or m8.get('error')}")
    print(f"  written to {out}")
    return doc


if __name__ == "__main__":
    main()
