"""The straggler-backup policy (pure) and the option's checks at the edge."""

from __future__ import annotations

import pytest

from switchyard.exceptions import SwitchyardError
from switchyard.runs.backups import Running, backup_key, check_backups, choose, is_backup_key

DONE = [("w1", 1.0, 0.10), ("w1", 1.0, 0.11), ("w1", 2.0, 0.20), ("w0", 1.0, 0.10)]  # 0.1 s per unit


def test_backup_keys_are_apart_from_their_originals():
    key = "20261201-153518-ab12cd-40-1-9f3e"
    b = backup_key(key)
    assert b == "20261201-153518-ab12cd-40-1b-9f3e"
    assert is_backup_key(b) and not is_backup_key(key)
    assert not b.startswith(key) and not key.startswith(b)  # stopping one by its key spares the other


def test_the_most_overdue_batch_gets_the_fastest_free_worker_once():
    running = [Running(idx=7, worker="w0", elapsed=1.0, weight=1.0),  # 10x its expected 0.1 s
               Running(idx=8, worker="w2", elapsed=0.6, weight=2.0),  # 3x its expected 0.2 s
               Running(idx=9, worker="w3", elapsed=0.6, weight=5.0)]  # on time (0.5 s expected)
    got = choose(running, DONE, {"w1": 1, "w4": 1}, backed=set())
    assert [(b.idx, b.worker, b.original) for b in got] == [(7, "w1", "w0"), (8, "w4", "w2")]
    assert got[0].expected == pytest.approx(0.1) and "10.0x its expected" in got[0].why
    # one backup per batch, ever; no free worker, too few peers, a young batch: none
    assert [b.idx for b in choose(running, DONE, {"w1": 1}, backed={7})] == [8]
    assert choose(running, DONE, {}, backed=set()) == []
    assert choose(running, DONE[:2], {"w1": 1}, backed=set()) == []
    assert choose([Running(1, "w0", 0.3, 0.01)], DONE, {"w1": 1}, backed=set()) == []
    # a batch never gets its copy on its own worker
    assert choose([Running(7, "w1", 1.0, 1.0)], DONE, {"w1": 1}, backed=set()) == []


def test_a_worker_measured_slow_in_this_run_gets_a_backup_before_it_is_overdue():
    done = [("fast", 1.0, 0.1)] * 5 + [("slow", 1.0, 0.3)] * 2  # 3x slower in this very run
    big = Running(idx=40, worker="slow", elapsed=3.5, weight=30.0)  # expected 3 s; 9 s on "slow"
    got = choose([big], done, {"fast": 1}, backed=set())
    assert [(b.idx, b.worker) for b in got] == [(40, "fast")] and "3.0x slower" in got[0].why
    # on a worker of the run's median speed it waits until it is overdue (1.5 x 3 s)
    assert choose([Running(40, "fast2", 3.5, 30.0)], done, {"fast": 1}, backed=set()) == []
    assert len(choose([Running(40, "fast2", 4.6, 30.0)], done, {"fast": 1}, backed=set())) == 1


def test_the_option_is_checked_against_the_app_and_the_mode():
    class Pure:
        pure_batches = True

    class Plain:
        pass

    assert check_backups(True, Pure, 4) is True and check_backups("off", Plain, 0) is False
    with pytest.raises(SwitchyardError, match="app class Plain does not declare its batches free of outside"):
        check_backups(True, Plain, 4)
    with pytest.raises(SwitchyardError, match="need the dask mode bit: mode 1"):
        check_backups(True, Pure, 1)
    with pytest.raises(SwitchyardError, match="backups 'maybe': give true or false"):
        check_backups("maybe", Pure, 4)


def test_resolve_refuses_backups_for_an_app_that_does_not_declare_pure_batches(make_app):
    from switchyard.runs.request import resolve

    app_env = make_app("plainapp", dependencies=())
    with pytest.raises(SwitchyardError, match="backup tasks refused: app class .* does not declare"):
        resolve(app_env, mode=4, options={"backups": True})
    assert resolve(app_env, mode=4, options={"backups": False}).request.options["backups"] is False
