"""Speedup of the CPU-bound app (montecarlo) from 1 to 2 Dask workers, and per mode.

Times are the driver's execution phase (the cluster's cold start excluded),
both runs in one process on the same machine; the ratio is what counts.

Usage: .venv/bin/python benchmarks/bench_speedup.py [--tasks 8] [--samples 1500000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quiet, scratch  # noqa: E402


def execution(app_env, mode: int, workers: dict, **args) -> float:
    from switchyard.runs.submit import run_sync

    res = run_sync(app_env, mode=mode, workers=workers, on_line=quiet, **args)
    assert res.status == "completed", res
    return json.loads((Path(res.run_dir) / "timing.json").read_text())["execution_seconds"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--samples", type=int, default=1_500_000)
    ap.add_argument("--modes", action="store_true", help="also time modes 0, 1, 2 in the driver")
    ns = ap.parse_args()
    app_env, root = scratch("montecarlo", cython=True)
    args = dict(tasks=ns.tasks, samples_per_task=ns.samples, chunks=2)
    try:
        one = execution(app_env, 4, {"127.0.0.1": 1}, **args)
        two = execution(app_env, 4, {"127.0.0.1": 2}, **args)
        print(f"montecarlo tasks={ns.tasks} samples_per_task={ns.samples}")
        print(f"mode 4, 1 worker:  {one:.2f} s")
        print(f"mode 4, 2 workers: {two:.2f} s")
        print(f"speedup 1 -> 2 workers: {one / two:.2f}  (target >= 1.7)")
        if ns.modes:
            base = execution(app_env, 0, {"127.0.0.1": 1}, **args)
            pool = execution(app_env, 1, {"127.0.0.1": 1}, **args)
            cy = execution(app_env, 2, {"127.0.0.1": 1}, **args)
            print(f"mode 0: {base:.2f} s; mode 1 (pool of 2): {pool:.2f} s ({base / pool:.2f}x); "
                  f"mode 2 (cython): {cy:.2f} s ({base / cy:.2f}x)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
