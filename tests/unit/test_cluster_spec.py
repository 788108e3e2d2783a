"""The cluster layer's pure parts: reconcile (events in, instructions out), the command
lines a spec makes, slot names and address parsing."""

from __future__ import annotations

import pytest

from switchyard.cluster.addresses import slot_names, slots, split_address
from switchyard.cluster.spec import (SCHEDULER, ClusterSpec, HostSpec, Instructions, Recorded, Running, reconcile,
                                     scheduler_argv, worker_argv)
from switchyard.exceptions import ClusterError

A, B = "10.0.0.7", "10.0.0.8"


def spec(workers: dict[str, int], **kw) -> ClusterSpec:
    hosts = {h: HostSpec(python=f"/envs/{h}/bin/python", folder=f"/c/{h}", bind=h) for h in [*workers, A]}
    return ClusterSpec(scheduler=f"{A}:8786", workers=workers, hosts=hosts, **kw)


def up(workers: dict[str, str], joined: set[str]) -> Running:
    return Running(scheduler=True, answers=True, address=f"tcp://{A}:8786", workers=workers,
                   joined=frozenset(joined))


def test_nothing_running_starts_the_scheduler_then_every_slot():
    assert reconcile(spec({A: 2, B: 1}), Running()) == Instructions(
        start_scheduler=True, start=((A, f"{A}-0"), (A, f"{A}-1"), (B, f"{B}-0")))


def test_a_cluster_that_matches_is_left_alone():
    running = up({f"{A}-0": A, f"{B}-0": B}, {f"{A}-0", f"{B}-0"})
    todo = reconcile(spec({A: 1, B: 1}), running)
    assert (todo.stop, todo.start_scheduler, todo.start) == ((), False, ())
    assert todo.keep == (f"{A}-0", f"{B}-0")
    assert todo.notes == ("every wanted worker is already up: nothing to start",)


def test_reconcile_is_idempotent_once_its_instructions_are_done():
    wanted = spec({A: 2, B: 1})
    first = reconcile(wanted, up({f"{A}-0": A}, {f"{A}-0"}))
    assert first.start == ((A, f"{A}-1"), (B, f"{B}-0")) and first.stop == ()
    after = up({f"{A}-0": A, f"{A}-1": A, f"{B}-0": B}, {f"{A}-0", f"{A}-1", f"{B}-0"})
    assert reconcile(wanted, after).start == reconcile(wanted, after).stop == ()


def test_fewer_workers_wanted_stops_the_extra_slots_only():
    running = up({f"{A}-0": A, f"{A}-1": A, f"{B}-0": B}, {f"{A}-0", f"{A}-1", f"{B}-0"})
    todo = reconcile(spec({A: 1}), running)
    assert todo.stop == (f"{A}-1", f"{B}-0")
    assert todo.start == () and not todo.start_scheduler and todo.keep == (f"{A}-0",)
    assert todo.notes[0] == f"stopping 2 worker(s) no longer wanted: {A}-1, {B}-0"


def test_a_worker_that_left_the_scheduler_is_stopped_and_started_again():
    running = up({f"{A}-0": A, f"{A}-1": A}, {f"{A}-0"})
    todo = reconcile(spec({A: 2}), running)
    assert todo.stop == (f"{A}-1",) and todo.start == ((A, f"{A}-1"),) and todo.keep == (f"{A}-0",)
    assert f"worker(s) {A}-1 left the cluster: starting them again" in todo.notes


def test_a_joined_worker_this_cluster_did_not_start_is_neither_started_nor_stopped():
    todo = reconcile(spec({A: 1}), up({}, {f"{A}-0"}))
    assert todo.start == () and todo.stop == ()


def test_a_recorded_scheduler_that_does_not_answer_takes_its_workers_with_it():
    running = Running(scheduler=True, answers=False, address="tcp://10.0.0.7:8786",
                      workers={f"{A}-0": A, f"{B}-0": B}, joined=frozenset())
    todo = reconcile(spec({A: 1}), running)
    assert todo.stop == (f"{A}-0", f"{B}-0", SCHEDULER)  # the scheduler last
    assert todo.start_scheduler and todo.start == ((A, f"{A}-0"),)
    assert todo.notes == ("the recorded cluster at tcp://10.0.0.7:8786 is gone: cleaning up after it",)


def test_the_command_lines_follow_the_spec():
    s = spec({B: 1}, idle_timeout=600, preload=("flight",), death_timeout=30)
    assert scheduler_argv(s, 0, dashboard=True) == [
        f"/envs/{A}/bin/python", "-m", "distributed.cli.dask_scheduler", "--host", A, "--port", "0",
        "--scheduler-file", f"/c/{A}/scheduler.json", "--dashboard-address", f"{A}:0", "--idle-timeout", "600s"]
    quiet = scheduler_argv(spec({B: 1}), 8786, dashboard=False)
    # without bokeh its HTTP server (/health, /metrics, info pages) still binds: on the host's address only
    assert "--no-dashboard" in quiet and quiet[quiet.index("--dashboard-address") + 1] == f"{A}:0"
    argv = worker_argv(s, B, f"{B}-0", f"tcp://{A}:8786")
    assert argv[:4] == [f"/envs/{B}/bin/python", "-m", "distributed.cli.dask_worker", f"tcp://{A}:8786"]
    assert "--no-dashboard" in argv and argv[argv.index("--dashboard-address") + 1] == f"{B}:0"

    def value(flag: str) -> str:
        return argv[argv.index(flag) + 1]

    pairs = {flag: value(flag) for flag in ("--name", "--host", "--death-timeout", "--local-directory", "--preload")}
    assert pairs["--name"] == f"{B}-0" and pairs["--host"] == B and pairs["--death-timeout"] == "30"
    assert pairs["--local-directory"] == f"/c/{B}/{B}-0" and pairs["--preload"] == "flight"


def test_slot_names_are_host_dash_index_in_host_order():
    assert slot_names({"127.0.0.1": 2, "::1": 1}) == ["127.0.0.1-0", "127.0.0.1-1", "::1-0"]
    assert slots({"n1": 1}) == [("n1", "n1-0")]
    assert spec({A: 2}).slots == [(A, f"{A}-0"), (A, f"{A}-1")]


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:8786", ("127.0.0.1", 8786)),
    ("tcp://10.0.0.5:8786", ("10.0.0.5", 8786)),
    ("[::1]:8786", ("::1", 8786)),
    ("tcp://[fe80::1]:1", ("fe80::1", 1)),
    ("node1", ("node1", 0)),
    (":0", ("127.0.0.1", 0)),
])
def test_split_address(text, expected):
    assert split_address(text) == expected


def test_split_address_names_a_bad_port():
    with pytest.raises(ClusterError, match="port 'x' is not a number"):
        split_address("127.0.0.1:x")


def test_old_names_stay_importable_from_where_they_were():
    from switchyard import settings
    from switchyard.cluster import local, warm

    assert local.split_address is split_address is settings.split_address  # one parser
    assert local.is_local_host("localhost") and not local.is_local_host("127.0.0.2")
    assert warm.worker_names({"h": 2}) == [("h", "h-0"), ("h", "h-1")]


def test_a_record_without_a_create_time_still_reads():
    old = {"name": "scheduler", "host": "127.0.0.1", "pid": 12, "log": "/x/scheduler.log", "local": True}
    rec = Recorded.from_dict(old)
    assert rec.started is None and rec.ident("sy-app-1") == {"pid": 12, "started": None, "marker": "sy-app-1"}
    assert Recorded.from_dict(rec.to_dict()) == rec
