"""The Run section's planned-vs-measured chart (a pure figure builder; the browser test draws it)."""

from __future__ import annotations

from switchyard.app import Partition
from switchyard.plan import build_plan
from switchyard.plan.actuals import review

from tests.unit.test_actuals import batches


def test_review_chart_has_one_pair_of_bars_per_worker():
    from switchyard.ui.run_review import chart

    parts = [Partition(f"p{i}", 1.0 + i, ()) for i in range(5)]
    plan = build_plan("a", {}, {"h": 3}, "s:1", parts)
    fig = chart(review(plan, batches(plan, {p.name: 0.5 for p in parts})))
    assert [t.type for t in fig.data] == ["bar", "bar"] and fig.layout.barmode == "group"
    assert all(list(t.x) == ["h-0", "h-1", "h-2"] for t in fig.data)
