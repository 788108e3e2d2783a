"""Run overhead: a dask-mode run of 1000 tiny partitions against raw Client.map on the same warm cluster.

Both sides run the same work function (montecarlo's chunk with one sample) on
one LocalCluster of 2 worker processes. The run's execution phase (submit,
gather, checkpoint each batch, record it in the store) is timed by the driver;
the end-to-end time of AGI.run (validation, planning, driver start) is printed
too. Alternating repetitions; the best of each side is compared.

Usage: .venv/bin/python benchmarks/bench_overhead.py [--partitions 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quiet, scratch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ns = ap.parse_args()
    from distributed import Client

    from switchyard.runs.submit import run_sync
    from switchyard.cluster.env import env_python, worker_environ
    from switchyard.cluster.local import LocalCluster

    app_env, root = scratch("montecarlo")
    cluster = LocalCluster(python=env_python(app_env), workers={"127.0.0.1": 2}, scheduler_address=None,
                           env=worker_environ(app_env, False), on_line=quiet)
    address = cluster.start()
    try:
        client = Client(address)
        items = [(t, 0, 1, 7) for t in range(ns.partitions)]

        def raw() -> float:
            t0 = time.perf_counter()
            from montecarlo import worker  # noqa: F401  (imported on the workers by reference)

            futs = client.map(worker.run_chunk, items, pure=False)
            client.gather(futs)
            return time.perf_counter() - t0

        sys.path.insert(0, str(app_env.app_dir))
        raw()  # warm the workers (imports)
        raws, execs, totals = [], [], []
        for _ in range(ns.repeat):
            raws.append(raw())
            t0 = time.perf_counter()
            res = run_sync(app_env, mode=4, scheduler=address, workers={"127.0.0.1": 2}, on_line=quiet,
                           tasks=ns.partitions, samples_per_task=1, chunks=1)
            totals.append(time.perf_counter() - t0)
            assert res.status == "completed", res
            timing = json.loads((Path(res.run_dir) / "timing.json").read_text())
            execs.append(timing["execution_seconds"])
        client.close()
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)
    r, e, t = min(raws), min(execs), min(totals)
    print(f"partitions: {ns.partitions}, workers: 2, repeats: {ns.repeat}")
    print(f"raw Client.map + gather:         {r:.3f} s")
    print(f"run execution (driver, store):   {e:.3f} s")
    print(f"AGI.run end to end:              {t:.3f} s")
    print(f"overhead ratio (execution / raw): {e / r:.2f}  (target <= 1.25)")
    print(f"end-to-end ratio (AGI.run / raw): {t / r:.2f}")


if __name__ == "__main__":
    main()
