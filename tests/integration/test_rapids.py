"""The rapids bit and the truth of the mode hints, with real runs and the real GPU probe.

This machine has no GPU: the probe really runs (nvidia-smi, CuPy's device query) and
finds none, so every rapids mode is refused at RUN and INSTALL with one line naming
the host. A probe app reports from inside each batch what ran where, and modes 0-7
are held to what their hint (``modes.execution``) says.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from switchyard import device, gpu_probe
from switchyard.app import AppEnv
from switchyard.cluster.env import install_local
from switchyard.exceptions import ClusterError, ModeError
from switchyard.modes import execution, is_compiled
from switchyard.runs.install import install_sync
from switchyard.runs.submit import run_sync
from tests.conftest import make_tiny_app

PROBE_INIT = '''
import json
import os

from switchyard.app import App, Args, Partition


class ProbeArgs(Args):
    n: int = 2


class Probe(App):
    Args = ProbeArgs
    compiled_modules = ("kernel",)

    def partitions(self):
        # two items per partition, so the pool bit really uses its pool
        return [Partition(name=f"p{i}", weight=1.0, items=(2 * i, 2 * i + 1)) for i in range(self.args.n)]

    def work_item(self, item):
        from switchyard import device
        from {name} import kernel

        ctx = device.current()
        return {"item": item, "process": ctx.process, "compiled": not kernel.__file__.endswith(".py"),
                "array": ctx.array_module, "dataframe": ctx.dataframe_module,
                "device": device.device_label(ctx), "total": kernel.total(item + 3)}

    def reduce(self, results, output_dir):
        output_dir.mkdir(parents=True, exist_ok=True)
        path = output_dir / "probe.json"
        path.write_text(json.dumps([row for part in results for row in part]))
        return path
'''

NO_GPU = gpu_probe.probe(cupy=False)["gpus"] == []


@pytest.fixture(scope="module")
def probe_app(tmp_path_factory):
    root = tmp_path_factory.mktemp("probeapp")
    make_tiny_app(root / "apps", "probeapp", dependencies=(), init=PROBE_INIT)
    app_env = AppEnv("probeapp", apps_dir=root / "apps", workspace=root / "home")
    assert install_local(app_env, cython=shutil.which("cc") is not None).ok
    return app_env


# Runs in the app's worker environment (its python, its PYTHONPATH: the Cython build first in
# cython mode) the batch path every executor calls: run_batch in this process (the driver's
# executor), in a pool, and on a real Dask worker process.
BATCHES = """
import json, sys
from distributed import Client, LocalCluster
from switchyard.app import Partition
from switchyard.runs.task import BatchSpec, run_batch


def main(app, app_dir, data_dir, cython):
    parts = [Partition(name=f"p{i}", weight=1.0, items=(2 * i, 2 * i + 1)) for i in range(2)]
    out = {}

    def batches(mode, call):
        spec = BatchSpec(app=app, app_dir=app_dir, args={"n": 2}, data_dir=data_dir,
                         pool_size=2 if mode & 1 else 0)
        got = [call(spec, i, p) for i, p in enumerate(parts)]
        out[mode] = [{"error": g.error, "device": g.device, "rows": g.result} for g in got]

    base = 2 if cython else 0
    for mode in (base, base + 1):
        batches(mode, run_batch)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as c, \\
            Client(c) as client:
        for mode in (base + 4, base + 5):
            batches(mode, lambda spec, i, p: client.submit(run_batch, spec, i, p, pure=False).result())
    print("@@" + json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1")
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="the cython modes need a C compiler (make test installs one)")
def test_every_batch_runs_where_its_mode_hint_says(probe_app, tmp_path):
    """Modes 0-7 from inside their batches: process kind, compiled or not, array and dataframe
    modules, the device; each as ``modes.execution`` (what the hint says) has it."""
    from switchyard.cluster.env import env_python, worker_environ

    script = tmp_path / "batches.py"
    script.write_text(BATCHES)
    seen = {}
    for cython in (False, True):
        # Output to files, not pipes: a Dask worker's process pool can outlive the worker
        # and would hold a pipe open, so capture_output would wait for it forever.
        out_f, err_f = open(tmp_path / f"out{cython}", "w+"), open(tmp_path / f"err{cython}", "w+")
        proc = subprocess.run([str(env_python(probe_app)), str(script), "probeapp", str(probe_app.app_dir),
                               str(tmp_path), "1" if cython else "0"], stdout=out_f, stderr=err_f, text=True,
                              env=worker_environ(probe_app, cython), timeout=300, cwd=tmp_path)
        out_f.seek(0)
        err_f.seek(0)
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out_f.read(), err_f.read())
        assert done.returncode == 0, done.stderr[-3000:]
        found = json.loads(done.stdout.rsplit("@@", 1)[1])
        for mode, outcomes in ((int(m), o) for m, o in found.items()):
            want = execution(mode)
            for got in outcomes:
                assert got["error"] is None, (mode, got)
                assert got["device"] == f"CPU ({device.cpu_name()})"
                for r in got["rows"]:
                    facts = (r["process"], r["compiled"], r["array"], r["dataframe"])
                    assert facts == (want.process, is_compiled(mode), want.array_module,
                                     want.dataframe_module), (mode, r)
                    assert r["total"] == sum(range(r["item"] + 3))
            seen[mode] = {r["process"] for got in outcomes for r in got["rows"]}
    assert seen == {0: {"driver"}, 1: {"pool child"}, 2: {"driver"}, 3: {"pool child"},
                    4: {"Dask worker"}, 5: {"pool child"}, 6: {"Dask worker"}, 7: {"pool child"}}


def test_a_run_records_the_device_of_each_batch(probe_app):
    """The driver keeps the worker-side device of each completed batch (run log, timing.json),
    which benchmark rows carry."""
    from switchyard.runs.bench import benchmark_sync

    doc = benchmark_sync(probe_app, modes_enabled=0, workers={"127.0.0.1": 1}, on_line=lambda s: None, n=2)
    (row,) = doc["results"]
    assert row["status"] == "completed"
    assert row["devices"] == {f"CPU ({device.cpu_name()})": 2}
    log = (probe_app.home / "runs" / row["orchestration_id"] / "run.log").read_text()
    assert "completed on " in log and f"(CPU ({device.cpu_name()}))" in log


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU: the refusals are for machines without one")
def test_rapids_modes_are_refused_at_run_and_install_naming_the_host(probe_app):
    runs = probe_app.home / "runs"
    before = sorted(runs.iterdir()) if runs.exists() else []
    for mode in (8, 12):
        with pytest.raises(ModeError) as e:
            run_sync(probe_app, mode=mode, workers={"127.0.0.1": 1}, on_line=lambda s: None)
        msg = str(e.value)
        assert "\n" not in msg
        # the driver's executor (8) and the Dask workers (12) both run on this machine here
        assert msg.startswith(f"RUN refused: mode {mode} needs a GPU for its rapids bit (cupy, cudf): "
                              "host '127.0.0.1' (this machine): nvidia-smi"), msg
        assert msg.endswith("or turn rapids off")
    with pytest.raises(ModeError) as e:
        install_sync(probe_app, modes_enabled=15, workers={"127.0.0.1": 1}, on_line=lambda s: None)
    assert str(e.value).startswith("INSTALL refused: mode 15 needs a GPU for its rapids bit (cupy, cudf): "
                                   "host '127.0.0.1' (this machine): nvidia-smi")
    assert (sorted(runs.iterdir()) if runs.exists() else []) == before  # nothing was started or recorded


def test_a_rapids_worker_turns_cudf_pandas_on_before_pandas_and_the_app(workspace):
    """The launch a rapids run builds: the boot preload first, a GPU each, then the app's preload;
    on this machine the real worker refuses to start, for want of cuDF (not because pandas came first)."""
    from switchyard.cluster.local import LocalCluster
    from switchyard.cluster.spec import RAPIDS_PRELOAD, worker_argv, worker_env

    cluster = LocalCluster(sys.executable, {"127.0.0.1": 2}, rapids=True, preload=("json",), join_timeout=30,
                           home=workspace, on_line=lambda s: None)
    spec = cluster.spec("/tmp/x")
    argv = worker_argv(spec, "127.0.0.1", "127.0.0.1-1", "tls://127.0.0.1:1")
    preloads = [argv[i + 1] for i, a in enumerate(argv) if a == "--preload"]
    assert preloads == [RAPIDS_PRELOAD, "json"]
    assert argv[argv.index("--resources") + 1] == "GPU=1"
    assert [worker_env(spec, "127.0.0.1", n)["CUDA_VISIBLE_DEVICES"] for n in ("127.0.0.1-0", "127.0.0.1-1")] \
        == ["0", "1"]
    plain = LocalCluster(sys.executable, {"127.0.0.1": 1}, preload=("json",), home=workspace).spec("/tmp/x")
    plain_argv = worker_argv(plain, "127.0.0.1", "127.0.0.1-0", "tls://127.0.0.1:1")
    assert RAPIDS_PRELOAD not in plain_argv and "--resources" not in plain_argv
    assert "CUDA_VISIBLE_DEVICES" not in worker_env(plain, "127.0.0.1", "127.0.0.1-0")
    if importlib_util_has("cudf"):
        pytest.skip("cuDF is installed here: the refusal below is for machines without it")
    one = LocalCluster(sys.executable, {"127.0.0.1": 1}, rapids=True, preload=("json",), join_timeout=30,
                       home=workspace, on_line=lambda s: None)
    with pytest.raises(ClusterError) as e:
        try:
            one.start()
        finally:
            one.close()
    assert "rapids worker: cuDF cannot be imported" in str(e.value)
    assert "pandas was imported before" not in str(e.value)


def importlib_util_has(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.skipif(not importlib_util_has("cupy") or NO_GPU, reason="needs CuPy and an NVIDIA GPU")
def test_flight_on_the_gpu_equals_mode_0(tmp_path):
    """Where CuPy and a GPU are present: the array module inside a rapids batch is CuPy and the
    flight output equals mode 0's within a float tolerance."""
    import pandas as pd

    from switchyard.app import Partition
    from switchyard.runs.task import BatchSpec, run_batch

    apps = Path(__file__).resolve().parents[2] / "apps"
    sys.path.insert(0, str(apps / "flight"))
    from flight import worker

    args = {"files": 1, "rows_per_file": 20000, "chunk_rows": 100000}
    rows = worker.file_rows(0, 20000, 42)
    part = Partition(name="flight_0000", weight=1.0, items=(("d/flight_0000.csv", 0, rows),))
    out = {}
    for rapids in (False, True):
        spec = BatchSpec(app="flight", app_dir=str(apps / "flight"), args=args, data_dir=str(tmp_path),
                         rapids=rapids)
        got = run_batch(spec, 0, part)
        assert got.error is None, got.traceback
        out[rapids] = got
    assert out[True].device.startswith("GPU ") and out[False].device.startswith("CPU (")
    pd.testing.assert_frame_equal(out[True].result, out[False].result, rtol=1e-9)


def test_bench_rapids_runs_its_cpu_path_and_reports_the_gpu_it_lacks(tmp_path):
    out = tmp_path / "rapids.json"
    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_rapids.py"
    done = subprocess.run([sys.executable, str(bench), "--points", "3000", "--files", "2", "--repeat", "1",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["points"] >= 2 * 2 and doc["modes"]["0"]["status"] == "completed"
    assert doc["modes"]["0"]["devices"] == [f"CPU ({device.cpu_name()})"]
    assert doc["modes"]["0"]["batch_seconds"] > 0 and doc["modes"]["0"]["numerics_seconds"] > 0
    if NO_GPU:
        assert doc["gpu"]["model"] is None and doc["gpu"]["reason"]
        assert doc["modes"]["8"]["status"] == "skipped"
        assert doc["modes"]["8"]["reason"].startswith(f"host '{doc['host']}' (this machine): ")
        assert "comparison" not in doc
    else:
        assert doc["comparison"]["equal"], doc["comparison"]


@pytest.mark.ssh
@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU: the refusal is for hosts without one")
def test_a_remote_worker_host_is_probed_over_ssh_and_refused_by_name(probe_app, tmp_path):
    """Mode 12 with a worker host reached over SSH (a real sshd on 127.0.0.2): the probe runs there."""
    from switchyard.cluster.gpus import check_hosts, probe_hosts
    from switchyard.settings import parse_settings

    from .sshd import SSHServer, ssh_settings_toml

    with SSHServer(tmp_path / "sshd", ["127.0.0.2"]) as server:
        text = '[cluster]\ndask = true\n\n[cluster.workers]\n"127.0.0.2" = 1\n\n' + ssh_settings_toml(
            server, {"127.0.0.2": tmp_path / "hostA"})
        cluster = parse_settings(text, tmp_path / "app_settings.toml").cluster
        probes = probe_hosts(probe_app, ["127.0.0.2"], cluster, installed=False)
        assert probes["127.0.0.2"]["host"] == platform.node()  # the probe ran on the far side
        assert probes["127.0.0.2"]["reason"].startswith("nvidia-smi not found")
        with pytest.raises(ModeError) as e:
            check_hosts(probe_app, 12, {"127.0.0.2": 1}, cluster, action="RUN")
    msg = str(e.value)
    assert msg.startswith("RUN refused: mode 12 needs a GPU for its rapids bit (cupy, cudf): "
                          "host '127.0.0.2': nvidia-smi")
    assert "(this machine)" not in msg and "\n" not in msg
