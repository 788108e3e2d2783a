"""Execution modes: bit flags, their ``rdcp`` string form, the mode hint, machine checks.

pool = 1, cython = 2, dask = 4, rapids = 8 (0..15). The string form lists the bits
from high to low as ``r d c p`` with ``_`` for an unset bit: 5 is ``_d_p``.
Each bit means one thing only: dask does not imply pool.
"""

from __future__ import annotations

import importlib.util
import shutil
import sysconfig
from enum import IntFlag

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
    if m & Mode.RAPIDS and importlib.util.find_spec("cudf") is None:
        return (f"mode {int(m)} ({mode_string(m)}) needs the rapids bit's GPU dataframe library cudf, "
                "which is not importable here: install RAPIDS cudf on a GPU machine or turn rapids off")
    if m & Mode.CYTHON:
        if importlib.util.find_spec("Cython") is None:
            return f"mode {int(m)} ({mode_string(m)}) needs Cython: pip install cython, or turn cython off"
        cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
        if shutil.which(cc) is None and shutil.which("cc") is None:
            return (f"mode {int(m)} ({mode_string(m)}) needs a C compiler ('{cc}' not found): "
                    "install gcc (apt-get install build-essential) or turn cython off")
    return None


def check_supported(mode: int) -> Mode:
    reason = unsupported_reason(mode)
    if reason:
        raise ModeError(reason)
    return Mode(int(mode))


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word}es" if word.endswith("s") else f"{n} {word}s"


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
        extras.append("dataframes use the GPU (cudf)")
    if not extras and not m & Mode.DASK:
        extras.append("no parallelism")
    return head + body + ("; " + "; ".join(extras) if extras else "") + "."
