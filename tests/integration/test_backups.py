"""Straggler backups on a real 2-worker Dask LocalCluster (processes, nannies), a real driver and store.

A batch ``slow`` whose original copy sleeps long while its backup copy is quick (the
backup wins), then the other way round (the original wins). Either way: one completed
row per partition, one checkpoint record per partition, each partition once in the
reduced output, the log says which copy won, and nothing of the run still executes on
the workers when the driver returns (the loser was stopped, its worker restarted).
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path

import pytest

from switchyard.runs import checkpoints
from switchyard.runs.backups import stopped_copies
from switchyard.runs.driver import Driver
from switchyard.runs.request import RunRequest
from switchyard.runs.store import RunStore
from switchyard.ui.batch_views import STOPPED_COPY, timeline_figure

from ..conftest import make_tiny_app
from .test_honest_control import executing_on_workers

STRAGGLE = '''
import time
from pathlib import Path

from switchyard.app import App, Args, Partition


class StraggleArgs(Args):
    n: int = 4
    seconds: float = 0.15
    slow: float = 3.0
    slow_backup: float = 0.1
    marker_dir: str = ""


class Straggle(App):
    Args = StraggleArgs
    pure_batches = True

    def partitions(self):
        return [Partition(name="slow", weight=1.0, items=("slow",))] + [
            Partition(name=f"p{i}", weight=1.0, items=(f"p{i}",)) for i in range(self.args.n)]

    def work(self, partition, map_items=map):
        from distributed import get_worker

        from switchyard.runs.backups import is_backup_key

        name = partition.items[0]
        if name != "slow":
            time.sleep(self.args.seconds)
            return name
        copy = "backup" if is_backup_key(get_worker().get_current_task()) else "original"
        time.sleep(self.args.slow_backup if copy == "backup" else self.args.slow)
        if self.args.marker_dir:
            Path(self.args.marker_dir, f"slow-{copy}").write_text("ran to its end")
        return name

    def reduce(self, results, output_dir):
        output_dir.mkdir(parents=True, exist_ok=True)
        path = output_dir / "names.txt"
        path.write_text(" ".join(results))
        return path
'''


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        with Client(c) as client:
            yield c.scheduler_address, client


def one_run(store: RunStore, apps: Path, address: str, args: dict, backups: bool = True,
            plan: dict | None = None, parts: list[str] | None = None) -> tuple[str, Path]:
    parts = parts or ["slow"] + [f"p{i}" for i in range(args["n"])]
    oid = store.new_id()
    run_dir = store.path.parent / "runs" / oid
    run_dir.mkdir(parents=True)
    if plan is not None:
        (run_dir / "plan.json").write_text(json.dumps(plan))
    request = RunRequest(app="straggle", apps_dir=str(apps), mode=4, scheduler=address,
                         workers={"127.0.0.1": 2}, args=args, cluster="existing", options={"backups": backups})
    store.create_orchestration(
        oid=oid, kind="app", app="straggle", mode=4, args=args, workers={"127.0.0.1": 2}, scheduler=address,
        plan_fingerprint=None, run_dir=run_dir, request=request.to_dict(),
        batches=[{"name": p, "items": 1, "payload": pickle.dumps((p,)),
                  "planned_worker": next((s["id"] for s in (plan or {}).get("slots", ())
                                          if any(q["name"] == p for q in s["partitions"])), "")} for p in parts],
        options={"apps_dir": str(apps)})
    assert Driver(oid, store, owner="backup-test").run().value == "completed"
    return oid, run_dir


def test_a_backup_never_yields_two_results_whichever_copy_wins(tmp_path, cluster, monkeypatch):
    address, client = cluster
    apps, home = tmp_path / "apps", tmp_path / "home"
    make_tiny_app(apps, "straggle", dependencies=(), init=STRAGGLE)
    # the cluster is one this workspace records as its own, so a losing copy's worker may be restarted
    monkeypatch.setenv("SWITCHYARD_HOME", str(home))
    (home / "clusters").mkdir(parents=True)
    (home / "clusters" / "straggle.json").write_text(json.dumps({"address": address}))
    store = RunStore(home / "switchyard.db")
    marks = tmp_path / "marks"
    marks.mkdir()

    for winner, loser, slow, slow_backup in (("backup", "original", 30.0, 0.1), ("original", "backup", 3.0, 30.0)):
        for p in marks.iterdir():
            p.unlink()
        started = time.time()
        oid, run_dir = one_run(store, apps, address, {"n": 4, "seconds": 0.15, "slow": slow,
                                                      "slow_backup": slow_backup, "marker_dir": str(marks)})
        # nothing of the run executes on the workers any more (asked of the workers themselves)
        assert not executing_on_workers(client, f"{oid}-"), winner
        assert time.time() - started < 20.0, f"the {loser} ({max(slow, slow_backup)} s) was waited for"
        log = (run_dir / "run.log").read_text()
        assert "backup of batch 1/5 slow on " in log, log[-3000:]
        assert f"batch 1/5 slow: the {winner} on " in log and "won (" in log, log[-3000:]
        assert {p.name for p in marks.iterdir()} == {f"slow-{winner}"}  # the loser never reached its end
        # one result per partition: the store, the checkpoint files, the reduced output
        rows = store.batches(oid)
        assert [(b.name, b.status.value, b.attempts) for b in rows] == [
            (n, "completed", 1) for n in ["slow", "p0", "p1", "p2", "p3"]]
        assert store.get(oid).completed_batches == 5
        recorded = sorted(idx for idx, *_ in checkpoints.records(run_dir))
        assert recorded == [0, 1, 2, 3, 4], recorded
        assert Path(store.get(oid).output).read_text() == "slow p0 p1 p2 p3"
        doc = json.loads((run_dir / "backups.json").read_text())["backups"]
        assert [(b["name"], b["winner"]) for b in doc] == [("slow", winner)]
        slow_row = rows[0]
        assert slow_row.worker == doc[0]["backup_worker" if winner == "backup" else "original_worker"]
        assert doc[0]["backup_worker"] != doc[0]["original_worker"]
        # the Orchestrations timeline draws the stopped copy on its worker, until the winner's end
        copies = stopped_copies(run_dir)
        loser_worker = doc[0][f"{loser}_worker"]
        assert [(c["name"], c["copy"], c["worker"]) for c in copies] == [("slow", loser, loser_worker)]
        assert copies[0]["start"] < copies[0]["end"] == pytest.approx(slow_row.ended_at)
        bars = {t.name: list(t.y) for t in timeline_figure(rows, stopped=copies).data}
        assert bars[STOPPED_COPY] == [loser_worker] and len(bars["completed"]) == 5
    store.close()


def test_a_plan_from_measured_costs_is_followed_worker_by_worker(tmp_path, cluster, monkeypatch):
    """The big batch (planned after a small one in index order) starts first and runs alone on its
    worker; the other worker, done with its own list, takes the small one from it (the driver
    steals, knowing the costs)."""
    address, client = cluster
    apps, home = tmp_path / "apps", tmp_path / "home"
    make_tiny_app(apps, "straggle", dependencies=(), init=STRAGGLE)
    monkeypatch.setenv("SWITCHYARD_HOME", str(home))
    store = RunStore(home / "switchyard.db")
    part = lambda name, index, cost: {"name": name, "weight": cost, "index": index, "cost": cost}  # noqa: E731
    plan = {"costs": {"source": "measured"}, "slots": [
        {"id": "127.0.0.1-0", "partitions": [part("p0", 0, 0.15), part("slow", 4, 1.5)]},
        {"id": "127.0.0.1-1", "partitions": [part(f"p{i}", i, 0.15) for i in (1, 2, 3)]}]}
    oid, run_dir = one_run(store, apps, address, {"n": 4, "seconds": 0.15, "slow": 1.5}, backups=False, plan=plan,
                           parts=["p0", "p1", "p2", "p3", "slow"])
    assert "following the plan from measured costs" in (run_dir / "run.log").read_text()
    rows = {b.name: b for b in store.batches(oid)}
    assert rows["p0"].planned_worker == rows["slow"].planned_worker == "127.0.0.1-0"
    assert {rows[f"p{i}"].worker for i in range(4)} == {rows["p1"].worker} != {rows["slow"].worker}
    assert rows["slow"].started_at < rows["p0"].started_at  # biggest first, though planned after p0
    assert not (run_dir / "backups.json").exists()
    store.close()
