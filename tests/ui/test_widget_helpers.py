"""The pure helpers behind the page's widgets: workers table, args form, plan editor, run view."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field

from switchyard.app import Args, Partition
from switchyard.exceptions import WorkersError
from switchyard.plan import build_plan, reassign
from switchyard.runs.state import Orchestration, Status
from switchyard.ui import args_form, plan_view, run_panel, settings_form
from switchyard.ui_jobs import FAILED, RUNNING, SUCCEEDED, JobState


# -- workers table ------------------------------------------------------------------------------

def test_workers_rows_become_a_checked_mapping_skipping_blank_rows():
    rows = [{"host": "127.0.0.1", "count": 2}, {"host": None, "count": float("nan")},
            {"host": " ::1 ", "count": 3.0}]
    assert settings_form.workers_from_rows(rows) == {"127.0.0.1": 2, "::1": 3}


@pytest.mark.parametrize("rows, message", [
    ([{"host": "a", "count": 1}, {"host": "a", "count": 2}], "host 'a' is listed twice"),
    ([{"host": "", "count": 2}], "row 1: the host is empty"),
    ([{"host": "a", "count": float("nan")}], "host 'a' has no count"),
    ([{"host": "a", "count": 0}], "host 'a' has count 0: give a whole number >= 1"),
    ([{"host": "a", "count": 1.5}], "has count 1.5"),
    ([{"host": "bad host!", "count": 1}], "host 'bad host!' is not a host name"),
    ([], "give at least one host"),
])
def test_bad_workers_rows_are_refused_with_the_row_named(rows, message):
    with pytest.raises(WorkersError, match=message):
        settings_form.workers_from_rows(rows)


# -- args form ----------------------------------------------------------------------------------

class DemoArgs(Args):
    n: int = Field(3, ge=1, le=10, description="how many")
    ratio: float = 0.5
    name: str = "x"
    fast: bool = False
    kind: Literal["a", "b"] = "a"
    tags: list[str] = Field(default_factory=list)
    limit: int | None = None


def test_each_type_gets_its_widget():
    kinds = {n: args_form.widget_kind(f.annotation) for n, f in DemoArgs.model_fields.items()}
    assert kinds == {"n": "int", "ratio": "float", "name": "text", "fast": "bool", "kind": "choice",
                     "tags": "json", "limit": "int"}
    assert args_form.choices(DemoArgs.model_fields["kind"].annotation) == ["a", "b"]
    assert args_form.constraints(DemoArgs.model_fields["n"]) == "≥ 1, ≤ 10"


def test_field_errors_name_each_bad_field():
    errors = args_form.field_errors(DemoArgs, {"n": 0, "ratio": "fast", "name": "ok"})
    assert set(errors) == {"n", "ratio"}
    assert errors["n"].startswith("0: Input should be greater than or equal to 1")
    assert args_form.field_errors(DemoArgs, {"n": 4}) == {}


def test_json_fields_are_decoded_or_flagged():
    values, errors = args_form.parse_json_fields(DemoArgs, {"tags": '["a", "b"]', "n": 2})
    assert values["tags"] == ["a", "b"] and errors == {}
    _, errors = args_form.parse_json_fields(DemoArgs, {"tags": "[a"})
    assert "not valid JSON" in errors["tags"]


def test_only_changed_keys_are_written():
    assert args_form.changed({"n": 3, "name": "x"}, {"n": 3, "name": "y", "fast": False}) == {
        "name": "y", "fast": False}
    # an arg left out of [args] stays out while the form shows its default
    defaults = {"fast": False, "tags": []}
    assert args_form.changed({"n": 3}, {"n": 3, "fast": False, "tags": []}, defaults) == {}
    assert args_form.changed({"n": 3}, {"n": 3, "fast": True, "tags": []}, defaults) == {"fast": True}


# -- plan editor --------------------------------------------------------------------------------

def plan_of(n: int):
    parts = [Partition(f"p{i:04d}", float(1 + i % 7)) for i in range(n)]
    return build_plan("demo", {}, {"h": 2}, "127.0.0.1:8786", parts, now=0.0)


def test_plan_rows_are_in_partition_order_with_shares():
    plan = plan_of(10)
    rows = plan_view.plan_rows(plan)
    assert rows["partition"].tolist() == [f"p{i:04d}" for i in range(10)]
    assert list(rows.columns) == ["partition", "weight", "share %", "worker"]
    assert abs(rows["share %"].sum() - 100) < 0.1
    assert dict(zip(rows["partition"], rows["worker"])) == plan.assignment()


def test_filter_and_pages_keep_1000_partitions_manageable():
    rows = plan_view.plan_rows(plan_of(1000))
    assert plan_view.page_count(len(rows)) == 20
    assert plan_view.page_of(rows, 20)["partition"].tolist()[-1] == "p0999"
    assert len(plan_view.page_of(rows, 3)) == plan_view.PAGE_SIZE
    assert plan_view.filter_rows(rows, "P09")["partition"].str.startswith("p09").all()
    only = plan_view.filter_rows(rows, worker="h-1")
    assert set(only["worker"]) == {"h-1"} and 0 < len(only) < 1000


def test_a_changed_worker_cell_is_a_move():
    rows = plan_view.page_of(plan_view.plan_rows(plan_of(6)), 1)
    edited = rows.copy()
    target = "h-1" if edited.loc[2, "worker"] == "h-0" else "h-0"
    edited.loc[2, "worker"] = target
    assert plan_view.moves_from_edit(rows, edited) == {"p0002": target}
    assert plan_view.moves_from_edit(rows, rows.copy()) == {}


def test_load_table_and_moved_compare_the_draft_with_the_saved_plan():
    saved = plan_of(8)
    name, source = next(iter(saved.assignment().items()))
    target = "h-1" if source == "h-0" else "h-0"
    draft = reassign(saved, name, target)
    assert plan_view.moved(draft, saved) == {name: target}
    table = plan_view.load_table(draft, saved).set_index("worker")
    assert table.loc[target, "load %"] > table.loc[target, "saved load %"]
    assert abs(table["load %"].sum() - 100) < 0.1
    assert plan_view.ratio(draft) >= 1.0


def bars(svg: str) -> list[dict]:
    """Each bar of an inline SVG chart: series, x, height, fill, stroke (the page shows it as is)."""
    import xml.etree.ElementTree as ET

    ns = "{http://www.w3.org/2000/svg}"
    return [{"series": r.get("data-series"), "x": r.get("data-x"), "height": float(r.get("height")),
             "fill": r.get("fill"), "stroke": r.get("stroke"), "title": r.find(f"{ns}title").text}
            for r in ET.fromstring(svg).iter(f"{ns}rect") if r.get("class") == "bar"]


def test_load_chart_draws_a_bar_per_worker_with_the_peak_marked_and_the_saved_plan_outlined():
    saved = plan_of(8)
    svg = plan_view.load_chart(saved, saved)
    share = saved.load_percent()
    drawn = bars(svg)  # well-formed XML with one bar per worker
    assert [b["x"] for b in drawn] == [s.id for s in saved.slots] == ["h-0", "h-1"]
    peak, low = max(share, key=share.get), min(share, key=share.get)
    assert share[peak] > share[low]
    fills = {b["x"]: b["fill"] for b in drawn}
    assert fills[peak] == "#e07b39" and fills[low] != "#e07b39"
    heights = {b["x"]: b["height"] for b in drawn}
    assert heights[peak] / heights[low] == pytest.approx(share[peak] / share[low], rel=1e-3)
    assert "saved plan" not in svg  # no unsaved moves: no outlines, no legend

    name, source = next(iter(saved.assignment().items()))
    draft = reassign(saved, name, "h-1" if source == "h-0" else "h-0")
    outlines = [b for b in bars(plan_view.load_chart(draft, saved)) if b["series"] == "saved plan"]
    assert [b["x"] for b in outlines] == ["h-0", "h-1"] and {b["fill"] for b in outlines} == {"none"}
    before = saved.load_percent()
    assert all(f"saved plan: {before[b['x']]:.2f} %" in b["title"] for b in outlines)


def test_bar_charts_escape_names_and_drop_labels_that_would_overlap():
    from switchyard.ui.bar_chart import Series, bars_svg

    svg = bars_svg("t", ["<w&1>", "w2"], [Series("s", {"<w&1>": 60.0, "w2": 40.0})], "load %")
    assert "&lt;w&amp;1&gt;" in svg and "<w&1>" not in svg and len(bars(svg)) == 2
    many = [f"127.0.0.1-{i}" for i in range(64)]
    crowded = bars_svg("t", many, [Series("s", {w: 100 / 64 for w in many})], "load %")
    assert len(bars(crowded)) == 64 and ">127.0.0.1-5</text>" not in crowded  # names in tooltips only


# -- run panel view ------------------------------------------------------------------------------

def orch(created_at: float, status: Status = Status.RUNNING) -> Orchestration:
    return Orchestration(id="o1", kind="app", app="demo", status=status, created_at=created_at,
                         run_dir="/runs/o1", total_batches=4)


def job(started_at: float, status: str = RUNNING, ended_at: float | None = None) -> JobState:
    return JobState(kind="run", app="demo", status=status, log="/jobs/run.log", started_at=started_at,
                    runner="thread", ended_at=ended_at, error="boom" if status == FAILED else None,
                    category="args" if status == FAILED else None)


def test_view_shows_the_job_log_until_its_orchestration_exists():
    v = run_panel.view(job(100.0), orch(50.0, Status.COMPLETED))
    assert v == {"orch": None, "log": "/jobs/run.log", "live": True, "error": None}
    v = run_panel.view(job(100.0), orch(101.0))
    assert v["orch"].id == "o1" and v["log"] == "/jobs/run.log" and v["live"]


def test_view_attaches_to_a_run_started_elsewhere_through_its_run_log():
    v = run_panel.view(job(10.0, SUCCEEDED, ended_at=20.0), orch(100.0))
    assert v["log"] == "/runs/o1/run.log" and v["live"]
    v = run_panel.view(None, orch(100.0, Status.COMPLETED))
    assert v["log"] == "/runs/o1/run.log" and not v["live"]


def test_view_shows_a_job_that_failed_before_its_run_started():
    v = run_panel.view(job(100.0, FAILED, ended_at=101.0), orch(50.0, Status.COMPLETED))
    assert v["orch"] is None and v["error"] == ("args", "boom") and not v["live"]


def test_a_follower_that_died_does_not_fail_the_run_it_started():
    v = run_panel.view(job(100.0, FAILED, ended_at=200.0), orch(101.0))
    assert v["orch"].status == Status.RUNNING and v["error"] is None and v["log"] == "/runs/o1/run.log"
