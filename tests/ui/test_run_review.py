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
    from tests.ui.test_widget_helpers import bars

    rev = review(plan, batches(plan, {p.name: 0.5 for p in parts}))
    drawn = bars(chart(rev))  # inline SVG, well-formed
    names = sorted({b["series"] for b in drawn})
    assert names == ["measured", "planned (predicted s)" if rev.basis == "predicted"
                     else "planned (weight share of measured s)"]
    for name in names:  # one bar of each series per worker, in the workers' order
        assert [b["x"] for b in drawn if b["series"] == name] == ["h-0", "h-1", "h-2"]
    measured = {b["x"]: b["height"] for b in drawn if b["series"] == "measured"}
    busiest = max(rev.measured, key=rev.measured.get)
    assert max(measured, key=measured.get) == busiest and rev.measured[busiest] > 0
    assert f"{busiest} · measured: {rev.measured[busiest]:.2f} s" in {b["title"] for b in drawn}


def test_the_backup_tasks_toggle_puts_backups_in_the_run_snippet_and_the_call(flight):
    from switchyard.actions import snippet_call

    from tests.ui.conftest import open_page

    at = open_page()
    run_snippet = lambda: next(c.value for c in at.code if "AGI.run(" in c.value)  # noqa: E731
    assert "backups" not in run_snippet()
    at.toggle(key="run-backups-flight").set_value(True).run()
    assert not at.exception
    name, kwargs = snippet_call(run_snippet())
    assert name == "run" and kwargs["backups"] is True and kwargs["mode"] == 4
    # the button runs exactly that call (Action.call_kwargs is what the snippet shows)
    from dataclasses import replace

    from switchyard.actions import Action

    action = replace(Action.from_settings("run", flight), backups=True)
    assert snippet_call(action.snippet()) == (name, kwargs) and action.call_kwargs() == kwargs
