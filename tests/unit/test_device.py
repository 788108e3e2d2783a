"""The batch context, the rapids checks and the truth table of the mode hints."""

from __future__ import annotations

import platform

import pytest

from switchyard import device, gpu_probe
from switchyard.exceptions import ModeError
from switchyard.modes import Mode, execution, is_compiled, mode_hint, unsupported_reason


def test_the_hint_of_every_mode_says_what_runs_where():
    """Each hint names the process its items run in, says compiled iff cython, and names CuPy
    and cudf.pandas exactly where execution() has them (NumPy, pandas and the .py modules
    are the unnamed default)."""
    for mode in range(16):
        hint = mode_hint(mode, partitions=3, workers={"127.0.0.1": 2}, pool_size=2)
        ctx, m = execution(mode), Mode(mode)
        where = {"driver": "in the driver process", "Dask worker": "over 2 Dask workers",
                 "pool child": "in a pool of 2 processes"}[ctx.process]
        assert where in hint, (mode, hint)
        assert ("in the driver process" in hint) == (not m.uses_dask), (mode, hint)
        assert ("compiled with Cython" in hint) == is_compiled(mode), (mode, hint)
        assert ("with CuPy" in hint) == (ctx.array_module == "cupy"), (mode, hint)
        assert ("through cudf.pandas" in hint) == (ctx.dataframe_module == "cudf.pandas"), (mode, hint)
        assert ("pandas stays on the CPU" in hint) == (m.uses_rapids and ctx.dataframe_module == "pandas")
        assert ("one worker process per GPU" in hint) == (m.uses_rapids and m.uses_dask), (mode, hint)
        assert "GPU" not in hint or m.uses_rapids
    assert [execution(m).process for m in range(16)] == (
        ["driver", "pool child", "driver", "pool child", "Dask worker", "pool child", "Dask worker",
         "pool child"] * 2)
    assert [m for m in range(16) if execution(m).dataframe_module == "cudf.pandas"] == [12, 14]
    assert [m for m in range(16) if execution(m).array_module == "cupy"] == list(range(8, 16))


def test_the_probe_really_runs_and_a_rapids_mode_names_the_host_and_reason():
    found = gpu_probe.probe()
    assert found["host"] == platform.node()
    if found["gpus"]:
        pytest.skip("this machine has a GPU")
    assert found["reason"]  # e.g. nvidia-smi not found on PATH
    for mode in (8, 12):
        reason = unsupported_reason(mode)
        assert reason.startswith(f"mode {mode} (") and f"host '{platform.node()}' (this machine)" in reason
        assert found["reason"] in reason and "cudf" in reason and "\n" not in reason
    assert unsupported_reason(4) is None
    with pytest.raises(ModeError) as e:
        device.make_context(True)
    assert "CuPy cannot be imported" in str(e.value) and platform.node() in str(e.value)


GPU = {"host": "g1", "gpus": [{"index": "0", "name": "NVIDIA H200", "memory_mib": 143771, "driver": "580.1"}],
       "driver": "580.1", "cuda": "13.0", "cuda_major": 13, "reason": None,
       "cupy": {"available": True, "version": "13.6", "devices": ["NVIDIA H200"]}, "cudf": False}


def test_rapids_problem_names_each_reason_and_fix():
    def problem(probe, **kw):
        return device.rapids_problem(probe, host="10.0.0.7", local=False, **kw)

    assert problem(GPU, on_workers=False) is None  # mode 8: CuPy is enough, cuDF reported absent
    assert "cuDF is not installed" in problem(GPU, on_workers=True, workers=1)
    assert problem({**GPU, "cudf": True}, on_workers=True, workers=1) is None
    two = problem({**GPU, "cudf": True}, on_workers=True, workers=2)
    assert two.startswith("host '10.0.0.7': 2 Dask workers but 1 GPU: set its worker count to 1")
    old = problem({**GPU, "cuda": "11.8", "cuda_major": 11}, on_workers=False)
    assert "CUDA 11.8" in old and "no CuPy/cuDF wheels" in old
    none = problem({"gpus": [], "reason": "nvidia-smi not found on PATH"}, on_workers=False)
    assert none.startswith("host '10.0.0.7': nvidia-smi not found on PATH: run rapids modes on a host")
    bare = problem({**GPU, "cupy": {"available": False, "error": "No module named 'cupy'"}}, on_workers=False)
    assert "CuPy is not installed" in bare and "switchyard install APP --modes 8" in bare
    assert problem({**GPU, "cupy": {"available": False}}, on_workers=False, need_packages=False) is None


def test_rapids_packages_follow_the_cuda_major_and_pin_pandas():
    reqs, note = device.rapids_requirements(13, "3.1.1")
    assert reqs == ["cupy-cuda13x", "cudf-cu13", f"pandas{device.CUDF_PANDAS}"]
    assert "not the CPU environment's pandas 3.1.1" in note
    reqs, note = device.rapids_requirements(12, "2.3.3")
    assert reqs[:2] == ["cupy-cuda12x", "cudf-cu12"] and "not the CPU" not in note
    with pytest.raises(ValueError):
        device.rapids_requirements(11, "2.2.0")


def test_outside_a_batch_and_in_one_the_context_is_numpy_and_pandas_here():
    assert device.current() == device.BatchContext(False, "driver", "numpy", "pandas")
    token = device.enter(device.make_context(False))
    try:
        import numpy

        assert device.array_module() is numpy
        assert device.device_label().startswith("CPU (")
    finally:
        device.leave(token)


def test_a_rapids_environment_drops_the_cpu_pandas_pin_and_says_so():
    from switchyard.cluster.env import rapids_pins

    pins, extra, note = rapids_pins({"pandas": "3.1.1", "numpy": "2.4.6", "dask": "2026.8.0"}, 12)
    assert pins == {"numpy": "2.4.6", "dask": "2026.8.0"}
    assert extra == ["cupy-cuda12x", "cudf-cu12", f"pandas{device.CUDF_PANDAS}"]
    assert "not the CPU environment's pandas 3.1.1" in note


def test_a_cluster_without_gpu_workers_is_refused_for_a_rapids_run(workspace):
    """A real scheduler with one plain worker and one advertising a GPU, as rapids workers do."""
    from distributed import LocalCluster, Worker

    from switchyard.cluster.gpus import check_cluster_gpus

    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0", threads_per_worker=1) as cluster:
        fix = "stop it (switchyard cluster down flight), or turn rapids off"
        with pytest.raises(ModeError) as e:
            check_cluster_gpus(cluster.scheduler_address, "the warm cluster of 'flight'", fix)
        msg = str(e.value)
        assert msg.startswith("RUN refused: the rapids bit needs GPU workers, and the warm cluster of 'flight' "
                              f"at {cluster.scheduler_address} has 1 of 1 workers without a GPU (")
        assert msg.endswith(fix)

        async def gpu_worker():
            return await Worker(cluster.scheduler_address, name="gpu-0", resources={"GPU": 1}, nthreads=1)

        worker = cluster.sync(gpu_worker)
        try:
            with pytest.raises(ModeError) as e:
                check_cluster_gpus(cluster.scheduler_address, "the running Dask scheduler", "fix it")
            assert "1 of 2 workers without a GPU" in str(e.value) and "gpu-0" not in str(e.value)
            cluster.scale(0)
            cluster.sync(cluster._correct_state)
            check_cluster_gpus(cluster.scheduler_address, "the running Dask scheduler", "fix it")  # GPU only
        finally:
            cluster.sync(worker.close)
