import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchyard.exceptions import PlanError
from switchyard.plan import lower_bound, lpt, makespan, plan_partitions, planner


def brute_force(weights, capacities):
    best = math.inf
    for assign in itertools.product(range(len(capacities)), repeat=len(weights)):
        loads = [0.0] * len(capacities)
        for w, j in zip(weights, assign):
            loads[j] += w
        best = min(best, max(load / c for load, c in zip(loads, capacities)))
    return best


def small_cases():
    rng = random.Random(7)
    cases = [
        ([3, 3, 2, 2, 2], [1, 1]),  # LPT gives 7, the optimum is 6
        ([5, 4, 3, 3, 3], [1, 1]),
        ([6, 5, 4, 3, 2, 1], [1, 1, 1]),
        ([7, 7, 6, 6, 5, 5, 4], [1, 1, 1]),
        ([10, 1, 1, 1], [3, 1]),  # unequal capacities
        ([4, 4, 3, 3, 2], [2.0, 1.0, 0.5]),
        ([0, 0, 0], [1, 1]),
        ([9], [1, 1, 1]),
    ]
    for _ in range(30):
        n = rng.randint(1, 7)
        m = rng.randint(1, 3)
        weights = [float(rng.randint(0, 25)) for _ in range(n)]
        caps = [rng.choice([1.0, 1.0, 2.0, 0.5, 1.5, 3.0]) for _ in range(m)]
        cases.append((weights, caps))
    return cases


@pytest.mark.parametrize("weights, capacities", small_cases())
def test_plan_is_optimal_on_small_inputs(weights, capacities):
    assign = plan_partitions(weights, capacities)
    assert len(assign) == len(weights)
    assert all(0 <= j < len(capacities) for j in assign)
    assert makespan(weights, capacities, assign) == pytest.approx(
        brute_force(weights, capacities), rel=1e-9
    )


def test_plan_beats_lpt_where_lpt_is_suboptimal():
    weights, caps = [3, 3, 2, 2, 2], [1, 1]
    assert makespan(weights, caps, lpt(weights, caps)) == 7
    assert makespan(weights, caps, plan_partitions(weights, caps)) == 6


def test_exact_search_on_twelve_partitions_matches_brute_force():
    weights = [13.0, 11, 10, 9, 8, 7, 7, 6, 5, 4, 3, 2]
    caps = [1.0, 1.0, 2.0]
    assert makespan(weights, caps, plan_partitions(weights, caps)) == pytest.approx(
        brute_force(weights, caps)
    )


def test_exhausted_search_budget_still_returns_a_plan_no_worse_than_lpt(monkeypatch):
    monkeypatch.setattr(planner, "EXACT_WORK_BUDGET", 10)
    rng = np.random.default_rng(3)
    weights = rng.uniform(1, 100, 12).tolist()
    caps = [1.0, 1.3, 0.7, 1.0]
    assign = plan_partitions(weights, caps)
    assert makespan(weights, caps, assign) <= makespan(weights, caps, lpt(weights, caps)) + 1e-9


@settings(max_examples=120, deadline=None)
@given(
    weights=st.lists(
        st.floats(min_value=0, max_value=1e6, allow_nan=False), min_size=0, max_size=60
    ),
    capacities=st.lists(
        st.sampled_from([0.25, 0.5, 1.0, 1.0, 1.0, 2.0, 3.0]), min_size=1, max_size=9
    ),
)
def test_plan_is_never_worse_than_lpt_and_never_below_the_bound(weights, capacities):
    assign = plan_partitions(weights, capacities)
    assert len(assign) == len(weights)
    if not weights:
        return
    ours = makespan(weights, capacities, assign)
    assert ours <= makespan(weights, capacities, lpt(weights, capacities)) * (1 + 1e-12) + 1e-12
    assert ours >= lower_bound(weights, capacities) * (1 - 1e-12)


def test_large_random_plan_is_within_half_a_percent_of_the_bound():
    rng = np.random.default_rng(11)
    weights = rng.lognormal(0, 1, 2000).tolist()
    caps = [1.0] * 8
    assign = plan_partitions(weights, caps)
    assert makespan(weights, caps, assign) <= lower_bound(weights, caps) * 1.005


def test_unequal_capacities_get_proportional_loads():
    weights = [1.0] * 300
    caps = [1.0, 2.0, 3.0]
    assign = plan_partitions(weights, caps)
    counts = [assign.count(j) for j in range(3)]
    assert counts == [50, 100, 150]


def test_lpt_prefers_the_worker_with_the_lowest_relative_load():
    # Worker 1 is twice as fast: the heavy partition goes there, then the light ones balance.
    assert lpt([4.0, 1.0, 1.0], [1.0, 2.0]) == [1, 0, 0]


def test_zero_weights_spread_over_workers():
    assert sorted(plan_partitions([0.0] * 4, [1.0] * 4)) == [0, 1, 2, 3]


def test_no_partitions_gives_an_empty_plan():
    assert plan_partitions([], [1.0, 1.0]) == []
    assert lpt([], [1.0]) == []
    assert lower_bound([], [1.0]) == 0.0


def test_single_worker_takes_everything():
    assert plan_partitions([3.0, 1.0, 2.0], [2.0]) == [0, 0, 0]


def test_lower_bound_is_the_larger_of_average_and_largest_partition():
    assert lower_bound([1, 1, 1, 1], [1, 1]) == 2.0
    assert lower_bound([10, 1, 1], [1, 1]) == 10.0
    assert lower_bound([10, 1, 1], [1, 4]) == 2.5


@pytest.mark.parametrize(
    "weights, capacities, expected",
    [
        ([1.0], [], "no workers"),
        ([1.0], [1.0, 0.0], "capacity[1] = 0.0"),
        ([1.0], [-2.0], "capacity[0] = -2.0"),
        ([1.0], [math.inf], "capacity[0] = inf"),
        ([1.0, -3.0], [1.0], "weight[1] = -3.0"),
        ([math.nan], [1.0], "weight[0] = nan"),
        ([1.0, 2.0, math.inf], [1.0], "weight[2] = inf"),
        (["heavy"], [1.0], "weights must be numbers"),
    ],
)
def test_invalid_input_names_the_index_and_value(weights, capacities, expected):
    with pytest.raises(PlanError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        plan_partitions(weights, capacities)


def test_makespan_checks_the_assignment():
    with pytest.raises(PlanError, match="2 entries for 3 partitions"):
        makespan([1, 2, 3], [1, 1], [0, 1])
    with pytest.raises(PlanError, match=r"assignment\[1\] = 5"):
        makespan([1, 2], [1, 1], [0, 5])
    assert makespan([1, 2, 3], [1, 2], [0, 1, 1]) == 2.5
