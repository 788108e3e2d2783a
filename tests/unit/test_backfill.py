"""Backfills without driver processes: keys and their validation, the plan over a real store,
the controller against a simulated world of runs, the CLI in this process, and the UI section."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys

import pytest

from switchyard.app import AppEnv
from switchyard.cli import main
from switchyard.exceptions import ArgsError, ScheduleError
from switchyard.runs.store import RunStore
from switchyard.schedule import backfill as bf
from switchyard.schedule.backfill_keys import (DATE, INT, OTHER, backfill_values, check_concurrency,
                                               expand_range, key_kind, preflight, split_keys)

T0 = 1_800_000_000.0
APP = "bfdaily"

SETTINGS = """\
[args]
day = "2026-01-01"
region = "north"
n = 1

[cluster]
pool = false
cython = false
dask = false
rapids = false
scheduler = "127.0.0.1:8786"

[cluster.workers]
"127.0.0.1" = 1
"""

CODE = '''\
from __future__ import annotations

import datetime as dt
from typing import Optional

from pydantic import Field

from switchyard.app import App, Args, Partition


class DailyArgs(Args):
    day: dt.date = dt.date(2026, 1, 1)
    region: str = "north"
    n: int = Field(1, ge=1, le=1000)
    level: Optional[int] = None
    ratio: float = 0.5


class Daily(App):
    Args = DailyArgs

    def partitions(self):
        return [Partition("p0", 1.0, (1,))]

    def work_item(self, item):
        return item

    def reduce(self, results, output_dir):
        return output_dir
'''


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    root = tmp_path_factory.mktemp("bfapps")
    (root / APP / APP).mkdir(parents=True)
    (root / APP / "app_settings.toml").write_text(SETTINGS)
    (root / APP / APP / "__init__.py").write_text(CODE)
    return root


@pytest.fixture
def env(apps, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("SWITCHYARD_HOME", str(home))
    monkeypatch.setenv("SWITCHYARD_APPS", str(apps))
    monkeypatch.delenv("SWITCHYARD_MAX_RUNNING", raising=False)
    return AppEnv(APP, apps_dir=apps, workspace=home)


@pytest.fixture
def store(env):
    s = RunStore(env.home / "switchyard.db")
    yield s
    s.close()


def add_run(store: RunStore, args: dict, status: str, now: float | None = None, app: str = APP, kind: str = "app",
            options: dict | None = None) -> str:
    """An orchestration driven to ``status`` through the store's commands."""
    oid = store.create_orchestration(kind=kind, app=app, mode=0, args=args, workers={}, scheduler=None,
                                     plan_fingerprint=None, run_dir=None, batches=[{"name": "b0"}],
                                     options=options, now=now)
    if status == "pending":
        return oid
    store.acquire_lease(oid, "drv", ttl=3600, now=now)
    store.command(oid, "start", now=now)
    event = {"running": None, "completed": "complete", "failed": "fail", "interrupted": "interrupt",
             "paused": "pause", "cancelled": "cancel"}[status]
    if event:
        store.command(oid, event, now=now)
    if status == "paused":
        store.command(oid, "paused", now=now)
    if status == "cancelled":
        store.command(oid, "cancelled", now=now)
    assert store.status(oid).value == status
    return oid


# -- keys ------------------------------------------------------------------------------------------

def test_int_ranges_with_steps():
    assert expand_range(INT, 1, 10) == list(range(1, 11))
    assert expand_range(INT, "1", "10", "3") == [1, 4, 7, 10]
    assert expand_range(INT, -2, 2, 2) == [-2, 0, 2]
    assert expand_range(INT, 5, 5) == [5]


def test_day_ranges_cross_month_and_year_ends_and_leap_days():
    assert expand_range(DATE, "2026-01-30", "2026-02-02") == [
        dt.date(2026, 1, 30), dt.date(2026, 1, 31), dt.date(2026, 2, 1), dt.date(2026, 2, 2)]
    assert expand_range(DATE, "2028-02-28", "2028-03-01") == [
        dt.date(2028, 2, 28), dt.date(2028, 2, 29), dt.date(2028, 3, 1)]
    assert expand_range(DATE, "2026-12-30", "2027-01-05", 3) == [
        dt.date(2026, 12, 30), dt.date(2027, 1, 2), dt.date(2027, 1, 5)]


@pytest.mark.parametrize("kind, start, end, step, message", [
    (INT, 5, 1, None, "--from 5 is after --to 1: swap them"),
    (INT, "x", 3, None, "--from 'x' is not a whole number"),
    (INT, 1, 3, 0, "--step 0 must be 1 or more"),
    (DATE, "2026-02-30", "2026-03-01", None, "--from '2026-02-30' is not a day: write it as YYYY-MM-DD"),
    (DATE, "2026-03-01", "20260302", None, "--to '20260302' is not a day"),
    (DATE, "2026-03-02", "2026-03-01", None, "--from 2026-03-02 is after --to 2026-03-01"),
    (OTHER, "a", "b", None, "has no range: give its values with --keys a,b,c"),
])
def test_bad_ranges_name_the_flag_and_value(kind, start, end, step, message):
    with pytest.raises(ScheduleError) as e:
        expand_range(kind, start, end, step, key="k")
    assert message in str(e.value) and "backfill key 'k'" in str(e.value)


def test_range_cap_is_checked_before_expanding():
    with pytest.raises(ScheduleError, match=r"1\.\.2000000000 every 1 gives 2000000000 values, more than 10000"):
        expand_range(INT, 1, 2_000_000_000, key="seed")
    assert len(expand_range(INT, 1, 10_000)) == 10_000


def test_split_keys():
    assert split_keys(" a, b ,,c ") == ["a", "b", "c"]
    assert split_keys([1, "2 "]) == [1, "2"]
    with pytest.raises(ScheduleError, match="--keys is empty"):
        split_keys(" , ")


def test_key_kind_follows_the_args_model(env):
    from switchyard.app import load_app

    cls = load_app(env)
    assert [key_kind(cls, k) for k in ("day", "region", "n", "level", "ratio")] == [DATE, OTHER, INT, INT, OTHER]
    with pytest.raises(ScheduleError) as e:
        key_kind(cls, "dayz")
    assert str(e.value) == f"app '{APP}' has no arg 'dayz': give --key one of: day, region, n, level, ratio"


def test_values_are_validated_in_json_form_and_deduplicated(env):
    assert backfill_values(env, "day", start="2026-01-31", end="2026-02-01") == ["2026-01-31", "2026-02-01"]
    assert backfill_values(env, "region", keys="north,south,north") == ["north", "south"]
    assert backfill_values(env, "n", keys="3,2,3") == [3, 2]
    assert backfill_values(env, "day", keys=["2026-03-01"]) == ["2026-03-01"]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"key": "n", "keys": "1,x"}, ArgsError, "arg 'n': 'x' is not valid (from backfill --keys)"),
    ({"key": "n", "start": 0, "end": 2}, ArgsError, "arg 'n': 0 is not valid (from backfill --from/--to)"),
    ({"key": "day", "keys": "2026-13-01"}, ArgsError, "arg 'day': '2026-13-01' is not valid"),
    ({"key": "region", "start": "a", "end": "b"}, ScheduleError, "has no range: give its values with --keys"),
    ({"key": "n", "start": 1}, ScheduleError, "a range needs both --from and --to"),
    ({"key": "n", "start": 1, "end": 2, "keys": "3"}, ScheduleError, "give either --from/--to or --keys"),
    ({"key": "n", "keys": "3", "step": 2}, ScheduleError, "--step goes with --from/--to"),
    ({"key": "n"}, ScheduleError, "no values given: write --from A --to B"),
    ({"key": "region"}, ScheduleError, "no values given: write --keys a,b,c"),
    ({"key": "n", "keys": "1", "args": {"n": 2}}, ScheduleError, "also given with --arg n=..."),
    ({"key": "n", "keys": "1", "args": {"ratio": "lots"}}, ArgsError, "arg 'ratio': 'lots' is not valid"),
    ({"key": "n", "keys": "1,2,3", "max_keys": 2}, ScheduleError, "3 values, more than 2"),
])
def test_bad_requests_get_one_line_naming_key_and_value(env, kwargs, error, message):
    key = kwargs.pop("key")
    with pytest.raises(error) as e:
        backfill_values(env, key, **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_concurrency_check():
    assert check_concurrency(3) == 3 and check_concurrency(" 2 ") == 2
    for bad in (0, -1, "x", "1.5", True, None):
        with pytest.raises(ScheduleError, match="--concurrency"):
            check_concurrency(bad)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_preflight_resolves_the_mode_and_checks_concurrency(env):
    scheduler = f"127.0.0.1:{free_port()}"  # nothing answers there: each run starts its own cluster
    assert preflight(env, "n", [1, 2], 2, mode=4, scheduler=scheduler) == 4
    assert preflight(env, "n", [1, 2], 3) == 0  # the settings' mode has no dask bit
    with pytest.raises(ScheduleError, match="concurrency"):
        preflight(env, "n", [1, 2], 0)


# -- plan --------------------------------------------------------------------------------------------

def test_parse_only():
    assert bf.parse_only("missing, failed") == {"missing", "failed"}
    assert bf.parse_only(["all"]) == {"all"}
    for bad in ("", "some", "all,missing"):
        with pytest.raises(ScheduleError, match="choose all, missing, failed or missing,failed"):
            bf.parse_only(bad)


def test_plan_over_a_real_store(env, store):
    runs = {}
    t = T0
    for value, statuses in {1: ["completed"], 2: ["failed"], 3: ["running"], 4: ["completed", "failed"],
                            5: ["pending"], 7: ["interrupted"], 8: ["failed", "completed"], 9: ["paused"],
                            10: ["cancelled"]}.items():
        for status in statuses:
            t += 1
            runs.setdefault(value, []).append(add_run(store, {"n": value, "region": "north"}, status, t))
    add_run(store, {"n": 6}, "completed", T0, app="other")  # another app's run of n=6
    add_run(store, {"n": 6}, "completed", T0, kind="pipeline")  # not an app run
    values = list(range(1, 11))

    def actions(only):
        return {i.value: i.action for i in bf.plan_backfill(env, "n", values, only, store)}

    launch = lambda only: sorted(v for v, a in actions(only).items() if a == "launch")  # noqa: E731
    assert launch("all") == [1, 2, 4, 6, 7, 8, 10]  # never one in progress (3, 5, 9)
    assert launch("missing") == [2, 6, 7, 10]  # no completed run, none in progress
    assert launch("failed") == [2, 4, 7, 10]  # newest run failed / interrupted / cancelled
    assert launch("missing,failed") == [2, 4, 6, 7, 10]
    items = {i.value: i for i in bf.plan_backfill(env, "n", values, "missing", store)}
    assert items[1].reason == f"completed by {runs[1][0]}" and items[1].orchestration == runs[1][0]
    assert items[3].reason == f"in progress: {runs[3][0]} is running"
    assert items[5].reason == f"in progress: {runs[5][0]} is pending"
    assert items[9].reason == f"in progress: {runs[9][0]} is paused"
    assert items[4].reason == f"newest run {runs[4][1]} ended failed (completed earlier by {runs[4][0]})"
    assert items[6].reason == "no run yet" and items[6].orchestration is None
    assert items[8].action == "skip" and items[8].reason == f"completed by {runs[8][1]}"


def test_plan_matches_dates_by_their_json_text(env, store):
    done = add_run(store, {"day": "2026-01-31"}, "completed", T0)
    values = backfill_values(env, "day", start="2026-01-30", end="2026-02-01")
    items = bf.plan_backfill(env, "day", values, "missing", store)
    assert [(i.value, i.action) for i in items] == [
        ("2026-01-30", "launch"), ("2026-01-31", "skip"), ("2026-02-01", "launch")]
    assert items[1].orchestration == done


# -- controller ---------------------------------------------------------------------------------------

class World:
    """Simulated runs in the real store: a launch starts a run at once; each tick (the
    controller's sleep) ends the oldest running one, failed for the values in ``fail``."""

    def __init__(self, store: RunStore, cap: int, fail=()):
        self.store, self.cap, self.fail = store, cap, set(fail)
        self.max_unfinished = 0
        self.launched: list = []
        self.ticks = 0
        self.on_launch = None

    def unfinished(self) -> int:
        return sum(1 for o in self.store.list(app=APP, limit=10_000) if not o.status.is_finished)

    def launch(self, value, origin):
        assert self.unfinished() < self.cap, "the controller launched past its cap"
        assert origin["by"] == "backfill" and origin["key"] == "n" and origin["value"] == value
        oid = add_run(self.store, {"n": value}, "running", options={"origin": origin})
        self.launched.append(value)
        self.max_unfinished = max(self.max_unfinished, self.unfinished())
        if self.on_launch:
            self.on_launch(self, value, origin)
        return oid

    def sleep(self, _seconds):
        self.ticks += 1
        running = [o for o in self.store.list(status="running", app=APP, limit=10_000)]
        if running:
            oldest = min(running, key=lambda o: o.created_at)
            self.store.command(oldest.id, "fail" if oldest.args["n"] in self.fail else "complete")


def test_controller_keeps_the_cap_and_records_everything(env, store):
    world = World(store, cap=3)
    lines = []
    out = bf.run_backfill(env, "n", list(range(1, 11)), concurrency=3, launch=world.launch, sleep=world.sleep,
                          poll=0, on_line=lines.append)
    assert world.launched == list(range(1, 11))
    assert world.max_unfinished == 3 and out["peak_concurrency"] == 3
    assert {k: out[k] for k in ("status", "launched", "completed", "failed", "running", "skipped")} == {
        "status": "completed", "launched": 10, "completed": 10, "failed": 0, "running": 0, "skipped": 0}
    rec = bf.get_backfill(store, out["id"])
    assert rec["status"] == "completed" and rec["progress"] == 1.0 and rec["peak_concurrency"] == 3
    assert sorted(rec["launched"], key=int) == [str(v) for v in range(1, 11)] and rec["ended_at"]
    assert [r["id"] for r in bf.list_backfills(store)] == [out["id"]]
    assert any("launched" in line for line in lines) and "completed: 10 launched" in lines[-1]
    again = bf.run_backfill(env, "n", list(range(1, 11)), concurrency=3, only="missing", launch=world.launch,
                            sleep=world.sleep, poll=0, on_line=lines.append)
    assert again["launched"] == 0 and again["skipped"] == 10 and again["status"] == "completed"
    assert len(world.launched) == 10


def test_failed_runs_fail_the_backfill_and_only_failed_relaunches_them(env, store):
    world = World(store, cap=2, fail={2, 5})
    out = bf.run_backfill(env, "n", [1, 2, 3, 4, 5], concurrency=2, launch=world.launch, sleep=world.sleep, poll=0,
                          on_line=lambda line: None)
    assert out["status"] == "failed" and out["completed"] == 3 and out["failed"] == 2
    assert out["error"] == "2 runs did not complete"
    world.fail.clear()
    again = bf.run_backfill(env, "n", [1, 2, 3, 4, 5], concurrency=2, only="failed", launch=world.launch,
                            sleep=world.sleep, poll=0, on_line=lambda line: None)
    assert world.launched[5:] == [2, 5] and again["status"] == "completed" and again["skipped"] == 3


def test_a_launch_error_stops_launching_and_waits_for_the_launched(env, store):
    world = World(store, cap=3)

    def launch(value, origin):
        if value == 3:
            raise ScheduleError("no room at the inn")
        return world.launch(value, origin)

    out = bf.run_backfill(env, "n", [1, 2, 3, 4], concurrency=3, launch=launch, sleep=world.sleep, poll=0,
                          on_line=lambda line: None)
    assert world.launched == [1, 2] and out["completed"] == 2 and out["running"] == 0
    assert out["status"] == "failed" and out["error"] == "launching n=3 failed: no room at the inn"


def test_a_stop_request_stops_launching_and_leaves_runs_alone(env, store):
    world = World(store, cap=3)
    world.on_launch = lambda w, value, origin: value == 2 and bf.stop_backfill(store, origin["backfill"])
    out = bf.run_backfill(env, "n", [1, 2, 3, 4], concurrency=3, launch=world.launch, sleep=world.sleep, poll=0,
                          on_line=lambda line: None)
    assert out["status"] == "stopped" and world.launched == [1, 2] and out["running"] == 2
    assert world.unfinished() == 2  # still running: nobody touched them
    assert bf.get_backfill(store, out["id"])["stop_requested"] is True


def test_ctrl_c_during_a_launch_keeps_the_run_it_created(env, store):
    world = World(store, cap=3)

    def launch(value, origin):
        oid = world.launch(value, origin)
        if value == 2:
            raise KeyboardInterrupt  # after start_run recorded it, before the controller did
        return oid

    out = bf.run_backfill(env, "n", [1, 2, 3], concurrency=3, launch=launch, sleep=world.sleep, poll=0,
                          on_line=lambda line: None)
    assert out["status"] == "stopped" and sorted(out["orchestrations"]) == ["1", "2"]
    assert world.launched == [1, 2]


def test_a_backfill_whose_controller_died_reads_interrupted(store):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    bid = bf.create_backfill(store, APP, "n", [1, 2], "all", 2, now=T0)
    with store.transaction() as c:
        c.execute("UPDATE backfills SET pid = ? WHERE id = ?", (proc.pid, bid))
    assert bf.get_backfill(store, bid)["status"] == "interrupted"
    with store.transaction() as c:
        c.execute("UPDATE backfills SET host = 'elsewhere' WHERE id = ?", (bid,))
    assert bf.get_backfill(store, bid, now=T0 + 60)["status"] == "running"
    assert bf.get_backfill(store, bid, now=T0 + bf.STALE_SECONDS + 1)["status"] == "interrupted"
    with pytest.raises(ScheduleError, match="no backfill 'bf-nope'"):
        bf.get_backfill(store, "bf-nope")


# -- CLI ---------------------------------------------------------------------------------------------

def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_dry_run_lists_what_would_be_launched(env, store, capsys):
    done = add_run(store, {"day": "2026-01-31"}, "completed", T0)
    code, out, _ = run_cli(capsys, "backfill", "run", APP, "--key", "day", "--from", "2026-01-30", "--to",
                           "2026-02-02", "--step", "2", "--only", "missing", "--dry-run", "--json")
    assert code == 0
    d = json.loads(out)
    assert [(i["value"], i["action"]) for i in d["items"]] == [("2026-01-30", "launch"), ("2026-02-01", "launch")]
    code, out, _ = run_cli(capsys, "backfill", "run", APP, "--key", "day", "--keys", "2026-01-31,2026-02-01",
                           "--only", "missing", "--dry-run")
    assert code == 0 and "1 of 2 values would be launched" in out
    assert f"skip   day=2026-01-31  completed by {done}" in out
    code, out, _ = run_cli(capsys, "backfill", "list", "--json")
    assert code == 0 and json.loads(out) == {"backfills": [], "count": 0}  # a dry run records nothing


@pytest.mark.parametrize("argv, message", [
    (["--key", "dayz", "--keys", "1"], f"app '{APP}' has no arg 'dayz': give --key one of: day, region, n"),
    (["--key", "n", "--keys", "1,zz"], "arg 'n': 'zz' is not valid"),
    (["--key", "n", "--from", "9", "--to", "3"], "--from 9 is after --to 3: swap them"),
    (["--key", "n", "--from", "1", "--to", "3", "--concurrency", "0"], "--concurrency 0: give a whole number"),
    (["--key", "n", "--keys", "1", "--only", "some"], "--only some: choose all, missing, failed"),
])
def test_cli_errors_are_one_line_and_exit_2(env, capsys, argv, message):
    code, out, err = run_cli(capsys, "backfill", "run", APP, *argv, "--dry-run")
    assert code == 2 and out == ""
    assert err.startswith("switchyard: error: ") and message in err and err.count("\n") == 1


def test_cli_list_show_and_stop(env, store, capsys):
    bid = bf.create_backfill(store, APP, "n", [1, 2, 3], "missing", 2, skipped=1, now=T0)
    code, out, _ = run_cli(capsys, "backfill", "list")
    assert code == 0 and bid in out and "launched 0/2" in out
    code, out, _ = run_cli(capsys, "backfill", "stop", bid, "--json")
    assert code == 0 and json.loads(out)["stop_requested"] is True
    code, out, _ = run_cli(capsys, "backfill", "show", bid, "--json")
    assert code == 0 and json.loads(out)["values"] == [1, 2, 3]
    code, _, err = run_cli(capsys, "backfill", "stop", "bf-none")
    assert code == 2 and "no backfill 'bf-none'" in err


# -- UI ----------------------------------------------------------------------------------------------
