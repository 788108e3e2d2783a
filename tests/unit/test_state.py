"""The orchestration transition table, fed with every (status, command) pair."""

from __future__ import annotations

from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchyard.exceptions import InvalidTransition
from switchyard.runs.state import (
    COMMANDS,
    EVENTS,
    TRANSITIONS,
    BatchStatus,
    Status,
    allowed_commands,
    allowed_events,
    next_status,
)

P, R, PG, PD = Status.PENDING, Status.RUNNING, Status.PAUSING, Status.PAUSED
CG, CD, OK = Status.CANCELLING, Status.CANCELLED, Status.COMPLETED
F, I = Status.FAILED, Status.INTERRUPTED

# The lifecycle written out independently of the module, pair by pair.
EXPECTED: dict[tuple[Status, str], Status] = {
    (P, "start"): R,
    (P, "cancel"): CD,
    (P, "interrupt"): I,  # the driver died before starting the run
    (R, "pause"): PG,
    (R, "cancel"): CG,
    (R, "complete"): OK,
    (R, "fail"): F,
    (R, "interrupt"): I,
    (PG, "paused"): PD,
    (PG, "cancel"): CG,
    (PG, "complete"): OK,
    (PG, "fail"): F,
    (PG, "interrupt"): I,
    (PD, "resume"): P,
    (PD, "cancel"): CD,
    (CG, "cancelled"): CD,
    (CG, "interrupt"): CD,  # the operator asked to cancel; the driver is gone
    (CG, "fail"): CD,
    (F, "retry"): P,
    (I, "resume"): P,
    (I, "retry"): P,
    (I, "cancel"): CD,
}

ALL_PAIRS = [(s, c) for s in Status for c in (*COMMANDS, *EVENTS)]


@pytest.mark.parametrize(
    ("status", "command"), ALL_PAIRS, ids=[f"{s.value}-{c}" for s, c in ALL_PAIRS]
)
def test_every_pair_gives_exactly_the_expected_outcome(status, command):
    expected = EXPECTED.get((status, command))
    if expected is not None:
        assert next_status(status, command, "o1") is expected
        return
    with pytest.raises(InvalidTransition) as info:
        next_status(status, command, "o1")
    err = info.value
    assert err.current == status.value
    assert err.command == command
    assert f"is {status.value}:" in str(err)
    assert "o1" in str(err)


def test_table_has_no_entry_beyond_the_expected_ones():
    flat = {(s, c): t for s, table in TRANSITIONS.items() for c, t in table.items()}
    assert flat == EXPECTED
    assert set(TRANSITIONS) == set(Status)


def test_status_accepts_its_text_value():
    assert next_status("paused", "resume") is Status.PENDING
    assert Status("running") == "running"
    assert str(Status.RUNNING) == "running"


def test_unknown_command_is_refused_naming_the_current_status():
    with pytest.raises(InvalidTransition, match="is running: cannot pauze it"):
        next_status(Status.RUNNING, "pauze", "o2")


def test_refusal_names_where_the_command_would_lead():
    with pytest.raises(InvalidTransition) as info:
        next_status(Status.COMPLETED, "cancel", "o3")
    assert str(info.value) == (
        "orchestration o3 is completed: cannot cancel it (no transition completed -> cancelled)"
    )


def test_predicates():
    assert {s for s in Status if s.is_finished} == {OK, F, CD, I}
    assert {s for s in Status if s.is_terminal} == {OK, CD}
    assert {s for s in Status if s.is_active} == {R, PG, CG}


def test_terminal_statuses_accept_nothing():
    for s in Status:
        if s.is_terminal:
            assert TRANSITIONS[s] == {}
            assert allowed_commands(s) == [] and allowed_events(s) == []


def test_allowed_commands_are_the_operator_buttons():
    assert allowed_commands("pending") == ["start", "cancel"]
    assert allowed_commands(R) == ["pause", "cancel"]
    assert allowed_commands(PG) == ["cancel"]
    assert allowed_commands(PD) == ["resume", "cancel"]
    assert allowed_commands(CG) == []
    assert allowed_commands(F) == ["retry"]
    assert allowed_commands(I) == ["resume", "cancel", "retry"]
    assert allowed_events(R) == ["complete", "fail", "interrupt"]
    assert allowed_events(PG) == ["paused", "complete", "fail", "interrupt"]


def test_every_status_is_reachable_from_pending_and_every_run_can_end():
    seen, todo = {P}, deque([P])
    while todo:
        for target in TRANSITIONS[todo.popleft()].values():
            if target not in seen:
                seen.add(target)
                todo.append(target)
    assert seen == set(Status)
    for s in Status:  # from every status some path leads to a terminal one
        frontier, reached = {s}, {s}
        while frontier:
            frontier = {t for f in frontier for t in TRANSITIONS[f].values()} - reached
            reached |= frontier
        assert reached & {OK, CD}, s


def test_batch_statuses():
    assert [b.value for b in BatchStatus] == [
        "pending", "running", "completed", "failed", "dead", "cancelled", "skipped"
    ]


@settings(max_examples=300, deadline=None)
@given(
    start=st.sampled_from(list(Status)),
    commands=st.lists(st.sampled_from([*COMMANDS, *EVENTS, "bogus"]), max_size=30),
)
def test_random_command_sequences_stay_inside_the_table(start, commands):
    status = start
    for command in commands:
        before = status
        try:
            status = next_status(status, command, "h")
        except InvalidTransition as e:
            assert command not in TRANSITIONS[before]
            assert e.current == before.value
            continue
        assert status is TRANSITIONS[before][command]
        assert isinstance(status, Status)
        if before.is_terminal:
            pytest.fail(f"{before} is terminal but accepted {command}")
    if start.is_terminal:
        assert status is start
