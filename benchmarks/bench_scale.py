"""A run of 100,000 empty partitions on a warm 2-worker cluster: time, memory, disk, page.

Usage: nice .venv/bin/python benchmarks/bench_scale.py [--partitions 100000] [--no-page] [--no-raw] [--keep]
       nice .venv/bin/python benchmarks/bench_scale.py --page-only WORKSPACE  (one a --keep run left)

One temp workspace with the benchmark app ``benchmarks/apps/engine`` (n partitions of one
item, one batch each, no work), a warm cluster of 2 local one-thread workers
(``switchyard.cluster.warm.up_sync``), the plan saved by ``switchyard distrib`` (CHECK
DISTRIBUTE), the run agent warmed by two small runs. Then, measured in the same process:

  raw      ``Client.map`` + ``gather`` of as many no-op tasks on the same cluster.
  run      ``switchyard run engine --json`` as a subprocess, from its start to its exit (it
           returns when the store has the outcome); target run / raw <= 1.25.
  driver   the peak RSS of the run's driver process (forked by the run agent): its own
           VmHWM at its end (timing.json) and samples every 0.1 s with psutil; target < 250 MB.
  caller   the peak RSS of the ``switchyard run`` process: its VmHWM, read every 0.05 s (not
           ``wait4``'s ru_maxrss: see CallerWatch), and its largest child's; target < 300 MB.
  disk     the bytes the run's checkpoints take on disk (allocated blocks); target < 20 MB.
  store    how much the run store grew (database + WAL), for information.
  page     the Orchestrate page with that plan saved, in Debian's chromium: from ``goto`` to the
           plan drawn (its graph, load chart and editor) and the script idle; the first load
           (the server imports the page and parses the plan) is printed, the figure is the
           median of the next ``--page-loads`` (4), measured once the machine is quiet again
           after the run (at most 30 s of waiting); target < 2 s. Then the same with an 8-partition
           plan saved (what the plan's size costs the page). ``--no-page`` skips both.

The run must end ``completed`` with every batch completed, else the script stops with exit
status 1. A target missed is printed as MISSED with the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_engine import BenchFailure, _terminate, make_workspace, stop_leftovers  # noqa: E402

WORKERS = {"127.0.0.1": 2}
SWITCHYARD = Path(sys.executable).parent / "switchyard"
TARGETS = {"ratio": 1.25, "driver_mb": 250.0, "caller_mb": 300.0, "disk_mb": 20.0, "page_s": 2.0}


def step(text: str) -> None:
    print(f"bench_scale: {text}", file=sys.stderr, flush=True)


def cli(*args: str, timeout: float = 3600) -> dict:
    step(f"switchyard {' '.join(args)}")
    proc = subprocess.run([str(SWITCHYARD), *args, "--json"], capture_output=True, text=True,
                          env=dict(os.environ), timeout=timeout)
    if proc.returncode != 0:
        raise BenchFailure(f"switchyard {' '.join(args)} exited {proc.returncode}: {proc.stderr[-1500:]}")
    return json.loads(proc.stdout)


class DriverWatch(threading.Thread):
    """Samples the RSS of whichever process the store names as the new run's driver."""

    def __init__(self, store, known: set[str]):
        super().__init__(daemon=True)
        self.store, self.known = store, known
        self.peak = 0
        self.pid: int | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.stop.wait(0.1):
            if self.pid is None:
                fresh = [o for o in self.store.list(limit=5) if o.id not in self.known and o.driver_pid]
                if not fresh:
                    continue
                self.pid = fresh[0].driver_pid
            try:
                self.peak = max(self.peak, psutil.Process(self.pid).memory_info().rss)
            except psutil.NoSuchProcess:
                return


def high_water(pid: int) -> int:
    """The process's peak RSS so far (``VmHWM`` of /proc/<pid>/status, bytes); 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class CallerWatch(threading.Thread):
    """The caller's own peak RSS: its ``VmHWM`` (a high-water mark, so no spike between two
    reads is missed), read every 0.05 s until it exits; and its largest child's RSS.

    Not ``wait4``'s ru_maxrss: Linux folds into it the memory of the process that forked the
    child, before ``exec`` (here: this benchmark, ~540 MB after the raw 100k ``Client.map``),
    which is how a 160 MB caller once read as 521 MB."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.own, self.child, self.child_cmd = pid, 0, 0, ""
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
            while not self.stop.wait(0.05):
                self.own = max(self.own, high_water(self.pid), proc.memory_info().rss)
                for c in proc.children(recursive=True):
                    try:
                        rss = c.memory_info().rss
                        if rss > self.child:
                            self.child, self.child_cmd = rss, " ".join(c.cmdline()[:4])
                    except psutil.Error:
                        pass
        except psutil.Error:
            return


def timed_run(store) -> tuple[float, int, int, dict, CallerWatch]:
    """(seconds, caller peak RSS bytes, driver peak RSS bytes, run --json, the caller's samples)
    of one `switchyard run`."""
    known = {o.id for o in store.list(limit=50)}
    watch = DriverWatch(store, known)
    watch.start()
    out_path, err_path = store.path.parent / "bench-run.out", store.path.parent / "bench-run.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:  # files: its log lines never block it
        t0 = time.perf_counter()
        proc = subprocess.Popen([str(SWITCHYARD), "run", "engine", "--json"], stdout=out, stderr=err,
                                env=dict(os.environ))
        caller = CallerWatch(proc.pid)
        caller.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    caller.stop.set()
    caller.join(5)
    watch.stop.set()
    watch.join(5)
    text, log = out_path.read_text(), err_path.read_bytes()[-1500:]
    out_path.unlink()
    err_path.unlink()
    if proc.returncode != 0:
        raise BenchFailure(f"switchyard run exited {proc.returncode}: {log!r}")
    return seconds, usage.ru_maxrss * 1024, watch.peak, json.loads(text), caller


def raw_map(address: str, n: int) -> float:
    from engine import noop

    from switchyard.cluster.connect import connect

    with connect(address) as client:
        t0 = time.perf_counter()
        client.gather(client.map(noop, range(n), pure=False))
        return time.perf_counter() - t0


def wait_quiet(limit: float = 30.0, busy: float = 20.0) -> float:
    """Wait until the machine's CPU use over one second is under ``busy`` % (the run's
    processes have exited and flushed), at most ``limit`` seconds; the last reading."""
    import psutil

    deadline = time.monotonic() + limit
    used = psutil.cpu_percent(interval=1.0)
    while used >= busy and time.monotonic() < deadline:
        used = psutil.cpu_percent(interval=1.0)
    return used


def page_seconds(n: int, root: Path, loads: int = 4) -> float:
    """The Orchestrate page's loads until the plan is drawn and the script idle: the median
    of ``loads`` loads after the first."""
    from bench_ui import PLAN_DRAWN_JS, free_port, start_streamlit
    from playwright.sync_api import sync_playwright

    chromium_args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
    port = free_port()
    server = start_streamlit(port, root / "streamlit.log")
    idle = ("() => !document.querySelector('[data-testid=\"stStatusWidget\"]') || !document.querySelector("
            "'[data-testid=\"stStatusWidget\"]').innerText.includes('Running')")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=chromium_args)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(300_000)
            took = []
            quiet = wait_quiet()
            for _ in range(1 + loads):
                t0 = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/?app=engine")
                page.wait_for_function(PLAN_DRAWN_JS, arg=n, polling="raf")
                page.wait_for_function(idle, polling=100)
                took.append(time.perf_counter() - t0)
            browser.close()
            print(f"  (page loads, the first cold: {', '.join(f'{t:.2f} s' for t in took)}; CPU {quiet:.0f} % "
                  f"busy before)")
            return statistics.median(took[1:])
    finally:
        os.killpg(server.pid, 15)
        server.wait(10)


SMALL_PLAN = 8


def pages(n: int, root: Path, loads: int) -> tuple[float, float]:
    """The page with the ``n``-partition plan saved, then with an 8-partition plan saved (the
    same workspace, run store and page otherwise: what the plan's size costs the page); the
    settings and the plan are put back to ``n`` afterwards."""
    from switchyard.app import AppEnv
    from switchyard.settings import update_args

    big = page_seconds(n, root, loads)
    settings = AppEnv("engine", apps_dir=root / "apps", workspace=root / "home").settings_path
    update_args(settings, {"n": SMALL_PLAN})
    try:
        cli("distrib", "engine")
        small = page_seconds(SMALL_PLAN, root, loads)
    finally:
        update_args(settings, {"n": n})
        cli("distrib", "engine")
    return big, small


def page_only(root: Path, n: int, loads: int) -> int:
    """The page figure alone, on the workspace a ``--keep`` run left (its plan and its run)."""
    if not (root / "home" / "switchyard.db").is_file():
        print(f"bench_scale: {root} is not a workspace an earlier --keep run left (no home/switchyard.db): "
              "run bench_scale.py --keep first", file=sys.stderr)
        return 2
    os.environ["SWITCHYARD_HOME"], os.environ["SWITCHYARD_APPS"] = str(root / "home"), str(root / "apps")
    print_page(*pages(n, root, loads))
    return 0


def print_page(page: float, small: float) -> None:
    print(f"  Orchestrate page with the plan    {page:8.2f} s   (median)  target < {TARGETS['page_s']}: "
          f"{verdict(page, TARGETS['page_s'])}")
    print(f"    the same page, {SMALL_PLAN}-partition plan {small:8.2f} s   (median; what the plan's size costs: "
          f"{page - small:+.2f} s)")


def verdict(value: float, target: float) -> str:
    return "ok" if value <= target else "MISSED"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partitions", type=int, default=100_000)
    ap.add_argument("--no-page", dest="page", action="store_false")
    ap.add_argument("--keep", action="store_true", help="keep the workspace (its path is printed) to look at")
    ap.add_argument("--page-only", metavar="WORKSPACE", type=Path,
                    help="measure only the page, on a workspace an earlier --keep run left")
    ap.add_argument("--page-loads", type=int, default=4, help="warm page loads whose median is the figure")
    ap.add_argument("--no-raw", dest="raw", action="store_false",
                    help="skip the raw Client.map floor (no ratio): for the memory and disk figures alone")
    ns = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # a timeout still stops the cluster and the agent
    if ns.page_only is not None:
        return page_only(ns.page_only.resolve(), ns.partitions, max(1, ns.page_loads))
    root = Path(tempfile.mkdtemp(prefix="switchyard-bench-scale-")).resolve()
    home = root / "home"
    n = ns.partitions
    try:
        app_env = make_workspace(root)
        from switchyard.cluster import warm
        from switchyard.runs import checkpoints
        from switchyard.runs.store import RunStore
        from switchyard.settings import update_args, update_cluster

        sys.path.insert(0, str(app_env.app_dir))
        update_cluster(app_env.settings_path, dask=True, pool=False, cython=False, workers=dict(WORKERS))
        step("starting the warm cluster")
        status = warm.up_sync(app_env, workers=dict(WORKERS), scheduler="127.0.0.1:0", on_line=lambda line: None)
        store = RunStore(home / "switchyard.db")
        try:
            update_args(app_env.settings_path, {"n": 8})
            for _ in range(2):  # the run agent starts and is warm
                cli("run", "engine")
                time.sleep(1.0)
            update_args(app_env.settings_path, {"n": n})
            t0 = time.perf_counter()
            cli("distrib", "engine")  # CHECK DISTRIBUTE: the plan RUN takes
            plan_s = time.perf_counter() - t0
            raw = None
            if ns.raw:
                step(f"raw Client.map of {n} no-op tasks")
                raw = raw_map(status["address"], n)
            step("the run")
            db_before = sum(p.stat().st_size for p in home.glob("switchyard.db*"))
            seconds, caller, driver, res, samples = timed_run(store)
            if res.get("status") != "completed":
                raise BenchFailure(f"the run ended {res.get('status')}: {res.get('error')}")
            counts = store.batch_counts(res["orchestration_id"])
            if counts["completed"] != n:
                raise BenchFailure(f"{counts['completed']} of {n} batches completed: {counts}")
            run_dir = Path(store.get(res["orchestration_id"]).run_dir)
            disk = checkpoints.disk_bytes(run_dir)
            files = len(list((run_dir / "batches").iterdir()))
            db_after = sum(p.stat().st_size for p in home.glob("switchyard.db*"))
            timing = json.loads((run_dir / "timing.json").read_text())
        finally:
            warm.down_sync(app_env)
        page = pages(n, root, max(1, ns.page_loads)) if ns.page else None
    except BenchFailure as e:
        print(f"bench_scale: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        stop_leftovers(home)
        if ns.keep:
            print(f"bench_scale: the workspace is kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    mb = 1024 * 1024
    print(f"bench_scale: {n:,} empty partitions, warm cluster of {sum(WORKERS.values())} workers, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"  plan (switchyard distrib)         {plan_s:8.2f} s")
    if raw is not None:
        print(f"  raw Client.map + gather           {raw:8.2f} s   ({1000 * raw / n:.2f} ms per task)")
    print(f"  switchyard run (caller wall)      {seconds:8.2f} s   ({1000 * seconds / n:.2f} ms per batch); "
          f"driver setup {timing['setup_seconds']:.2f} s, execution {timing['execution_seconds']:.2f} s")
    if raw is not None:
        ratio = seconds / raw
        print(f"  run / raw                         {ratio:8.2f}     target <= {TARGETS['ratio']}: "
              f"{verdict(ratio, TARGETS['ratio'])}")
    own = timing.get("peak_rss_bytes") or 0  # the driver's VmHWM at its end: spikes included
    print(f"  driver peak RSS                   {max(driver, own) / mb:8.1f} MB  target < "
          f"{TARGETS['driver_mb']:.0f}: {verdict(max(driver, own) / mb, TARGETS['driver_mb'])}  "
          f"(its own VmHWM {own / mb:.1f} MB, sampled {driver / mb:.1f} MB)")
    print(f"  caller peak RSS                   {samples.own / mb:8.1f} MB  target < "
          f"{TARGETS['caller_mb']:.0f}: {verdict(samples.own / mb, TARGETS['caller_mb'])}  (VmHWM; "
          f"wait4 said {caller / mb:.1f} MB, the benchmark's own memory at the fork included)")
    print(f"    (its largest child {samples.child / mb:.1f} MB"
          f"{': ' + samples.child_cmd if samples.child_cmd else ''})")
    print(f"  checkpoints on disk               {disk / mb:8.2f} MB in {files} files  target < "
          f"{TARGETS['disk_mb']:.0f}: {verdict(disk / mb, TARGETS['disk_mb'])}")
    print(f"  store growth                      {(db_after - db_before) / mb:8.1f} MB")
    if page is not None:
        print_page(*page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
