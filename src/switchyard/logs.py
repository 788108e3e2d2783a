"""Capturing subprocess output into log files as it is produced, and reading it back.

Every line a subprocess prints (stdout and stderr merged) is delivered as soon as
it is written, so a UI polling the log file or a callback sees progress live,
not at the end. Commands are argument lists, never shell strings.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import IO, Callable, Iterable, Mapping

LineCallback = Callable[[str], None]


class LineSink:
    """Appends lines to a log file (flushed per line) and calls ``on_line`` for each.

    Thread-safe: several process readers may write to one sink. A sink is itself a
    line callback, so it can be passed wherever ``on_line`` is expected.

    Args:
        path: The log file; created with its folder if missing, appended to otherwise.
        on_line: Optional callback receiving each line (without its newline).
    """

    def __init__(self, path: Path | str | None, on_line: LineCallback | None = None):
        self.path = Path(path) if path is not None else None
        self.on_line = on_line
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8", errors="replace")

    def write(self, line: str) -> None:
        """Record one line (a trailing newline is stripped)."""
        line = line.rstrip("\r\n")
        with self._lock:
            if self._file is not None and not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()
            callback = self.on_line
        if callback is not None:
            callback(line)

    __call__ = write

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()

    def __enter__(self) -> "LineSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def pump(
    stream: IO[bytes],
    on_line: LineCallback | None,
    prefix: str = "",
    keep: deque | None = None,
) -> threading.Thread:
    """Start a daemon thread delivering each line of ``stream`` to ``on_line`` as it arrives.

    Lines are decoded as UTF-8 (bad bytes replaced), prefixed with ``prefix`` and,
    when ``keep`` is given, also appended to it (a bounded deque keeps the last lines
    for error messages). The thread ends at end of stream.
    """

    def run() -> None:
        try:
            for raw in iter(stream.readline, b""):
                line = prefix + raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if keep is not None:
                    keep.append(line)
                if on_line is not None:
                    try:
                        on_line(line)
                    except Exception:  # a failing callback must not stop the capture
                        pass
        except (ValueError, OSError):  # stream closed under us during shutdown
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    thread = threading.Thread(target=run, name=f"pump{prefix.strip() or ''}", daemon=True)
    thread.start()
    return thread


def stream_process(
    cmd: list[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    on_line: LineCallback | None,
    prefix: str = "",
    keep: deque | None = None,
) -> int:
    """Run ``cmd`` to completion, delivering each output line (stdout+stderr) as produced.

    Args:
        cmd: The program and its arguments (a list, never a shell string).
        env: Environment variables of the process (default: inherit).
        cwd: Working directory.
        on_line: Called with each line, prefixed with ``prefix``.
        prefix: Text put before every line, e.g. ``"[uv] "``.
        keep: Optional deque receiving the lines too (e.g. the last lines for an error).

    Returns:
        The exit code of the process.
    """
    if isinstance(cmd, (str, bytes)):
        raise TypeError("stream_process takes an argument list, not a shell string")
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        cwd=str(cwd) if cwd is not None else None,
    )
    assert proc.stdout is not None
    reader = pump(proc.stdout, on_line, prefix, keep)
    code = proc.wait()
    reader.join()
    return code


def tail(path: Path | str, n: int = 200) -> list[str]:
    """The last ``n`` lines of a text file ([] if it does not exist)."""
    path = Path(path)
    if n <= 0 or not path.is_file():
        return []
    block = 64 * 1024
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        data = b""
        pos = end
        # Read backwards in blocks until enough newlines were seen: logs can be large.
        while pos > 0 and data.count(b"\n") <= n:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-n:]


def tail_bytes(path: Path | str, max_bytes: int = 64 * 1024) -> tuple[str, int, int]:
    """At most the last ``max_bytes`` of a text file, from a line start: (text, bytes shown,
    file size). ("", 0, 0) if it does not exist. A page shows this, never a whole log."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - int(max_bytes))
            f.seek(start)
            data = f.read(size - start)
    except FileNotFoundError:
        return "", 0, 0
    if start > 0:  # drop the partial first line
        cut = data.find(b"\n")
        data = data[cut + 1:] if cut >= 0 else b""
    return data.decode("utf-8", errors="replace"), len(data), size


def follow(path: Path | str, offset: int = 0) -> tuple[list[str], int]:
    """Complete lines written to ``path`` since byte ``offset``, and the offset to poll from next.

    A partial last line (still being written) is left for the next call. If the file
    shrank (rotated or rewritten), reading restarts at 0.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return [], offset
    if size < offset:
        offset = 0
    if size == offset:
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size - offset)
    cut = data.rfind(b"\n")
    if cut < 0:
        return [], offset
    chunk = data[: cut + 1]
    lines = chunk.decode("utf-8", errors="replace").splitlines()
    return lines, offset + len(chunk)


def last_lines(lines: Iterable[str], n: int = 5) -> str:
    """The last ``n`` non-empty lines joined with `` | `` (for one-line error messages)."""
    kept = [s.strip() for s in lines if s.strip()]
    return " | ".join(kept[-n:])


# Engine output: what Dask says, split from what people read ---------------------------------
#
# A run's cluster prints a few dozen ``distributed.* - INFO`` lines per process before the first
# batch. They go to ``engine.log``; ``run.log`` keeps the driver's lines, the app's output and
# tracebacks, and engine messages at WARNING and above.

ENGINE_LOGGERS = ("distributed", "dask", "tornado", "asyncio", "bokeh")
_PREFIX = re.compile(r"^(\[[^\]]+\] )")
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[,.]\d+ - ([\w.]+) - (DEBUG|INFO|WARNING|ERROR|CRITICAL) - ")
_CHATTER_LEVELS = ("DEBUG", "INFO")


def engine_record(line: str) -> tuple[str, str] | None:
    """(logger, level) when ``line`` (``[source] `` prefix allowed) is a log record of the engine."""
    m = _PREFIX.match(line)
    rest = line[m.end():] if m else line
    r = _RECORD.match(rest)
    if r is None or r.group(1).split(".")[0] not in ENGINE_LOGGERS:
        return None
    return r.group(1), r.group(2)


class EngineSplit:
    """Decides, line by line, whether an engine line is also for people (``run.log``).

    Every line is engine output; :meth:`for_people` is False for the engine's records
    below WARNING and for their indented continuation lines (per ``[source]``), so an app's
    print or a traceback after an INFO record is still shown.
    """

    def __init__(self) -> None:
        self._hidden: dict[str, bool] = {}  # source prefix -> its last record was chatter

    def for_people(self, line: str) -> bool:
        m = _PREFIX.match(line)
        source = m.group(1) if m else ""
        rest = line[m.end():] if m else line
        if "Run out-of-band function" in rest:  # every look at what workers execute: not news
            return False
        rec = engine_record(line)
        if rec is not None:
            hidden = rec[1] in _CHATTER_LEVELS
            self._hidden[source] = hidden
            return not hidden
        if rest[:1].isspace() and self._hidden.get(source):
            return False
        self._hidden[source] = False
        return True


def count_lines(path: Path | str) -> int:
    """Lines in a text file (0 if missing), read in blocks."""
    try:
        with open(path, "rb") as f:
            return sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0
