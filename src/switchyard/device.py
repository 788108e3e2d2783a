"""Where a batch's numbers are computed: the batch context and the rapids checks.

A batch runs with a :class:`BatchContext` that names its array module and
dataframe module (CuPy and cuDF's ``cudf.pandas`` with the rapids bit, NumPy
and pandas without), the kind of process it runs in (the driver, a Dask worker,
a pool child) and the device it computes on. App code asks
:func:`current` / :func:`array_module` instead of testing the mode itself.

The rapids checks read a :mod:`switchyard.gpu_probe` result (the probe really
runs, on each worker host) and say in one line what is missing and how to fix it.
"""

from __future__ import annotations

import contextvars
import os
import platform
import sys
from dataclasses import asdict, dataclass
from types import ModuleType

DRIVER = "driver"
DASK_WORKER = "Dask worker"
POOL_CHILD = "pool child"

# CUDA majors with CuPy and cuDF wheels (cupy-cuda12x / cudf-cu12, cupy-cuda13x / cudf-cu13).
CUDA_MAJORS = (12, 13)
# The newest pandas cuDF supports (cudf.core._compat.PANDAS_CURRENT_SUPPORTED_VERSION); a
# rapids environment pins pandas to this range.
CUDF_PANDAS = ">=2.0,<2.4"

# Set in a Dask worker by the rapids boot preload (switchyard.rapids_boot): whether pandas
# was already imported when it ran (it must not be) and whether cudf.pandas is on.
BOOT: dict = {}


@dataclass(frozen=True)
class BatchContext:
    """What a batch computes with, as seen from inside it.

    Attributes:
        rapids: The rapids bit of the run.
        process: ``driver``, ``Dask worker`` or ``pool child``.
        array_module: ``cupy`` or ``numpy``.
        dataframe_module: ``cudf.pandas`` (pandas calls run on the GPU where cuDF can) or ``pandas``.
    """

    rapids: bool = False
    process: str = DRIVER
    array_module: str = "numpy"
    dataframe_module: str = "pandas"

    @property
    def xp(self) -> ModuleType:
        """The array module itself (imported on first use)."""
        import importlib

        return importlib.import_module(self.array_module)

    def to_dict(self) -> dict:
        return asdict(self)


_current: contextvars.ContextVar[BatchContext | None] = contextvars.ContextVar("batch_context",
                                                                               default=None)
_process_default: BatchContext | None = None  # a pool child's, set by its initializer


def process_kind() -> str:
    """The kind of process this code runs in."""
    if _process_default is not None:
        return _process_default.process
    distributed = sys.modules.get("distributed")  # a Dask worker has imported it; never import it here
    if distributed is None:
        return DRIVER
    try:
        distributed.get_worker()
        return DASK_WORKER
    except (AttributeError, ValueError):
        return DRIVER


def cudf_pandas_active() -> bool:
    """Whether ``cudf.pandas`` proxies pandas in this process."""
    mod = sys.modules.get("cudf.pandas")
    return bool(mod is not None and (getattr(mod, "LOADED", False) or BOOT.get("cudf_pandas")))


def make_context(rapids: bool, process: str | None = None) -> BatchContext:
    """The context of a batch of a run with (or without) the rapids bit, in this process.

    Raises:
        ModeError: the rapids bit is on and CuPy cannot be imported here (a batch never
            computes on the CPU under a rapids label).
    """
    process = process or process_kind()
    if not rapids:
        return BatchContext(False, process, "numpy", "pandas")
    try:
        import importlib

        importlib.import_module("cupy")
    except Exception as e:
        from switchyard.exceptions import ModeError

        raise ModeError(f"rapids batch on host '{platform.node()}' ({process}): CuPy cannot be imported "
                        f"({type(e).__name__}: {e}): install the app with rapids on (switchyard install "
                        "APP --modes 8) on a host with an NVIDIA GPU, or turn rapids off") from e
    return BatchContext(True, process, "cupy", "cudf.pandas" if cudf_pandas_active() else "pandas")


def current() -> BatchContext:
    """The running batch's context (NumPy and pandas in the driver outside any batch)."""
    ctx = _current.get()
    if ctx is not None:
        return ctx
    return _process_default or BatchContext(False, process_kind())


def array_module() -> ModuleType:
    """The running batch's array module: ``cupy`` with the rapids bit, else ``numpy``."""
    return current().xp


def to_numpy(values):
    """A NumPy array of ``values`` (CuPy arrays are copied from the GPU)."""
    get = getattr(values, "get", None)
    if get is not None and type(values).__module__.startswith("cupy"):
        return get()
    import numpy as np

    return np.asarray(values)


def enter(ctx: BatchContext) -> contextvars.Token:
    """Make ``ctx`` the running batch's context until :func:`leave`."""
    return _current.set(ctx)


def leave(token: contextvars.Token) -> None:
    _current.reset(token)


def become_pool_child(rapids: bool) -> None:
    """A pool child's initializer: its batches' items run with this context."""
    global _process_default
    _process_default = make_context(rapids, POOL_CHILD)


_cpu_name: str | None = None


def cpu_name() -> str:
    global _cpu_name
    if _cpu_name is None:
        name = ""
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("model name"):
                        name = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        _cpu_name = name or platform.processor() or platform.machine() or "unknown"
    return _cpu_name


def device_label(ctx: BatchContext | None = None) -> str:
    """The device the batch computes on, from this process: ``GPU 0: NVIDIA H200`` or ``CPU (...)``."""
    ctx = ctx or current()
    if ctx.array_module == "cupy":
        try:
            import cupy

            dev = cupy.cuda.Device()
            name = cupy.cuda.runtime.getDeviceProperties(dev.id)["name"].decode(errors="replace")
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            return f"GPU {dev.id}: {name}" + (f" (CUDA_VISIBLE_DEVICES={visible})" if visible else "")
        except Exception as e:
            return f"GPU ? ({type(e).__name__}: {e})"
    return f"CPU ({cpu_name()})"


# ----------------------------------------------------------------------------- checks

def host_label(host: str, local: bool) -> str:
    return f"host '{host}'" + (" (this machine)" if local else "")


def rapids_problem(probe: dict, *, host: str, local: bool, on_workers: bool,
                   workers: int | None = None, need_packages: bool = True) -> str | None:
    """Why the rapids bit cannot work on a host whose probe is ``probe``; None when it can.

    ``on_workers``: Dask workers run the batches there (then cudf.pandas is needed as well,
    and ``workers`` must not exceed its GPUs); else the driver does. ``need_packages``:
    CuPy (and cuDF on workers) must already be importable (RUN; INSTALL adds them).
    """
    where = host_label(host, local)
    if probe.get("reason") or not probe.get("gpus"):
        return (f"{where}: {probe.get('reason') or 'no GPU found'}: run rapids modes on a host with an "
                "NVIDIA GPU and driver (nvidia-smi lists it), or turn rapids off")
    major = probe.get("cuda_major")
    if major not in CUDA_MAJORS:
        return (f"{where}: CUDA {probe.get('cuda') or 'version unknown'} of driver {probe.get('driver')} has "
                f"no CuPy/cuDF wheels (CUDA {' and '.join(map(str, CUDA_MAJORS))} have): upgrade the "
                "NVIDIA driver, or turn rapids off")
    gpus = len(probe["gpus"])
    if on_workers and workers is not None and workers > gpus:
        return (f"{where}: {workers} Dask workers but {gpus} GPU{'s' if gpus != 1 else ''}: set its worker "
                f"count to {gpus} (one worker process per GPU), or turn rapids off")
    if need_packages:
        cupy = probe.get("cupy") or {}
        if not cupy.get("available"):
            return (f"{where}: CuPy is not installed in the app's environment ({cupy.get('error') or 'missing'}): "
                    "install the app with rapids on (switchyard install APP --modes 8)")
        if not cupy.get("devices"):
            return (f"{where}: CuPy sees no CUDA device ({cupy.get('error') or 'none'}): check the driver and "
                    "CUDA_VISIBLE_DEVICES, or turn rapids off")
        if on_workers and not probe.get("cudf"):
            return (f"{where}: cuDF is not installed in the app's environment, so cudf.pandas cannot run "
                    "on its Dask workers: install the app with rapids on (switchyard install APP --modes 12), "
                    "or use mode 8 (CuPy in the driver)")
    return None


def rapids_requirements(cuda_major: int, cpu_pandas: str | None) -> tuple[list[str], str]:
    """The packages a rapids environment adds for ``cuda_major``, and what it says about pandas."""
    if cuda_major not in CUDA_MAJORS:
        raise ValueError(f"CUDA {cuda_major} has no CuPy/cuDF wheels")
    reqs = [f"cupy-cuda{cuda_major}x", f"cudf-cu{cuda_major}", f"pandas{CUDF_PANDAS}"]
    note = f"rapids: CuPy and cuDF for CUDA {cuda_major} (cupy-cuda{cuda_major}x, cudf-cu{cuda_major})"
    if cpu_pandas and not _in_cudf_range(cpu_pandas):
        note += (f"; pandas pinned to {CUDF_PANDAS} (what cuDF supports), not the CPU environment's "
                 f"pandas {cpu_pandas}")
    else:
        note += f"; pandas pinned to {CUDF_PANDAS} (what cuDF supports)"
    return reqs, note


def _in_cudf_range(version: str) -> bool:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    major, minor = (parts + [0, 0])[:2]
    return major == 2 and minor < 4
