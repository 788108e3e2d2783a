"""Batch results on disk: append-only files per group of batches, read back as a stream.

A run of 100,000 batches used to leave 100,000 files (394 MB for empty results: a
file costs a block). Now each driver appends its results to one file per group of
:data:`GROUP_SIZE` consecutive batch indices (``batches/g<group>-<writer>.ckpt``): a
record is a header (magic, batch index, length, CRC-32) and the pickled result,
written with one ``write`` call and flushed to the kernel before the batch is recorded
in the store, so a killed driver never leaves a recorded batch without its result (a
crash mid-write leaves at most a torn last record, which the CRC rejects: that batch
was not recorded and runs again). No fsync, as before: a power loss may lose the last
records like the store's last commits, and a batch whose record is missing or corrupt
at the end runs again. Each driver writes its own files, so two drivers of one run
(one dead, one resumed) never append to the same file.

Runs checkpointed by an earlier engine (one ``batches/<idx>.pkl`` per batch) are read
the same way.
"""

from __future__ import annotations

import os
import pickle
import secrets
import struct
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Iterator

GROUP_SIZE = 1000
_HEADER = struct.Struct("<4sIQI")  # magic, batch index, payload length, crc32 of the payload
_MAGIC = b"SYC1"
_OPEN_FILES = 8


def legacy_path(run_dir: Path, idx: int) -> Path:
    """Where the first engine kept batch ``idx``'s result (one pickle per batch)."""
    return Path(run_dir) / "batches" / f"{idx:06d}.pkl"


def location(path: Path | str, offset: int) -> str:
    """A record's address as the store keeps it (``output_path``)."""
    return f"{path}@{offset}"


class Writer:
    """Appends results of one driver to its group files; :meth:`write` returns the location."""

    def __init__(self, run_dir: Path, group_size: int = GROUP_SIZE):
        self.folder = Path(run_dir) / "batches"
        self.group_size = int(group_size)
        self.name = f"{os.getpid()}-{secrets.token_hex(3)}"
        self._files: OrderedDict[int, Any] = OrderedDict()

    def path(self, group: int) -> Path:
        return self.folder / f"g{group:06d}-{self.name}.ckpt"

    def _file(self, group: int):
        f = self._files.pop(group, None)
        if f is None:
            if len(self._files) >= _OPEN_FILES:
                self._files.popitem(last=False)[1].close()
            try:
                f = open(self.path(group), "ab", buffering=0)
            except FileNotFoundError:
                self.folder.mkdir(parents=True, exist_ok=True)
                f = open(self.path(group), "ab", buffering=0)
        self._files[group] = f
        return f

    def write(self, idx: int, result: Any) -> str:
        data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        group = idx // self.group_size
        f = self._file(group)
        offset = f.seek(0, os.SEEK_END)
        f.write(_HEADER.pack(_MAGIC, idx, len(data), zlib.crc32(data)) + data)  # unbuffered: one write
        return location(self.path(group), offset)

    def close(self) -> None:
        while self._files:
            self._files.popitem()[1].close()


def _records(path: Path) -> Iterator[tuple[int, int, int]]:
    """(idx, payload offset, length) of the valid records of one group file, in file order.
    A record whose payload fails its CRC is skipped; a torn record or a bad header ends the
    file (nothing after it can be trusted to start a record)."""
    try:
        f = open(path, "rb")
    except OSError:
        return
    with f:
        offset = 0
        while True:
            head = f.read(_HEADER.size)
            if len(head) < _HEADER.size:
                return
            magic, idx, length, crc = _HEADER.unpack(head)
            data = f.read(length) if magic == _MAGIC else b""
            if magic != _MAGIC or len(data) != length:
                return
            if zlib.crc32(data) == crc:
                yield idx, offset + _HEADER.size, length
            offset += _HEADER.size + length


def records(run_dir: Path) -> list[tuple[int, str, int, int]]:
    """Every valid record of the run's group files: (idx, file, payload offset, length),
    duplicates included (a batch has one unless it was executed twice)."""
    folder = Path(run_dir) / "batches"
    if not folder.is_dir():
        return []
    return [(idx, str(path), offset, length) for path in sorted(folder.glob("g*.ckpt"))
            for idx, offset, length in _records(path)]


def index(run_dir: Path) -> dict[int, tuple[str, int, int]]:
    """Batch index -> (file, payload offset, length; -1 for a whole legacy file) of every
    readable result of the run. The first valid record of a batch wins."""
    folder = Path(run_dir) / "batches"
    found: dict[int, tuple[str, int, int]] = {}
    if not folder.is_dir():
        return found
    for idx, path, offset, length in records(run_dir):
        found.setdefault(idx, (path, offset, length))
    for path in folder.glob("[0-9]*.pkl"):  # the first engine's, and what a test plants
        try:
            idx = int(path.stem)
            with open(path, "rb") as f:
                pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError, ValueError):
            continue
        found.setdefault(idx, (str(path), 0, -1))
    return found


def disk_bytes(run_dir: Path) -> int:
    """Bytes the run's checkpoints take on disk (allocated blocks)."""
    folder = Path(run_dir) / "batches"
    return sum(p.stat().st_blocks * 512 for p in folder.iterdir()) if folder.is_dir() else 0


class Results(Sequence):
    """The results of batches ``0 .. total-1`` in partition order, read from disk as they
    are asked for: ``reduce`` iterates them without the run's results all in memory."""

    def __init__(self, where: dict[int, tuple[str, int, int]], total: int):
        self._where = where
        self._total = int(total)
        self._files: OrderedDict[str, Any] = OrderedDict()

    def __len__(self) -> int:
        return self._total

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._total))]
        if i < 0:
            i += self._total
        if not 0 <= i < self._total:
            raise IndexError(i)
        path, offset, length = self._where[i]
        if length < 0:
            with open(path, "rb") as f:
                return pickle.load(f)
        f = self._files.pop(path, None) or open(path, "rb")
        self._files[path] = f
        if len(self._files) > _OPEN_FILES:
            self._files.popitem(last=False)[1].close()
        f.seek(offset)
        return pickle.loads(f.read(length))

    def __iter__(self) -> Iterator[Any]:
        for i in range(self._total):
            yield self[i]

    def close(self) -> None:
        while self._files:
            self._files.popitem()[1].close()
