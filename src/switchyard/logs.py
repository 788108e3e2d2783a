"""Capturing subprocess output into log files as it is produced, and reading it back.

Every line a subprocess prints (stdout and stderr merged) is delivered as soon as
it is written, so a UI polling the log file or a callback sees progress live,
not at the end. Commands are argument lists, never shell strings.
"""

from __future__ import annotations

import os
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
