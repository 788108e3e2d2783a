import copy
import json

import pytest
from pydantic import BaseModel

from switchyard.app import Partition
from switchyard.exceptions import PlanError
from switchyard.plan import (
    SCHEMA_VERSION,
    WorkPlan,
    build_plan,
    plan_fingerprint,
    reassign,
    reassign_many,
    slot_host,
)

WORKERS = {"127.0.0.1": 2, "::1": 1, "node-b": 1}


def partitions(n=10):
    return [Partition(name=f"part-{i:02d}", weight=float(i + 1)) for i in range(n)]


@pytest.fixture
def plan():
    return build_plan(
        "flight", {"files": 10, "seed": 1}, WORKERS, "127.0.0.1:8786", partitions(), now=1000.0
    )


def test_build_plan_makes_slots_per_host_in_order(plan):
    assert [s.id for s in plan.slots] == ["127.0.0.1-0", "127.0.0.1-1", "::1-0", "node-b-0"]
    assert [s.host for s in plan.slots] == ["127.0.0.1", "127.0.0.1", "::1", "node-b"]
    assert all(slot_host(s.id) == s.host for s in plan.slots)
    assert plan.created_at == 1000.0
    assert plan.edited is False
    assert plan.schema_version == SCHEMA_VERSION


def test_build_plan_places_every_partition_once_with_its_index(plan):
    placed = sorted((p.index, p.name, p.weight) for s in plan.slots for p in s.partitions)
    assert placed == [(i, f"part-{i:02d}", float(i + 1)) for i in range(10)]
    for s in plan.slots:
        assert [p.index for p in s.partitions] == sorted(p.index for p in s.partitions)


def test_build_plan_balances_and_reports_figures(plan):
    # Total 55 over 4 equal slots: the optimum is 14.
    assert plan.total_weight == 55.0
    assert plan.partition_count == 10
    assert plan.makespan == 14.0
    assert plan.lower_bound == pytest.approx(13.75)
    assert sum(plan.load_percent().values()) == pytest.approx(100.0)
    summary = plan.summary()
    assert {
        "app",
        "fingerprint",
        "partitions",
        "workers",
        "makespan",
        "lower_bound",
        "ratio",
        "loads",
        "edited",
    } <= set(summary)
    assert summary["workers"] == 4
    assert summary["partitions"] == 10
    assert summary["ratio"] == pytest.approx(14.0 / 13.75)
    assert summary["loads"] == plan.loads()


def test_build_plan_uses_capacities():
    plan = build_plan(
        "flight",
        {},
        {"a": 2},
        "",
        [Partition(f"p{i}", 1.0) for i in range(30)],
        capacities={"a-1": 2.0},
    )
    assert plan.slots[1].capacity == 2.0
    assert len(plan.slots[0].partitions) == 10
    assert len(plan.slots[1].partitions) == 20
    assert plan.loads() == {"a-0": 10.0, "a-1": 10.0}


def test_build_plan_rejects_duplicate_names():
    parts = [Partition("a", 1.0), Partition("b", 2.0), Partition("a", 3.0)]
    with pytest.raises(PlanError, match="partition name 'a' appears twice"):
        build_plan("flight", {}, {"h": 1}, "", parts)


def test_build_plan_rejects_bad_workers_and_capacities():
    with pytest.raises(PlanError, match="no worker slots"):
        build_plan("flight", {}, {}, "", partitions())
    with pytest.raises(PlanError, match="host 'h' has count -1"):
        build_plan("flight", {}, {"h": -1}, "", partitions())
    with pytest.raises(PlanError, match="unknown worker 'h-5'.*'h-0'"):
        build_plan("flight", {}, {"h": 2}, "", partitions(), capacities={"h-5": 2.0})
    with pytest.raises(PlanError, match="capacity 0"):
        build_plan("flight", {}, {"h": 2}, "", partitions(), capacities={"h-0": 0})
    with pytest.raises(PlanError, match=r"app 'flight': weight\[1\] = -2.0"):
        build_plan("flight", {}, {"h": 2}, "", [Partition("a", 1.0), Partition("b", -2.0)])


def test_round_trip_through_dict_and_json(plan):
    assert WorkPlan.from_dict(plan.to_dict()) == plan
    assert WorkPlan.from_json(plan.to_json()) == plan
    assert json.loads(plan.to_json())["schema_version"] == 1


def test_save_and_load(plan, tmp_path):
    path = tmp_path / "plans" / "flight" / "plan.json"
    plan.save(path)
    assert WorkPlan.load(path) == plan
    assert [p.name for p in path.parent.iterdir()] == ["plan.json"]  # no temp file left behind


def test_load_names_the_file_on_bad_json(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("{not json")
    with pytest.raises(PlanError, match=f"{path}: not valid JSON .line 1"):
        WorkPlan.load(path)
    with pytest.raises(PlanError, match="no work plan at .*missing.json"):
        WorkPlan.load(tmp_path / "missing.json")


def test_load_names_the_file_and_key_on_bad_content(plan, tmp_path):
    doc = plan.to_dict()
    doc["slots"][0]["partitions"][0]["weight"] = "heavy"
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(PlanError, match=rf"{path}: key 'slots\[0\].partitions\[0\].weight'"):
        WorkPlan.load(path)


def test_fingerprint_is_stable_and_ignores_worker_order():
    a = plan_fingerprint("flight", {"files": 10, "seed": 1}, {"h1": 2, "h2": 1})
    assert a == plan_fingerprint("flight", {"seed": 1, "files": 10}, {"h2": 1, "h1": 2})
    assert len(a) == 16 and int(a, 16) >= 0
    assert a != plan_fingerprint("flight", {"files": 11, "seed": 1}, {"h1": 2, "h2": 1})
    assert a != plan_fingerprint("flight", {"files": 10, "seed": 1}, {"h1": 2, "h2": 2})
    assert a != plan_fingerprint("other", {"files": 10, "seed": 1}, {"h1": 2, "h2": 1})


def test_fingerprint_is_the_same_for_an_args_model_and_its_dict():
    class Args(BaseModel):
        files: int
        seed: int

    assert plan_fingerprint("flight", Args(files=3, seed=1), {"h": 1}) == plan_fingerprint(
        "flight", {"files": 3, "seed": 1}, {"h": 1}
    )


def test_plan_matches_its_inputs(plan):
    assert plan.matches("flight", {"seed": 1, "files": 10}, dict(reversed(WORKERS.items())))
    assert not plan.matches("flight", {"seed": 2, "files": 10}, WORKERS)


def test_reassign_returns_an_edited_copy(plan):
    before = plan.assignment()
    name = "part-00"
    target = next(s.id for s in plan.slots if s.id != before[name])
    edited = reassign(plan, name, target)
    assert edited.edited is True
    assert edited.assignment()[name] == target
    assert plan.assignment() == before and plan.edited is False
    moved = {k for k, v in edited.assignment().items() if before[k] != v}
    assert moved == {name}
    assert edited.loads()[target] == pytest.approx(plan.loads()[target] + 1.0)
    assert edited.fingerprint == plan.fingerprint
    assert [p.index for p in edited.slot(target).partitions] == sorted(
        p.index for p in edited.slot(target).partitions
    )


def test_reassign_to_an_ipv6_slot(plan):
    edited = reassign(plan, "part-09", "::1-0")
    assert edited.assignment()["part-09"] == "::1-0"
    assert WorkPlan.from_json(edited.to_json()) == edited


def test_reassign_unknown_partition_lists_choices(plan):
    with pytest.raises(PlanError, match="unknown partition 'nope': choose one of: 'part-.*more"):
        reassign(plan, "nope", "::1-0")


def test_reassign_unknown_worker_lists_choices(plan):
    with pytest.raises(
        PlanError, match="unknown worker '10.0.0.9-0': choose one of: '127.0.0.1-0'"
    ):
        reassign(plan, "part-01", "10.0.0.9-0")


def test_reassign_many_checks_all_moves_first(plan):
    before = plan.to_dict()
    with pytest.raises(PlanError, match="part-99"):
        reassign_many(plan, {"part-01": "node-b-0", "part-99": "node-b-0"})
    assert plan.to_dict() == before
    edited = reassign_many(plan, {"part-01": "node-b-0", "part-02": "node-b-0", "part-03": "::1-0"})
    assignment = edited.assignment()
    assert (assignment["part-01"], assignment["part-02"], assignment["part-03"]) == (
        "node-b-0",
        "node-b-0",
        "::1-0",
    )
    assert edited.partition_count == plan.partition_count


def _set(doc, path, value):
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (("schema_version",), _DELETE, "key 'schema_version': missing"),
        (
            ("schema_version",),
            2,
            "key 'schema_version': version 2 is not supported.*upgrade switchyard",
        ),
        (("schema_version",), "1", "key 'schema_version'"),
        (("app",), 5, "key 'app': expected a string, got int"),
        (("slots",), {}, "key 'slots': expected a list"),
        (("slots",), [], "key 'slots': no worker slots"),
        (("workers",), {"h": "two"}, "key 'workers.h'"),
        (
            ("slots", 1, "id"),
            "127.0.0.1-0",
            r"key 'slots\[1\].id': slot id '127.0.0.1-0' appears twice",
        ),
        (("slots", 0, "capacity"), 0, r"key 'slots\[0\].capacity'"),
        (
            ("slots", 0, "partitions", 0, "weight"),
            -1.0,
            r"key 'slots\[0\].partitions\[0\].weight': -1.0",
        ),
        (("slots", 0, "partitions", 0, "weight"), True, r"weight'"),
        (("slots", 0, "partitions", 0, "index"), 1.5, r"partitions\[0\].index'"),
        (
            ("slots", 0, "partitions", 0),
            "p",
            r"key 'slots\[0\].partitions\[0\]': expected an object",
        ),
        (("created_at",), "yesterday", "key 'created_at'"),
        (("edited",), "yes", "key 'edited'"),
    ],
)
def test_from_dict_rejects_malformed_documents(plan, path, value, expected):
    doc = copy.deepcopy(plan.to_dict())
    _set(doc, path, value)
    with pytest.raises(PlanError, match=expected):
        WorkPlan.from_dict(doc)


def test_from_dict_rejects_duplicate_partition_names(plan):
    doc = plan.to_dict()
    duplicate = dict(doc["slots"][0]["partitions"][0], index=99)
    doc["slots"][1]["partitions"].append(duplicate)
    with pytest.raises(PlanError, match=f"partition '{duplicate['name']}' appears twice"):
        WorkPlan.from_dict(doc)


def test_from_dict_rejects_a_non_object():
    with pytest.raises(PlanError, match="expected a JSON object, got list"):
        WorkPlan.from_dict([1, 2])
