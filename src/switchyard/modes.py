"""Execution modes: bit flags, their ``rdcp`` string form, the mode hint, machine checks.

pool = 1, cython = 2, dask = 4, rapids = 8 (0..15). The string form lists the bits
from high to low as ``r d c p`` with ``_`` for an unset bit: 5 is ``_d_p``.
Each bit means one thing only: dask does not imply pool.

What a mode runs where is :func:`execution` (the process kind the app's items run
in, whether its worker modules are compiled, its array and dataframe modules);
:func:`mode_hint` says it in one sentence, naming each way it differs from plain
Python with NumPy and pandas in the driver (a table test holds every mode to it,
and a probe app checks the facts from inside real batches).
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import sysconfig
import time
from enum import IntFlag

from switchyard import device
from switchyard.exceptions import ModeError


class Mode(IntFlag):
    NONE = 0
    POOL = 1
    CYTHON = 2
    DASK = 4
    RAPIDS = 8

    # What a mode means, asked by name rather than by bit tests spread around.
    @property
    def uses_pool(self) -> bool:
        return bool(self & Mode.POOL)

    @property
    def uses_cython(self) -> bool:
        return bool(self & Mode.CYTHON)

    @property
    def uses_dask(self) -> bool:
        return bool(self & Mode.DASK)

    @property
    def uses_rapids(self) -> bool:
        return bool(self & Mode.RAPIDS)


LETTERS = "rdcp"  # high bit first
ALL_MODES = range(16)


def mode_string(mode: int) -> str:
    mode = int(mode)
    return "".join(ch if mode & (1 << (3 - i)) else "_" for i, ch in enumerate(LETTERS))


def parse_mode(value: int | str | Mode) -> Mode:
    """Parse ``5``, ``"5"``, ``"_d_p"`` or ``"dp"`` (letters in any order) into a Mode."""
    if isinstance(value, bool):
        raise ModeError(f"mode {value!r} is not a mode: give 0..15 or a string like '_d_p'")
    if isinstance(value, int):
        if 0 <= value <= 15:
            return Mode(value)
        raise ModeError(f"mode {value} is out of range: give 0..15 (pool=1, cython=2, dask=4, rapids=8)")
    text = str(value).strip()
    if text.isdigit():
        return parse_mode(int(text))
    if len(text) == 4 and all(c == "_" or c == LETTERS[i] for i, c in enumerate(text)):
        return Mode(sum(1 << (3 - i) for i, c in enumerate(text) if c != "_"))
    if text and set(text) <= set(LETTERS) and len(set(text)) == len(text):
        return Mode(sum(1 << (3 - LETTERS.index(c)) for c in text))
    raise ModeError(
        f"mode {value!r} is not a mode: give 0..15 or a string like '_d_p' "
        "(letters r=rapids, d=dask, c=cython, p=pool; '_' for an unset bit)"
    )


def mode_from_flags(*, pool: bool = False, cython: bool = False, dask: bool = False,
                    rapids: bool = False) -> Mode:
    return Mode((pool and 1) | (cython and 2) | (dask and 4) | (rapids and 8))


def flags_of(mode: int) -> dict[str, bool]:
    m = Mode(int(mode))
    return {"pool": bool(m & Mode.POOL), "cython": bool(m & Mode.CYTHON),
            "dask": bool(m & Mode.DASK), "rapids": bool(m & Mode.RAPIDS)}


def enabled_modes(modes_enabled: int) -> list[Mode]:
    """Every mode whose bits are a subset of ``modes_enabled`` (what a benchmark runs)."""
    allowed = int(modes_enabled)
    return [Mode(m) for m in ALL_MODES if m & ~allowed == 0]


def unsupported_reason(mode: int) -> str | None:
    """Why ``mode`` cannot run on this machine, or None when it can."""
    m = Mode(int(mode))
    if m & Mode.RAPIDS:
        problem = device.rapids_problem(local_gpus(), host=platform.node(), local=True,
                                        on_workers=bool(m & Mode.DASK))
        if problem:
            return f"mode {int(m)} ({mode_string(m)}) needs a GPU for its rapids bit (cupy, cudf): {problem}"
    if m & Mode.CYTHON:
        if importlib.util.find_spec("Cython") is None:
            return f"mode {int(m)} ({mode_string(m)}) needs Cython: pip install cython, or turn cython off"
        cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
        if shutil.which(cc) is None and shutil.which("cc") is None:
            return (f"mode {int(m)} ({mode_string(m)}) needs a C compiler ('{cc}' not found): "
                    "install gcc (apt-get install build-essential) or turn cython off")
    return None


_PROBE_TTL = 60.0
_probe_cache: tuple[float, dict] | None = None


def local_gpus(now: float | None = None) -> dict:
    """This machine's GPU probe (:func:`switchyard.gpu_probe.probe`), run at most once a minute."""
    global _probe_cache
    from switchyard import gpu_probe

    now = time.monotonic() if now is None else now
    if _probe_cache is None or now - _probe_cache[0] > _PROBE_TTL:
        _probe_cache = (now, gpu_probe.probe())
    return _probe_cache[1]


def check_supported(mode: int) -> Mode:
    reason = unsupported_reason(mode)
    if reason:
        raise ModeError(reason)
    return Mode(int(mode))


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}es" if word.endswith("s") else f"{n} {word}s"


def execution(mode: int) -> device.BatchContext:
    """What runs where in ``mode``: the process kind an item of a partition runs in, whether the
    app's worker modules are compiled, its array module and dataframe module."""
    m = Mode(int(mode))
    process = device.POOL_CHILD if m & Mode.POOL else device.DASK_WORKER if m & Mode.DASK else device.DRIVER
    rapids = bool(m & Mode.RAPIDS)
    # cudf.pandas is turned on by the rapids boot preload of Dask workers only: the driver (and a
    # pool's processes) imported pandas before any batch, so their pandas stays pandas.
    frames = "cudf.pandas" if rapids and process == device.DASK_WORKER else "pandas"
    return device.BatchContext(rapids=rapids, process=process, array_module="cupy" if rapids else "numpy",
                               dataframe_module=frames)


def is_compiled(mode: int) -> bool:
    return bool(Mode(int(mode)) & Mode.CYTHON)


def mode_hint(mode: int, *, partitions: int | None, workers: dict[str, int], pool_size: int = 2) -> str:
    """One sentence that says how this mode will execute for these partitions and workers."""
    m = Mode(int(mode))
    n_workers = sum(workers.values())
    n_hosts = len(workers)
    parts = _plural(partitions, "partition") if partitions is not None else "the partitions"
    head = f"mode {int(m)} ({mode_string(m)}): "
    if m & Mode.DASK:
        body = f"{parts} over {_plural(n_workers, 'Dask worker')} on {_plural(n_hosts, 'host')}"
        where = "each worker"
    else:
        body = f"{parts} one after another in the driver process"
        where = "the driver"
    extras = []
    if m & Mode.POOL:
        extras.append(f"{where} processes its items in a pool of {_plural(pool_size, 'process')}"
                      if m & Mode.DASK else f"{where} processes each partition's items in a pool of "
                      f"{_plural(pool_size, 'process')}")
    if m & Mode.CYTHON:
        extras.append("the app's worker code runs compiled with Cython")
    if m & Mode.RAPIDS:
        ctx = execution(m)
        if m & Mode.DASK:
            extras.append("one worker process per GPU (pinned with CUDA_VISIBLE_DEVICES)")
        in_ = {device.DRIVER: "the driver process", device.DASK_WORKER: "each worker",
               device.POOL_CHILD: "the pool's processes"}[ctx.process]
        extras.append(f"arrays on the GPU with CuPy in {in_}")
        if ctx.dataframe_module == "cudf.pandas":
            extras.append("pandas calls run through cudf.pandas (cuDF on the GPU, CPU fallback per call)")
        else:
            extras.append(f"pandas stays on the CPU in {in_} (cudf.pandas runs on Dask workers only, "
                          "modes 12 and 14)")
    if not extras and not m & Mode.DASK:
        extras.append("no parallelism")
    return head + body + ("; " + "; ".join(extras) if extras else "") + "."
