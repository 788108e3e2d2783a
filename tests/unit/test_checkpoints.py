"""Grouped checkpoints on real files: one append-only file per group and writer, a torn last
record or a corrupt one rejected, the first engine's per-batch files still read, results
streamed in partition order."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

from switchyard.runs import checkpoints
from switchyard.runs.checkpoints import Results, Writer, disk_bytes, index, legacy_path, records


def test_groups_records_and_streamed_results(tmp_path):
    w = Writer(tmp_path, group_size=10)
    for i in (3, 1, 12, 0, 2):  # completion order, not index order
        w.write(i, {"batch": i})
    w.close()
    files = sorted(p.name for p in (tmp_path / "batches").iterdir())
    assert len(files) == 2 and files[0].startswith("g000000-") and files[1].startswith("g000001-")
    legacy = legacy_path(tmp_path, 4)
    legacy.write_bytes(pickle.dumps({"batch": 4}))  # a run checkpointed by the first engine
    where = index(tmp_path)
    assert sorted(where) == [0, 1, 2, 3, 4, 12]
    res = Results({i: where[i] for i in range(5)}, 5)
    assert [r["batch"] for r in res] == [0, 1, 2, 3, 4] and len(res) == 5 and res[-1] == {"batch": 4}
    assert [r["batch"] for r in res] == [0, 1, 2, 3, 4]  # iterable again
    res.close()
    assert 0 < disk_bytes(tmp_path) <= 3 * 8192


def test_a_torn_or_corrupt_record_is_rejected_and_the_others_kept(tmp_path):
    w = Writer(tmp_path, group_size=100)
    for i in range(4):
        w.write(i, list(range(i * 10)))
    w.close()
    (path,) = (tmp_path / "batches").iterdir()
    _, _, offset, length = [r for r in records(tmp_path) if r[0] == 1][0]
    with open(path, "r+b") as f:
        f.seek(offset + length - 1)
        f.write(b"\x00")  # a flipped byte inside batch 1's result
    with open(path, "ab") as f:
        f.write(checkpoints._HEADER.pack(checkpoints._MAGIC, 9, 1000, 0) + b"torn")  # a crash mid-write
    assert sorted(index(tmp_path)) == [0, 2, 3]


def test_a_killed_writer_leaves_every_returned_location_readable(tmp_path):
    """kill -9 right after write() returned: the record is in the file (no buffer lost)."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        from switchyard.runs.checkpoints import Writer
        w = Writer({str(tmp_path)!r})
        for i in range(50):
            w.write(i, b"x" * 1000)
        print(w.write(50, "last"), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ), timeout=60)
    assert proc.returncode == -9 and "@" in proc.stdout
    where = index(tmp_path)
    assert sorted(where) == list(range(51))
    assert Results(where, 51)[50] == "last"
