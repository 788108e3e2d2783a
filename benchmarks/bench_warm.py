"""Run latency on a warm cluster versus a cold start.

Cold: the run starts its own cluster (locally the driver starts a LocalCluster and
closes it at the end; with ``--ssh`` RUN starts the scheduler and SSH workers and the
benchmark stops them after the run). Warm: ``switchyard cluster up`` once, then the
same run uses that cluster. Both sides run flight (small args, mode 4, 2 workers) end
to end through AGI.run, alternating; the best of each side is compared (the median is
printed too: on a shared machine the best is the steadier figure).

``--ssh`` needs Debian's openssh-server: it starts the test suite's sshd on 127.0.0.2
and 127.0.0.3 (one worker each, each with its own install root) and installs them first.

Usage: .venv/bin/python benchmarks/bench_warm.py [--repeat 3] [--ssh]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import quiet, scratch  # noqa: E402

ARGS = {"files": 4, "rows_per_file": 400}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ssh", action="store_true", help="workers on 127.0.0.2 and 127.0.0.3 over a real sshd")
    ns = ap.parse_args()
    from switchyard.runs.install import install_sync
    from switchyard.runs.submit import run_sync
    from switchyard.cluster import warm

    app_env, root = scratch("flight")
    server = None
    workers = {"127.0.0.1": 2}
    try:
        if ns.ssh:
            from tests.integration.sshd import SSHServer, ssh_settings_toml

            server = SSHServer(root / "sshd", ["127.0.0.2", "127.0.0.3"]).start()
            workers = {"127.0.0.2": 1, "127.0.0.3": 1}
            settings = app_env.settings_path
            text = settings.read_text().replace('"127.0.0.1" = 2', '"127.0.0.2" = 1\n"127.0.0.3" = 1')
            settings.write_text(text + "\n" + ssh_settings_toml(
                server, {"127.0.0.2": root / "hostA", "127.0.0.3": root / "hostB"}))
            report = install_sync(app_env, on_line=quiet)
            assert report.ok, report.summary()
        scheduler = "127.0.0.1:0"

        def one_run() -> float:
            t0 = time.perf_counter()
            res = run_sync(app_env, mode=4, scheduler=scheduler, workers=workers, on_line=quiet, **ARGS)
            assert res.status == "completed", res
            return time.perf_counter() - t0

        def cold() -> float:
            seconds = one_run()
            if warm.read_record(app_env):  # over SSH, RUN left the cluster it started up: stop it
                warm.down_sync(app_env)
            return seconds

        one_run() if not ns.ssh else cold()  # first imports, data generation, plan
        colds, warms, ups = [], [], []
        for _ in range(ns.repeat):
            colds.append(cold())
            t0 = time.perf_counter()
            warm.up_sync(app_env, workers=workers, scheduler=scheduler)
            ups.append(time.perf_counter() - t0)
            one_run()  # the workers' first run imports the app
            warms.append(one_run())
            warm.down_sync(app_env)
    finally:
        if warm.read_record(app_env):
            warm.down_sync(app_env)
        if server is not None:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
    c, w, u = min(colds), min(warms), statistics.median(ups)
    where = "2 SSH workers (127.0.0.2, 127.0.0.3)" if ns.ssh else "2 local workers"
    print(f"flight {ARGS}, mode 4, {where}, repeats: {ns.repeat}")
    print(f"cold start run (cluster started for it): best {c:.2f} s, median {statistics.median(colds):.2f} s"
          f"  (all: {_all(colds)})")
    print(f"warm cluster run:                        best {w:.2f} s, median {statistics.median(warms):.2f} s"
          f"  (all: {_all(warms)})")
    print(f"cluster up (once, not in the warm run):  {u:.2f} s")
    print(f"cold / warm latency ratio (best):        {c / w:.2f}")


def _all(values: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


if __name__ == "__main__":
    main()
