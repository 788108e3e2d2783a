"""Run engine latency and overhead on a warm 2-worker local cluster, per driver design.

Usage: .venv/bin/python benchmarks/bench_engine.py [--designs fork,thread,off] [--repeat 5]
       [--repeat-big 3] [--big 10000] [--sleep-n 512] [--quick]

Everything runs in one process against one warm cluster (``switchyard.cluster.warm.up_sync``,
2 local workers of one thread each) with the benchmark app ``benchmarks/apps/engine`` (n
partitions of one item, one batch each; each sleeps ``work_ms`` or nothing). Each figure is
the median of ``--repeat`` runs, each timed from the call to its return; every run must end
``completed`` with every batch ``completed`` in the run store, else the script stops with
exit status 1 and says which run failed.

``SWITCHYARD_AGENT`` selects how a run's driver executes: ``fork`` (a pre-imported fork server
per app environment, the default), ``thread`` (a resident process running the driver in a
thread), ``off`` (a fresh driver process per run). An engine that does not know the variable
ignores it: all designs then measure the same engine.

Figures:
  first run   the first ``AGI.run`` of 8 empty partitions after switching design (its resident
              process, if any, is cold); unmeasured otherwise (the warm-up).
  (a)  ``asyncio.run(AGI.run(app_env, n=8))``, 8 empty partitions, caller already imported; per
       design. Target <= 0.5 s and (a)/(c) <= 3.
  (b)  the same with ``mode=0`` (no Dask: the driver runs the batches itself). Target <= 0.5 s.
  (c)  the raw floor in this process: ``distributed.Client(address)``, ``client.map`` of 8 no-op
       tasks (pure=False), ``client.gather``, ``client.close()`` on the same scheduler.
  (d)  the execution phase of a run of ``--big`` (10,000) empty partitions: from the driver's
       first submit to the last completion committed in the store (``timing.json``
       execution_seconds, written by the driver), against raw ``client.map`` + ``gather`` of as
       many no-op tasks on the same cluster. Target ratio <= 1.25. The store span
       (min started_at .. max ended_at, stamped on the workers) is printed for information.
  (e)  ``--sleep-n`` (512) partitions sleeping 20 ms each; ideal n * 0.02 / 2 workers (5.12 s).
       Target <= 6.0 s at 512 (scaled by n / 512 for another n). Each run alternates with raw
       ``client.map`` + ``gather`` of as many 20 ms sleeps on the same cluster, unrestricted and
       placed per worker as the driver places a plan's batches (informative: what Dask itself
       takes here, and (e)/raw, (e)/raw placed).
(b), (d) and (e) are measured for the default design only (fork, else the first one given).
The cluster is mutual TLS, as every cluster Switchyard starts (``switchyard.cluster.tls``); the
raw floor connects with the same certificates.
  TLS cost  (a) and (c) again, default design, on two clusters of the same shape that the
       benchmark starts (``distributed.LocalCluster``, 2 one-thread worker processes), one mutual
       TLS with the workspace's certificates (``[cluster.tls]`` files), one plaintext
       (``allow_plaintext = true``), used as external schedulers, runs alternating between them;
       and the differences. ``--no-tls-cost`` skips it; ``--tls-cost-only`` measures (c), (a) and
       this only.
``--quick``: repeat 2, big 2000, 128 x 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

APP_SOURCE = Path(__file__).resolve().parent / "apps" / "engine"
WORKERS = {"127.0.0.1": 2}
DESIGNS = ("fork", "thread", "off")
DEFAULT_DESIGN = "fork"
SLEEP_MS = 20
A_TARGET, A_RATIO_TARGET, B_TARGET, D_RATIO_TARGET = 0.5, 3.0, 0.5, 1.25
E_TARGET_512 = 6.0


class BenchFailure(Exception):
    """A run did not complete: the benchmark stops and says which."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Run engine latency and overhead per driver design.")
    ap.add_argument("--designs", default=",".join(DESIGNS),
                    help="comma-separated SWITCHYARD_AGENT values to measure (a) for (default: all)")
    ap.add_argument("--repeat", type=int, default=None, help="repeats per figure (default 5; --quick 2)")
    ap.add_argument("--repeat-big", type=int, default=None, help="repeats of (d) (default 3; --quick 2)")
    ap.add_argument("--big", type=int, default=None, help="partitions of (d) (default 10000; --quick 2000)")
    ap.add_argument("--sleep-n", type=int, default=None, help="partitions of (e) (default 512; --quick 128)")
    ap.add_argument("--quick", action="store_true", help="a fast check: repeat 2, big 2000, 128 x 20 ms")
    ap.add_argument("--no-tls-cost", dest="tls_cost", action="store_false",
                    help="skip (a) and (c) on a TLS and a plaintext external cluster (the cost of TLS)")
    ap.add_argument("--tls-cost-only", action="store_true", help="(c), (a) and the TLS cost only: no (b), (d), (e)")
    ns = ap.parse_args(argv)
    quick = ns.quick
    ns.repeat = ns.repeat if ns.repeat is not None else (2 if quick else 5)
    ns.repeat_big = ns.repeat_big if ns.repeat_big is not None else (2 if quick else 3)
    ns.big = ns.big if ns.big is not None else (2000 if quick else 10_000)
    ns.sleep_n = ns.sleep_n if ns.sleep_n is not None else (128 if quick else 512)
    for name in ("repeat", "repeat_big", "big", "sleep_n"):
        if getattr(ns, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    ns.designs = [d.strip() for d in ns.designs.split(",") if d.strip()]
    unknown = [d for d in ns.designs if d not in DESIGNS]
    if unknown or not ns.designs:
        ap.error(f"--designs: unknown {', '.join(unknown) or '(none given)'}: use some of {', '.join(DESIGNS)}")
    return ns


def make_workspace(root: Path):
    """The engine app copied into the temp workspace ``root``, its env installed; its AppEnv."""
    apps = root / "apps"
    shutil.copytree(APP_SOURCE, apps / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    os.environ["SWITCHYARD_HOME"] = str(root / "home")
    os.environ["SWITCHYARD_APPS"] = str(apps)
    from switchyard.app import AppEnv
    from switchyard.cluster.env import install_local

    app_env = AppEnv("engine", apps_dir=apps, workspace=root / "home")
    res = install_local(app_env, on_line=lambda line: None)
    if not res.ok:
        raise BenchFailure(f"install of the engine app failed: {res.error}")
    return app_env


class Runner:
    """Times AGI.run calls and checks each against the run store."""

    def __init__(self, app_env):
        from switchyard.runs.store import RunStore

        self.app_env = app_env
        self.store = RunStore(app_env.home / "switchyard.db")
        self.lines: collections.deque[str] = collections.deque(maxlen=8)

    def run(self, label: str, n: int, **kwargs) -> tuple[float, object]:
        from switchyard.agi import AGI

        self.lines.clear()
        t0 = time.perf_counter()
        res = asyncio.run(AGI.run(self.app_env, on_line=self.lines.append, n=n, **kwargs))
        seconds = time.perf_counter() - t0
        self.check(label, res, n)
        return seconds, res

    def check(self, label: str, res, n: int) -> None:
        from switchyard.runs.state import BatchStatus

        where = f"{label}: orchestration {res.orchestration_id}"
        if res.status != "completed":
            tail = " | ".join(self.lines)
            raise BenchFailure(f"{where} ended '{res.status}', not 'completed' (error: {res.error}); "
                               f"last lines: {tail}; see {res.run_dir}/run.log")
        batches = self.store.batches(res.orchestration_id)
        bad = [b for b in batches if b.status != BatchStatus.COMPLETED]
        if len(batches) != n or bad:
            first = f"; first: {bad[0].name} is '{bad[0].status.value}' ({bad[0].error})" if bad else ""
            raise BenchFailure(f"{where} is 'completed' but the store has {len(batches)} batches "
                               f"(expected {n}), {len(bad)} not 'completed'{first}")

    def execution_span(self, oid: str) -> float:
        batches = self.store.batches(oid)
        starts = [b.started_at for b in batches if b.started_at is not None]
        ends = [b.ended_at for b in batches if b.ended_at is not None]
        if len(starts) != len(batches) or len(ends) != len(batches):
            raise BenchFailure(f"orchestration {oid}: batches without started_at / ended_at in the store")
        return max(ends) - min(starts)


def raw_floor(address: str, n: int) -> float:
    """(c): a new Client (with the workspace's certificates for a tls:// address), map n no-op
    tasks, gather, close; seconds."""
    from engine import noop

    from switchyard.cluster.connect import connect

    t0 = time.perf_counter()
    client = connect(address)
    client.gather(client.map(noop, range(n), pure=False))
    client.close()
    return time.perf_counter() - t0


def raw_map(client, n: int) -> float:
    """Raw map + gather of n no-op tasks on an open client; seconds."""
    from engine import noop

    t0 = time.perf_counter()
    client.gather(client.map(noop, range(n), pure=False))
    return time.perf_counter() - t0


def raw_placed(client, workers: list[str], n: int) -> float:
    """Raw ``client.map`` + ``gather`` of n sleeps of (e), each worker given an equal share
    with ``workers=[it]``, ``allow_other_workers=True``, as the driver submits a plan's batches
    (unrestricted tasks wait in the scheduler's queue, one round trip each: slower); seconds."""
    from engine import nap

    t0 = time.perf_counter()
    futures = []
    for i, worker in enumerate(workers):
        share = n // len(workers) + (i < n % len(workers))
        futures += client.map(nap, [SLEEP_MS] * share, pure=False, workers=[worker], allow_other_workers=True)
    client.gather(futures)
    return time.perf_counter() - t0


def timing_execution(run_dir: str) -> float | None:
    try:
        return float(json.loads((Path(run_dir) / "timing.json").read_text())["execution_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ----------------------------------------------------------------------------- output

class Report:
    def __init__(self):
        self.passed = 0
        self.missed = 0

    def figure(self, label: str, values: list[float], unit: str = "s") -> float:
        med = statistics.median(values)
        spread = ", ".join(f"{v:.3f}" for v in values)
        print(f"  {label:<58} median {med:8.3f} {unit}  (all: {spread})")
        return med

    def value(self, label: str, value: float, unit: str = "s") -> None:
        print(f"  {label:<58}        {value:8.3f} {unit}")

    def target(self, label: str, value: float, limit: float, unit: str = "s") -> None:
        ok = value <= limit
        self.passed += ok
        self.missed += not ok
        shown = f"{value:8.3f} {unit}" if unit else f"{value:8.2f}  "
        print(f"  {label:<58}        {shown}  target <= {limit:g}{' ' + unit if unit else ''}"
              f"  {'PASS' if ok else 'MISS'}")


def measure(app_env, address: str, ns: argparse.Namespace) -> None:
    from switchyard.cluster.connect import connect

    runner, out = Runner(app_env), Report()
    default = DEFAULT_DESIGN if DEFAULT_DESIGN in ns.designs else ns.designs[0]
    print(f"engine benchmark: warm cluster at {address}, {sum(WORKERS.values())} local workers "
          f"(1 thread each); medians of {ns.repeat} repeats ({ns.repeat_big} for (d))")

    raw_floor(address, 8)  # first connection and the workers' first tasks
    c = out.figure("(c) raw floor: Client + map 8 no-op + gather + close", [raw_floor(address, 8)
                                                                            for _ in range(ns.repeat)])
    for design in ns.designs:
        os.environ["SWITCHYARD_AGENT"] = design
        print(f"design {design} (SWITCHYARD_AGENT={design}):")
        first, _ = runner.run(f"{design} first run", 8)
        out.value("first run (resident process cold)", first)
        if design != "off":  # the first run starts the agent in the background: wait for it
            from switchyard.runs import agent

            agent.warm_up(app_env, wait=60)
            runner.run(f"{design} warm-up", 8)
        a = out.figure("(a) AGI.run, 8 empty partitions",
                       [runner.run(f"{design} (a)", 8)[0] for _ in range(ns.repeat)])
        out.target("(a)", a, A_TARGET)
        out.target("(a)/(c)", a / c, A_RATIO_TARGET, unit="")
        if design == (DEFAULT_DESIGN if DEFAULT_DESIGN in ns.designs else ns.designs[0]):
            a_default = a

    os.environ["SWITCHYARD_AGENT"] = default
    if ns.tls_cost_only:
        tls_cost(app_env, runner, out, ns, a_default, c)
        print(f"targets: {out.passed} PASS, {out.missed} MISS")
        return
    print(f"default design {default}:")
    runner.run("(b) warm-up", 8, mode=0)
    b = out.figure("(b) AGI.run mode=0, 8 empty partitions",
                   [runner.run("(b)", 8, mode=0)[0] for _ in range(ns.repeat)])
    out.target("(b)", b, B_TARGET)

    spans, timed, totals, raws = [], [], [], []
    with connect(address) as client:
        raw_map(client, ns.big)  # warm-up
        for _ in range(ns.repeat_big):
            raws.append(raw_map(client, ns.big))
            seconds, res = runner.run("(d)", ns.big)
            totals.append(seconds)
            spans.append(runner.execution_span(res.orchestration_id))
            t = timing_execution(res.run_dir)
            if t is not None:
                timed.append(t)
    if not timed:
        raise BenchFailure("(d): the runs wrote no timing.json execution_seconds")
    d = out.figure(f"(d) execution of {ns.big} empty partitions (first submit .. last commit)", timed)
    out.figure("    store span min(started_at) .. max(ended_at) (informative)", spans)
    out.figure("    the whole AGI.run call (informative)", totals)
    d_raw = out.figure(f"    raw client.map + gather of {ns.big} no-op tasks", raws)
    out.target("(d) ratio (execution / raw)", d / d_raw, D_RATIO_TARGET, unit="")

    ideal = ns.sleep_n * SLEEP_MS / 1000 / sum(WORKERS.values())
    e_runs, e_raws, e_placed = [], [], []
    with connect(address) as client:
        from engine import nap

        workers = sorted(client.scheduler_info()["workers"])
        for _ in range(ns.repeat):  # alternating, so the machine's drift falls on all alike
            e_runs.append(runner.run("(e)", ns.sleep_n, work_ms=SLEEP_MS)[0])
            t0 = time.perf_counter()
            client.gather(client.map(nap, [SLEEP_MS] * ns.sleep_n, pure=False))
            e_raws.append(time.perf_counter() - t0)
            e_placed.append(raw_placed(client, workers, ns.sleep_n))
    e = out.figure(f"(e) AGI.run, {ns.sleep_n} partitions x {SLEEP_MS} ms", e_runs)
    e_raw = out.figure(f"    raw client.map + gather of {ns.sleep_n} x {SLEEP_MS} ms sleeps (informative)", e_raws)
    e_raw_placed = out.figure("    the same placed per worker as the driver does (informative)", e_placed)
    scaled = "" if ns.sleep_n == 512 else f" (6.0 s scaled by {ns.sleep_n}/512)"
    out.target(f"(e){scaled}", e, round(E_TARGET_512 * ns.sleep_n / 512, 3))
    out.value(f"    ideal {ns.sleep_n} x {SLEEP_MS / 1000:g} s / {sum(WORKERS.values())} workers", ideal)
    out.value("(e)/ideal", e / ideal, unit="")
    out.value("(e)/raw", e / e_raw, unit="")
    out.value("(e)/raw placed", e / e_raw_placed, unit="")
    if ns.tls_cost:
        tls_cost(app_env, runner, out, ns, a_default, c)
    print(f"targets: {out.passed} PASS, {out.missed} MISS")


def tls_cost(app_env, runner: Runner, out: Report, ns: argparse.Namespace, a_tls: float, c_tls: float) -> None:
    """(a) and (c) on two clusters of the same shape, one mutual TLS and one plaintext, runs
    alternating between them so that the machine's drift falls on both alike."""
    from distributed import LocalCluster

    from switchyard.cluster import tls, warm
    from switchyard.settings import update_cluster

    warm.down_sync(app_env)  # RUN prefers the warm cluster: the two external ones must be the only ones up
    certs = tls.workspace_certs(app_env.home)
    settings = app_env.settings_path
    saved = settings.read_text()
    files = {"ca_file": certs.ca_file, "cert_file": certs.cert_file, "key_file": certs.key_file}
    shape = dict(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0")
    print(f"TLS cost (design {os.environ.get('SWITCHYARD_AGENT')}): 2 external clusters of 2 one-thread "
          "workers, TLS and plaintext, runs alternating")
    with LocalCluster(protocol="tls", security=certs.security(), **shape) as secure, \
            LocalCluster(protocol="tcp", **shape) as plain:
        sides = {"tls": (secure.scheduler_address, {"tls": files}),
                 "plaintext": (plain.scheduler_address, {"tls": {"allow_plaintext": True}})}
        a: dict[str, list[float]] = {k: [] for k in sides}
        c: dict[str, list[float]] = {k: [] for k in sides}
        try:
            for i in range(ns.repeat + 1):  # the first round warms up both
                for side, (address, table) in sides.items():
                    update_cluster(settings, **table)
                    floor = raw_floor(address, 8)
                    seconds = runner.run(f"(a) {side}", 8, scheduler=address)[0]
                    if i:
                        c[side].append(floor)
                        a[side].append(seconds)
        finally:
            settings.write_text(saved)
    ca = {k: out.figure(f"(c) raw floor, {k}", v) for k, v in c.items()}
    aa = {k: out.figure(f"(a) AGI.run 8 empty partitions, {k}", v) for k, v in a.items()}
    out.value("(a) TLS - plaintext", aa["tls"] - aa["plaintext"])
    out.value("(c) TLS - plaintext", ca["tls"] - ca["plaintext"])
    out.value("(a) TLS / plaintext", aa["tls"] / aa["plaintext"], unit="")
    out.value("(c) TLS / plaintext", ca["tls"] / ca["plaintext"], unit="")
    out.value("(a) on the warm TLS cluster (above), for reference", a_tls)
    out.value("(c) on the warm TLS cluster (above), for reference", c_tls)


# ----------------------------------------------------------------------------- clean-up

def _pids_of_workspace(home: Path) -> list[int]:
    """Processes whose SWITCHYARD_HOME is this benchmark's workspace (drivers, agents, workers)."""
    marker = f"SWITCHYARD_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def stop_leftovers(home: Path) -> None:
    """End, by pid, what this benchmark's runs left running (e.g. a resident driver process)."""
    pids = _pids_of_workspace(home)
    if not pids:
        return
    print(f"stopping {len(pids)} process(es) left by the runs: {', '.join(map(str, pids))}", file=sys.stderr)
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists() and _alive(p)]
            if not pids:
                return
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _terminate(signum, frame):  # SIGTERM: unwind through the finally blocks
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    saved_agent = os.environ.get("SWITCHYARD_AGENT")
    root = Path(tempfile.mkdtemp(prefix="switchyard-bench-engine-")).resolve()
    home = root / "home"
    try:
        app_env = make_workspace(root)
        from switchyard.agi import AGI  # noqa: F401  (the caller is imported before the first timing)
        from switchyard.cluster import warm

        sys.path.insert(0, str(app_env.app_dir))  # the raw floor's no-op, by reference
        status = warm.up_sync(app_env, workers=dict(WORKERS), scheduler="127.0.0.1:0",
                              on_line=lambda line: None)
        try:
            measure(app_env, status["address"], ns)
        finally:
            warm.down_sync(app_env)
    except BenchFailure as e:
        print(f"bench_engine: FAILED: {e}", file=sys.stderr)
        return 1
    except Exception as e:
        from switchyard.exceptions import SwitchyardError

        if not isinstance(e, SwitchyardError):
            raise
        print(f"bench_engine: FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        if saved_agent is None:
            os.environ.pop("SWITCHYARD_AGENT", None)
        else:
            os.environ["SWITCHYARD_AGENT"] = saved_agent
        stop_leftovers(home)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
