"""The driver in this process on a real store, with a small app whose batches can fail or be slow.

No Dask here (the LocalExecutor runs batches in a thread); the Dask paths are covered
by tests/integration/test_faults.py and test_lifecycle.py.
"""

from __future__ import annotations

import json
import pickle
import textwrap
import threading
import time
from pathlib import Path

import pytest

from switchyard.app import Partition
from switchyard.exceptions import InvalidTransition
from switchyard.runs import checkpoints
from switchyard.runs.driver import Driver, backoff, checkpoint_path
from switchyard.runs.request import RunRequest
from switchyard.runs.state import BatchStatus, Status
from switchyard.runs.store import RunStore

FLAKY = '''
import json
import time
from pathlib import Path

from switchyard.app import App, Args, Partition


class FlakyArgs(Args):
    batches: int = 4
    delay: float = 0.0
    fail: list[int] = []       # always fail until data_dir/fixed-<i> exists
    fail_once: list[int] = []  # fail on their first execution only


class Flaky(App):
    Args = FlakyArgs

    def partitions(self):
        return [Partition(name=f"b{i}", weight=1.0, items=(i,)) for i in range(self.args.batches)]

    def work(self, partition, map_items=map):
        i = partition.items[0]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        runs = self.data_dir / "executions.log"
        with open(runs, "a") as f:
            f.write(f"{i}\\n")
        time.sleep(self.args.delay)
        if i in self.args.fail and not (self.data_dir / f"fixed-{i}").exists():
            raise ValueError(f"batch {i} is broken")
        if i in self.args.fail_once and runs.read_text().split().count(str(i)) == 1:
            raise RuntimeError(f"batch {i} flaked")
        return {"batch": i, "square": i * i}

    def reduce(self, results, output_dir):
        out = Path(output_dir) / "out.json"
        out.write_text(json.dumps(results))
        return out
'''


class Bench:
    """A workspace with the flaky app and a store; makes orchestrations and runs drivers."""

    def __init__(self, root: Path):
        self.root = root
        self.app_dir = root / "apps" / "flaky"
        (self.app_dir / "flaky").mkdir(parents=True)
        (self.app_dir / "flaky" / "__init__.py").write_text(textwrap.dedent(FLAKY))
        self.data = root / "home" / "data" / "flaky"  # the app's data folder in the workspace
        self.store = RunStore(root / "home" / "switchyard.db")

    def create(self, max_attempts: int = 2, max_inflight: int = 0, **args) -> str:
        args = {"batches": 4, **args}
        parts = [Partition(name=f"b{i}", weight=1.0, items=(i,)) for i in range(args["batches"])]
        oid = self.store.new_id()
        run_dir = self.root / "home" / "runs" / oid
        run_dir.mkdir(parents=True)
        request = RunRequest(app="flaky", apps_dir=str(self.app_dir.parent), mode=0, scheduler="127.0.0.1:0",
                             workers={"127.0.0.1": 1}, args=args, cluster="none", max_attempts=max_attempts,
                             max_inflight=max_inflight, options={"backoff_base": 0.05, "backoff_cap": 0.1})
        return self.store.create_orchestration(
            oid=oid, kind="app", app="flaky", mode=0, args=args, workers={"127.0.0.1": 1},
            scheduler=None, plan_fingerprint=None, run_dir=run_dir, request=request.to_dict(),
            batches=[{"name": p.name, "items": 1, "planned_worker": "driver", "payload": pickle.dumps(p.items)}
                     for p in parts],
            options={"apps_dir": str(self.app_dir.parent)}, attempts_limit=max_attempts)

    def drive(self, oid: str) -> Status:
        return Driver(oid, self.store, owner=f"test-{time.monotonic_ns()}").run()

    def executions(self) -> list[int]:
        path = self.data / "executions.log"
        return [int(x) for x in path.read_text().split()] if path.exists() else []

    def wait_for(self, predicate, timeout: float = 20.0) -> None:
        deadline = time.time() + timeout
        while not predicate():
            assert time.time() < deadline, "condition not reached in time"
            time.sleep(0.02)


@pytest.fixture
def bench(tmp_path):
    b = Bench(tmp_path)
    yield b
    b.store.close()


def in_thread(fn, *args):
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("result", fn(*args)), daemon=True)
    t.start()
    return t, box


def test_backoff_doubles_up_to_its_cap():
    assert [backoff(a, 0.5, 3.0) for a in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_a_run_checkpoints_every_batch_once_and_reduces_in_order(bench):
    oid = bench.create(batches=5)
    assert bench.drive(oid) is Status.COMPLETED
    o = bench.store.get(oid)
    assert (o.status, o.completed_batches, o.lease_owner) == (Status.COMPLETED, 5, None)
    assert sorted(bench.executions()) == [0, 1, 2, 3, 4]
    run_dir = Path(o.run_dir)
    # one group file (5 batches < a group) holding one record per batch
    assert [p.suffix for p in (run_dir / "batches").iterdir()] == [".ckpt"]
    assert sorted(checkpoints.index(run_dir)) == [0, 1, 2, 3, 4]
    assert [r["batch"] for r in json.loads(Path(o.output).read_text())] == [0, 1, 2, 3, 4]
    assert all(b.attempts == 1 and b.worker for b in bench.store.batches(oid))


def test_a_flaky_batch_is_retried_after_a_backoff(bench):
    oid = bench.create(fail_once=[1])
    assert bench.drive(oid) is Status.COMPLETED
    b1 = bench.store.batches(oid)[1]
    assert (b1.status, b1.attempts, b1.error) == (BatchStatus.COMPLETED, 2, None)
    assert bench.executions().count(1) == 2
    assert "(attempt 1/2): RuntimeError: batch 1 flaked; retry in 0.1 s" in \
        (Path(bench.store.get(oid).run_dir) / "run.log").read_text()


def test_an_exhausted_batch_is_dead_lettered_and_retry_runs_only_what_is_not_completed(bench):
    oid = bench.create(fail=[2], max_attempts=2)
    assert bench.drive(oid) is Status.FAILED
    o = bench.store.get(oid)
    assert "1 of 4 batches failed after 2 attempts: b2: ValueError: batch 2 is broken" == o.error
    dead = bench.store.dead_letters(oid)
    assert [(d.idx, d.attempts, d.error) for d in dead] == [(2, 2, "ValueError: batch 2 is broken")]
    assert sorted(bench.executions()) == [0, 1, 2, 2, 3]
    (bench.data / "fixed-2").touch()
    bench.store.command(oid, "retry")
    assert bench.drive(oid) is Status.COMPLETED
    assert sorted(bench.executions()) == [0, 1, 2, 2, 2, 3]  # only batch 2 ran again


def test_pause_lets_the_executing_batch_finish_and_resume_runs_the_rest_once(bench):
    oid = bench.create(batches=6, delay=0.3)
    t, box = in_thread(bench.drive, oid)
    bench.wait_for(lambda: bench.store.get(oid).completed_batches >= 1)
    asked = time.monotonic()
    bench.store.command(oid, "pause")
    t.join(10)
    latency = time.monotonic() - asked
    assert box["result"] is Status.PAUSED
    assert latency < 0.3 + 1.0, latency  # one batch duration + 1 s
    o = bench.store.get(oid)
    assert o.status is Status.PAUSED and 1 <= o.completed_batches < 6
    counts = bench.store.batch_counts(oid)
    assert counts["running"] == 0 and counts["pending"] == 6 - o.completed_batches
    ran = len(bench.executions())
    time.sleep(0.5)
    assert len(bench.executions()) == ran == o.completed_batches  # nothing started while paused
    bench.store.command(oid, "resume")
    assert bench.drive(oid) is Status.COMPLETED
    assert sorted(bench.executions()) == list(range(6))


def test_cancel_stops_for_good(bench):
    oid = bench.create(batches=6, delay=0.3)
    t, box = in_thread(bench.drive, oid)
    bench.wait_for(lambda: bench.store.get(oid).completed_batches >= 1)
    bench.store.command(oid, "cancel")
    t.join(10)
    assert box["result"] is Status.CANCELLED
    counts = bench.store.batch_counts(oid)
    assert counts["pending"] == counts["running"] == 0 and counts["cancelled"] >= 3
    ran = len(bench.executions())
    time.sleep(0.5)
    assert len(bench.executions()) == ran <= 3
    with pytest.raises(InvalidTransition, match="is cancelled"):
        bench.store.command(oid, "resume")


def test_a_checkpoint_written_but_never_recorded_is_adopted_not_re_executed(bench):
    oid = bench.create(batches=3)
    run_dir = Path(bench.store.get(oid).run_dir)
    path = checkpoint_path(run_dir, 1)
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"batch": 1, "square": 1}))  # the last act of a killed driver
    assert bench.drive(oid) is Status.COMPLETED
    assert sorted(bench.executions()) == [0, 2]
    assert bench.store.batches(oid)[1].status is BatchStatus.COMPLETED


def test_a_driver_declared_gone_stops_without_recording(bench):
    oid = bench.create(batches=6, delay=0.3)
    t, box = in_thread(bench.drive, oid)
    bench.wait_for(lambda: bench.store.get(oid).completed_batches >= 1)
    assert bench.store.sweep(now=time.time() + 60) == [oid]  # as if its heartbeats stopped
    t.join(10)
    assert box["result"] is Status.INTERRUPTED
    kinds = [e["kind"] for e in bench.store.events(oid)]
    assert "fail" not in kinds and "complete" not in kinds
    bench.store.command(oid, "resume")
    assert bench.drive(oid) is Status.COMPLETED
    assert bench.store.get(oid).completed_batches == 6


def test_a_dead_letter_requeued_while_running_is_picked_up(bench):
    from switchyard.runs import control

    oid = bench.create(batches=5, delay=0.25, fail=[0], max_attempts=1)  # dead at once, 4 to go
    t, box = in_thread(bench.drive, oid)
    bench.wait_for(lambda: bench.store.dead_letters(oid))
    (bench.data / "fixed-0").touch()
    assert control.reprocess(bench.store, oid) == [0]
    t.join(20)
    assert box["result"] is Status.COMPLETED
    assert bench.executions().count(0) == 2


def test_the_in_flight_cap_limits_what_is_submitted(bench):
    oid = bench.create(batches=4, delay=0.2, max_inflight=1)
    seen = []
    driver = Driver(oid, bench.store, owner="capped")

    def watch():
        while "result" not in box:
            if driver.source.executor is not None:
                seen.append(len(driver.source.executor._keys))
            time.sleep(0.01)

    t, box = in_thread(driver.run)
    w = threading.Thread(target=watch, daemon=True)
    w.start()
    t.join(20)
    w.join(2)
    assert box["result"] is Status.COMPLETED
    assert seen and max(seen) == 1


def test_a_lost_checkpoint_is_run_again_before_reducing(bench):
    oid = bench.create(batches=3, delay=0.2)
    t, box = in_thread(bench.drive, oid)
    bench.wait_for(lambda: bench.store.get(oid).completed_batches >= 1)
    done = next(b.idx for b in bench.store.batches(oid) if b.status is BatchStatus.COMPLETED)
    path, offset, length = checkpoints.index(Path(bench.store.get(oid).run_dir))[done]
    with open(path, "r+b") as f:  # what a power loss can leave of a file written without fsync
        f.seek(offset)
        f.write(b"\0" * length)
    t.join(20)
    assert box["result"] is Status.COMPLETED
    assert bench.executions().count(done) == 2
    assert [r["batch"] for r in json.loads(Path(bench.store.get(oid).output).read_text())] == [0, 1, 2]
    assert any(e["kind"] == "reopen" for e in bench.store.events(oid))
