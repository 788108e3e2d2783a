"""What one scheduler tick costs, against the one-second tick it must fit in.

Creates N idle schedules (half interval, half cron in Europe/Paris, none due) plus F file
triggers watching folders of M files each, in a fresh store, and times:

- ``idle tick``: a pass where nothing is due (the common case, every second);
- ``due tick``: a pass where every interval schedule fires (launches recorded by a launcher
  that creates the orchestration row, as the real one does, without starting a driver);
- ``cron next``: ``When.next_after`` for a DST-zone cron expression (per call).

Prints milliseconds and the ratio of each tick to the 1 s tick interval (must stay well
below 1), measured in this run.

Run: ``.venv/bin/python benchmarks/bench_scheduler.py [--schedules 500] [--triggers 20] [--files 1000]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from switchyard.runs.store import RunStore
from switchyard.schedule.book import Book
from switchyard.schedule.model import Watch, new_schedule
from switchyard.schedule.scheduler import Scheduler
from switchyard.schedule.timing import When
from switchyard.schedule.watch import initial_state, scan

T0 = 1_795_000_000.0  # 2026-11-18, a fixed instant so every run measures the same work


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schedules", type=int, default=500)
    ap.add_argument("--triggers", type=int, default=20)
    ap.add_argument("--files", type=int, default=1000)
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = RunStore(root / "switchyard.db")
        book = Book(store)
        for i in range(ns.schedules):
            if i % 2:
                s = new_schedule("bench", now=T0, cron=f"{i % 60} {i % 24} * * *", tz="Europe/Paris")
            else:
                s = new_schedule("bench", now=T0, every=3600)
            book.add(s)
        for j in range(ns.triggers):
            folder = root / f"in{j}"
            folder.mkdir()
            for k in range(ns.files):
                (folder / f"f{k}.csv").write_bytes(b"x")
            book.add(new_schedule("bench", now=T0, watch=Watch(folder=str(folder))),
                     state=initial_state(scan(folder)))

        def launch(schedule, args, origin):
            return store.create_orchestration(kind="app", app="bench", mode=0, args=args, workers={},
                                              scheduler=None, plan_fingerprint=None, run_dir=None,
                                              batches=[{"name": "p"}], options={"origin": origin})

        sched = Scheduler(store, launch=launch)
        idle = []
        for k in range(5):
            t = time.perf_counter()
            sched.tick(T0 + 1 + k)
            idle.append(time.perf_counter() - t)
        t = time.perf_counter()
        fired = sched.tick(T0 + 3600 + 1)  # every interval schedule is due at the hour
        due = time.perf_counter() - t
        when = When.of(cron="30 2 * * *", tz="Europe/Paris")
        n, t = 2000, time.perf_counter()
        x = T0
        for _ in range(n):
            x = when.next_after(x)
        per_next = (time.perf_counter() - t) / n
        store.close()

    best = min(idle)
    print(f"{ns.schedules} schedules + {ns.triggers} file triggers x {ns.files} files")
    print(f"idle tick  {best * 1000:8.1f} ms   ratio to the 1 s tick {best:.3f}")
    print(f"due tick   {due * 1000:8.1f} ms   ({len(fired)} launches recorded) ratio {due:.3f}")
    print(f"cron next  {per_next * 1e6:8.1f} us per call (Europe/Paris, daily, 2000 days)")


if __name__ == "__main__":
    main()
