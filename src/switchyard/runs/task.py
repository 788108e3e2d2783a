"""The function that processes one batch, wherever it runs (driver process or Dask worker).

It never raises for the app's own errors: it returns a BatchOutcome with the
app's traceback, so the driver can log it, retry and dead-letter. Output the app
prints is captured and returned too, so it reaches the run log from any cluster.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import multiprocessing
import os
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchyard.app import App, Partition

_apps: dict[tuple, App] = {}
_pools: dict[tuple[str, int, bool], ProcessPoolExecutor] = {}
_lock = threading.Lock()


@dataclass
class BatchSpec:
    """What a worker needs to run one partition of an app."""

    app: str
    app_dir: str
    args: dict
    data_dir: str
    pool_size: int = 0  # 0: no pool
    rapids: bool = False  # the rapids bit: the batch computes with CuPy (switchyard.device)


@dataclass
class BatchOutcome:
    idx: int
    result: Any
    error: str | None
    traceback: str | None
    worker: str
    started_at: float
    ended_at: float
    output: str
    device: str = ""  # what the batch computed on, from the process that ran it ("CPU (...)", "GPU 0: ...")


def worker_name() -> str:
    try:
        from distributed import get_worker

        w = get_worker()
        return str(w.name)
    except Exception:
        return f"{socket.gethostname()}:{os.getpid()}"


def _data_dir(spec: BatchSpec) -> Path:
    """This host's data folder of the app: a remote worker has its own workspace."""
    home = os.environ.get("SWITCHYARD_HOME")
    return Path(home) / "data" / spec.app if home else Path(spec.data_dir)


def _app_instance(spec: BatchSpec) -> App:
    key = (spec.app, spec.app_dir, json.dumps(spec.args, sort_keys=True), spec.data_dir)
    with _lock:
        app = _apps.get(key)
        if app is None:
            from switchyard.app import app_class_of

            import importlib

            try:  # the worker env's own path first: it may hold the Cython build
                module = importlib.import_module(spec.app)
            except ModuleNotFoundError:
                sys.path.append(spec.app_dir)
                module = importlib.import_module(spec.app)
            cls = app_class_of(module, spec.app, Path(spec.app_dir))
            app = cls(cls.Args.model_validate(spec.args), _data_dir(spec))
            app.start()
            _apps[key] = app
        return app


def _pool_child(path: str, rapids: bool) -> None:
    # Appended, not first: in cython mode the compiled build (first on PYTHONPATH) must keep
    # shadowing the app's .py modules in the pool's processes too.
    if path not in sys.path:
        sys.path.append(path)
    from switchyard import device

    device.become_pool_child(rapids)


def _pool(size: int, app_dir: str, rapids: bool = False) -> ProcessPoolExecutor:
    with _lock:
        pool = _pools.get((app_dir, size, rapids))
        if pool is None:
            # forkserver: workers of a threaded process (Dask) must not fork it directly;
            # its children start with the server's sys.path, so each app gets its own pool
            ctx = multiprocessing.get_context("forkserver")
            pool = ProcessPoolExecutor(max_workers=size, mp_context=ctx, initializer=_pool_child,
                                       initargs=(app_dir, rapids))
            _pools[(app_dir, size, rapids)] = pool
            if len(_pools) == 1:
                atexit.register(shutdown)
        return pool


def run_batch(spec: BatchSpec, idx: int, partition: Partition) -> BatchOutcome:
    started = time.time()
    buf = io.StringIO()
    result = error = tb = None
    device_name = ""
    from switchyard import device

    try:
        ctx = device.make_context(spec.rapids)
        device_name = device.device_label(ctx)
        token = device.enter(ctx)
        try:
            app = _app_instance(spec)
            with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                if spec.pool_size > 0 and len(partition.items) > 1:
                    pool = _pool(spec.pool_size, spec.app_dir, spec.rapids)
                    result = app.work(partition, map_items=pool.map)
                else:
                    result = app.work(partition)
        finally:
            device.leave(token)
    except BaseException as e:  # the app's own failure: report it, never kill the worker
        error = f"{type(e).__name__}: {e}"
        tb = traceback.format_exc()
    return BatchOutcome(idx=idx, result=result, error=error, traceback=tb, worker=worker_name(),
                        started_at=started, ended_at=time.time(), output=buf.getvalue(), device=device_name)


def shutdown() -> None:
    """Stop the cached apps and pools of this process (clean worker shutdown)."""
    with _lock:
        for app in _apps.values():
            with contextlib.suppress(Exception):
                app.stop()
        _apps.clear()
        for pool in _pools.values():
            pool.shutdown(cancel_futures=True)
        _pools.clear()
