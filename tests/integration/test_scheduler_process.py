"""The real scheduler process: a file trigger launches real flight runs with exactly the new
files, an interval schedule fires and stops firing once paused, and one scheduler runs per store."""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from switchyard.runs.store import RunStore
from switchyard.schedule.book import Book
from tests.integration.conftest import REPO, cli, cli_json, copy_apps

sys.path.insert(0, str(REPO / "apps" / "flight"))
from flight import worker  # noqa: E402  (generates files in the app's own format)


@pytest.fixture
def env(tmp_path):
    apps, home = copy_apps(tmp_path / "apps"), tmp_path / "home"
    yield apps, home
    cli("scheduler", "stop", home=home, apps=apps, timeout=60)


def drop(folder: Path, name: str, index: int) -> None:
    """Write a telemetry file the way a careful producer does: a temp name, then a rename."""
    tmp = folder / f".{name}.part"
    tmp.write_bytes(worker.generate_file(index, 300, 2, 11))
    tmp.rename(folder / name)


def wait_for(check, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def triggers(sid, home, apps) -> list[dict]:
    return cli_json("schedule", "show", sid, home=home, apps=apps)["triggers"]


def shown_once_stored(sid, home, apps, check, timeout: float, what: str):
    """``check`` of the triggers ``schedule show`` lists, once the store holds what it looks for.

    The store is polled in this process (a CLI call per poll costs about a second); the
    CLI is asked once it is there, and its answer is what the test checks.
    """
    with RunStore(home / "switchyard.db") as store:
        book = Book(store)
        wait_for(lambda: check(book.triggers(sid)), timeout, what, poll=0.1)
    return wait_for(lambda: check(triggers(sid, home, apps)), 30, f"{what} (schedule show)")


def test_file_trigger_runs_flight_on_exactly_the_new_files(env):
    apps, home = env
    d = cli_json("schedule", "add", "flight", "--watch", "--debounce", "1.5", "--mode", "0", home=home, apps=apps)
    sid, inbox = d["id"], Path(d["watch"]["folder"])
    assert inbox == (home / "data" / "flight" / "inbox").resolve() and inbox.is_dir()
    started = cli_json("scheduler", "start", home=home, apps=apps)
    assert started["running"]
    again = cli_json("scheduler", "start", home=home, apps=apps)
    assert again["pid"] == started["pid"]  # one scheduler per store
    fg = cli("scheduler", home=home, apps=apps, timeout=30)
    assert fg.returncode == 2 and "a scheduler already runs" in fg.stderr

    drop(inbox, "day0.csv", 0)
    drop(inbox, "day1.csv", 1)
    first = shown_once_stored(sid, home, apps, lambda ts: [t for t in ts if t["orchestration_id"]], 60,
                              "the first run")
    assert [t["outcome"] for t in first] == ["launched"]
    assert first[0]["files"] == ["day0.csv", "day1.csv"]
    store = RunStore(home / "switchyard.db")
    oid = first[0]["orchestration_id"]
    wait_for(lambda: store.get(oid).status.value == "completed", 120, f"run {oid} to complete", poll=0.1)
    o = store.get(oid)
    assert o.args["inputs"] == ["inbox/day0.csv", "inbox/day1.csv"]
    assert o.options["origin"]["schedule"] == sid
    assert sorted(b.name for b in store.batches(oid)) == ["day0", "day1"]

    drop(inbox, "day2.csv", 2)
    second = shown_once_stored(sid, home, apps, lambda ts: [t for t in ts if t["orchestration_id"] != oid
                                                            and t["orchestration_id"]], 60, "the second run")
    assert second[0]["files"] == ["day2.csv"]
    assert store.get(second[0]["orchestration_id"]).args["inputs"] == ["inbox/day2.csv"]
    assert len(triggers(sid, home, apps)) == 2
    store.close()


def test_interval_schedule_fires_then_pause_stops_it(env):
    apps, home = env
    d = cli_json("schedule", "add", "montecarlo", "--every", "2", "--mode", "0", "--arg", "tasks=2",
                 "--arg", "samples_per_task=1000", "--overlap", "skip", home=home, apps=apps)
    sid = d["id"]
    cli_json("scheduler", "start", home=home, apps=apps)
    launched = shown_once_stored(sid, home, apps, lambda ts: [t for t in ts if t["outcome"] == "launched"
                                                              and t["orchestration_id"]], 90, "a launched trigger")
    store = RunStore(home / "switchyard.db")
    o = store.get(launched[0]["orchestration_id"])
    assert o.app == "montecarlo" and o.args["tasks"] == 2 and o.options["origin"]["schedule"] == sid
    paused = cli_json("schedule", "pause", sid, home=home, apps=apps)
    assert paused["status"] == "paused"
    time.sleep(1.0)  # a tick in flight when pause landed may still record its fire
    count = len(triggers(sid, home, apps))
    time.sleep(5)
    assert len(triggers(sid, home, apps)) == count
    listed = cli_json("schedule", "list", home=home, apps=apps)
    assert [s["status"] for s in listed["schedules"]] == ["paused"] and listed["scheduler"]["running"]
    stopped = cli_json("scheduler", "stop", home=home, apps=apps)
    assert stopped["stopped"]
    assert not cli_json("scheduler", "status", home=home, apps=apps)["running"]
    store.close()


def test_schedule_cli_errors_are_one_line(env):
    apps, home = env
    cases = [
        (("schedule", "add", "flight", "--cron", "0 2 * * *", "--tz", "Nowhere/City"), "Nowhere/City"),
        (("schedule", "add", "flight", "--every", "60", "--overlap", "maybe"), "maybe"),
        (("schedule", "add", "montecarlo", "--watch"), "no argument 'inputs'"),
        (("schedule", "add", "flight", "--watch", "--pipeline"), "leave out --pipeline"),
        (("schedule", "add", "nosuchapp", "--every", "60"), "nosuchapp"),
        (("schedule", "resume", "s-00000000"), "s-00000000"),
    ]
    # The first alone (it may create the workspace's store), then the others at once: each is
    # its own process and none of them writes.
    procs = [cli(*cases[0][0], home=home, apps=apps, timeout=60)]
    with ThreadPoolExecutor(len(cases) - 1) as pool:
        procs += pool.map(lambda case: cli(*case[0], home=home, apps=apps, timeout=60), cases[1:])
    for (args, needle), proc in zip(cases, procs):
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], (args, proc.stderr)
    assert json.loads(cli("schedule", "list", "--json", home=home, apps=apps).stdout)["schedules"] == []
