"""Helpers for the lifecycle and fault tests: long montecarlo runs and reading their state.

A batch draws SAMPLES random points in plain Python (~0.25 s on an idle core), so a
run of a dozen batches lasts a few seconds: long enough to pause, cancel or kill
something in the middle, short enough to keep the tests bounded.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

from switchyard.app import AppEnv
from switchyard.runs import agent, control
from switchyard.runs.store import RunStore

from .conftest import cli_json

SAMPLES = 300_000


def start_long_run(home: Path, apps: Path, tasks: int, mode: int = 4, workers: str = "127.0.0.1:2") -> str:
    out = cli_json("run", "montecarlo", "--mode", str(mode), "--detach", "--workers", workers,
                   "--arg", f"tasks={tasks}", "--arg", f"samples_per_task={SAMPLES}", "--arg", "chunks=1",
                   home=home, apps=apps)
    return out["orchestration_id"]


def store_of(home: Path) -> RunStore:
    return RunStore(home / "switchyard.db")


def wait_until(predicate, timeout: float, what: str, poll: float = 0.1):
    deadline = time.time() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g} s")
        time.sleep(poll)


def status_of(store: RunStore, oid: str) -> str:
    control.sweep(store)  # as every reader does
    return store.status(oid).value


def wait_status(store: RunStore, oid: str, wanted: set[str], timeout: float = 90) -> str:
    return wait_until(lambda: (s := status_of(store, oid)) in wanted and s, timeout,
                      f"orchestration {oid} reaching {sorted(wanted)} (last: {store.status(oid).value}; "
                      f"log: {tail_log(store, oid)})")


def tail_log(store: RunStore, oid: str, n: int = 15) -> str:
    from switchyard.logs import tail

    lines = [x for x in tail(control.log_path(store, oid), 400) if "distributed." not in x]
    return " | ".join(lines[-n:])


def completions_in_log(store: RunStore, oid: str) -> Counter:
    """How many times the run log says each batch completed (one line per checkpoint written)."""
    text = control.log_path(store, oid).read_text()
    return Counter(int(m) for m in re.findall(r"^batch (\d+)/\d+ \S+ completed on ", text, re.M))


def checkpoints(store: RunStore, oid: str) -> dict[int, tuple[str, int, int]]:
    """Batch index -> (group file, offset, CRC of the bytes) of its checkpoint record: a
    rewrite changes them. Every batch has exactly one record (none written twice)."""
    import zlib

    from switchyard.runs.checkpoints import records

    found = records(Path(store.get(oid).run_dir))
    counts = Counter(idx for idx, *_ in found)
    assert all(n == 1 for n in counts.values()), {i: n for i, n in counts.items() if n > 1}
    out = {}
    for idx, path, offset, length in found:
        with open(path, "rb") as f:
            f.seek(offset)
            out[idx] = (path, offset, zlib.crc32(f.read(length)))
    return out


def event_time(store: RunStore, oid: str, kind: str) -> float:
    return [e["at"] for e in store.events(oid) if e["kind"] == kind][-1]


def assert_output_complete(store: RunStore, oid: str, tasks: int) -> None:
    import pandas as pd

    o = store.get(oid)
    assert o.status.value == "completed", o.error
    assert o.completed_batches == o.total_batches == tasks
    frame = pd.read_parquet(o.output)
    assert sorted(frame["task"]) == list(range(tasks))  # every batch's output exactly once
    assert (frame["samples"] == SAMPLES).all()
    assert sorted(checkpoints(store, oid)) == list(range(tasks))
    assert completions_in_log(store, oid) == Counter({i + 1: 1 for i in range(tasks)})


# ----------------------------------------------------------------------------- the run agent

def agent_record(home: Path, app: str) -> dict:
    return agent.Target(home, app, False).read_record()


def warm_agent(app_env: AppEnv) -> int:
    """Install the app's environment and start its agent (if needed); return the agent's pid."""
    from switchyard.cluster.env import install_local

    assert install_local(app_env).ok
    assert agent.warm_up(app_env, wait=60)
    return agent_record(app_env.home, app_env.app)["pid"]


def agent_log(home: Path, app: str) -> str:
    return agent.Target(home, app, False).log.read_text()


def forked(home: Path, app: str, oid: str) -> list[int]:
    """The pids the agent forked for ``oid`` (from its log)."""
    started = re.findall(rf"driver pid (\d+) started for orchestration {oid} ", agent_log(home, app))
    return [int(p) for p in started]
