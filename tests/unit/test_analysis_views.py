"""View types: defaults per column kind, figures that carry the data, clear refusals, the app hook."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from switchyard.analysis.data import load_table
from switchyard.analysis.charts import lat_lon_columns, map_view_box
from switchyard.analysis.tables import apply_filters
from switchyard.analysis.views import ViewError, builtin_views, views_for
from switchyard.exceptions import AppLoadError

from .test_analysis_data import mixed_frame


@pytest.fixture
def data(workspace):
    path = workspace / "export.csv"
    mixed_frame(300).to_csv(path, index=False)
    return load_table(path, sample_rows=100)


def test_chart_defaults_follow_the_column_kinds(workspace, data):
    chart = builtin_views().get("chart")
    # two plain numbers (latitude/longitude are for the map): a scatter, coloured by the category
    assert chart.defaults(data) == {"kind": "scatter", "x": "value", "y": "count", "color": "group",
                                    "facet": None}
    (workspace / "series.csv").write_text("when,latitude,v\n2026-01-01T00:00:00,45,1\n2026-01-01T01:00:00,46,2\n")
    series = chart.defaults(load_table("series.csv"))
    assert (series["kind"], series["x"], series["y"]) == ("line", "when", "v")
    (workspace / "nums.csv").write_text("a,b\n1,2\n3,5\n")
    assert chart.defaults(load_table("nums.csv"))["kind"] == "scatter"
    (workspace / "one.csv").write_text("speed\n1\n2\n")
    assert chart.defaults(load_table("one.csv"))["kind"] == "histogram"
    (workspace / "cats.csv").write_text("g,n\nx,1\ny,2\n")
    assert chart.defaults(load_table("cats.csv"))["kind"] == "box"


@pytest.mark.parametrize("kind, trace", [("scatter", "scattergl"), ("line", "scattergl"), ("bar", "bar"),
                                         ("histogram", "histogram"), ("box", "box")])
def test_each_chart_type_draws_the_chosen_columns(data, kind, trace):
    chart = builtin_views().get("chart")
    x = "group" if kind in ("bar", "box") else "value"
    chosen = {"kind": kind, "x": x, "y": "count", "color": None, "facet": None}
    result = chart.render(data, chosen)
    fig = result.figure
    assert {t.type for t in fig.data} <= {trace, "scatter"}
    if kind == "bar":  # aggregated over all rows: one bar per group with the mean
        means = data.frame.groupby("group")["count"].mean()
        got = dict(zip(fig.data[0].x, fig.data[0].y))
        assert got == pytest.approx(means.to_dict())
        assert "over all 300 rows" in fig.layout.title.subtitle.text
    else:  # sampled: the note is on the chart and in the caption
        assert sum(len(t.x if t.x is not None else t.y) for t in fig.data) == 100
        assert "random sample of 100 of 300 rows" in fig.layout.title.subtitle.text
        assert "sample" in result.caption


def test_colour_and_facet_split_the_figure(data):
    chart = builtin_views().get("chart")
    fig = chart.render(data, {"kind": "scatter", "x": "value", "y": "count", "color": "group",
                              "facet": "group"}).figure
    assert sorted(t.name for t in fig.data) == ["east", "north", "south"]
    assert len({t.xaxis for t in fig.data}) == 3  # one facet per group


def test_chart_refusals_name_the_problem(workspace, data):
    chart = builtin_views().get("chart")
    with pytest.raises(ViewError, match="scatter needs a y"):
        chart.render(data, {"kind": "scatter", "x": "value", "y": None})
    with pytest.raises(ViewError, match="facet column 'note' has 300 values"):
        chart.render(data, {"kind": "scatter", "x": "value", "y": "count", "facet": "note"})
    with pytest.raises(ViewError, match="column 'gone' is not in export.csv"):
        chart.render(data, {"kind": "histogram", "x": "gone"})
    (workspace / "one.csv").write_text("speed\n1\n2\n")
    with pytest.raises(ViewError, match="file has 'speed'"):
        chart.render(load_table("one.csv"), {"kind": "scatter", "x": "speed", "y": None})


def test_map_finds_lat_lon_and_fits_the_points(workspace, data):
    view = builtin_views().get("map")
    chosen = view.defaults(data)
    assert (chosen["lat"], chosen["lon"], chosen["style"]) == ("latitude", "longitude", "white-bg")
    result = view.render(data, chosen)
    fig = result.figure
    assert {t.type for t in fig.data} == {"scattermap"}
    assert sum(len(t.lat) for t in fig.data) == 100  # the sample
    assert fig.layout.map.style == "white-bg"
    assert 40 <= fig.layout.map.center.lat <= 50 and fig.layout.map.zoom > 2
    assert "offline" in result.caption
    (workspace / "plain.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ViewError, match="no latitude/longitude columns"):
        view.render(load_table("plain.csv"), view.defaults(load_table("plain.csv")))
    with pytest.raises(ViewError, match="values outside -90..90"):
        view.render(data, {**chosen, "lat": "count"})


def test_lat_lon_by_prefixed_names_and_view_box(workspace):
    (workspace / "f.csv").write_text("start_latitude,start_longitude,n\n45,2,1\n46,3,2\n")
    assert lat_lon_columns(load_table("f.csv")) == ("start_latitude", "start_longitude")
    center, zoom = map_view_box(pd.Series([0.0, 10.0]), pd.Series([0.0, 10.0]))
    assert center == {"lat": 5.0, "lon": 5.0} and 3 < zoom < 6
    assert map_view_box(pd.Series([-50.0, 50.0]), pd.Series([-170.0, 170.0]))[1] == 0  # the whole world


def test_correlation_matches_pandas_and_needs_two_numeric_columns(workspace, data):
    view = builtin_views().get("correlation")
    result = view.render(data, view.defaults(data))
    expected = data.frame[["value", "count", "latitude", "longitude"]].corr()
    np.testing.assert_allclose(np.array(result.figure.data[0].z, dtype=float), expected.to_numpy())
    (workspace / "one.csv").write_text("speed,g\n1,a\n2,b\n")
    with pytest.raises(ViewError, match="at least two numeric columns: one.csv has 1 \\(speed\\)"):
        view.render(load_table("one.csv"), {"columns": ["speed"]})


def test_summary_and_table_with_filters(data):
    summary = builtin_views().get("summary").render(data, {}).table
    row = summary.set_index("column").loc["value"]
    assert row["mean"] == pytest.approx(data.frame["value"].mean()) and row["non-null"] == 300
    assert summary.set_index("column").loc["group", "distinct"] == 3
    table = builtin_views().get("table")
    filters = [{"column": "group", "op": "in", "value": ["north"]},
               {"column": "count", "op": "between", "value": [10, 50]},
               {"column": "when", "op": "between", "value": ["2026-01-02T00:00:00", None]}]
    result = table.render(data, {"columns": ["group", "count"], "filters": filters, "sort": "count",
                                 "order": "descending"})
    f = data.frame
    expected = f[(f.group == "north") & f["count"].between(10, 50) & (f.when >= "2026-01-02T00:00:00Z")]
    assert list(result.table.columns) == ["group", "count"]
    assert len(result.table) == len(expected) > 0
    assert list(result.table["count"]) == sorted(expected["count"], reverse=True)
    assert result.caption.startswith(f"{len(expected):,} of 300 rows match")
    assert len(apply_filters(f, [{"column": "note", "op": "contains", "value": "ROW 1"}], data.kinds)) == 111


def test_saved_choices_that_no_longer_fit_fall_back_to_defaults(data):
    chart = builtin_views().get("chart")
    chosen = chart.resolve(data, {"kind": "bar", "x": "vanished", "y": "count", "color": ""})
    assert chosen["kind"] == "bar" and chosen["y"] == "count"
    assert chosen["x"] == "value" and chosen["color"] is None  # default x; colour explicitly none


APP_VIEWS = '''
from switchyard.analysis.views import Choice, View, ViewResult


class Rows(View):
    name, title = "rows", "Row count"

    def render(self, data, chosen):
        return ViewResult(caption=f"{data.rows} rows")


VIEWS = [Rows()]
'''


def test_an_app_adds_its_own_view_type(tmp_path, data):
    app = tmp_path / "myapp"
    app.mkdir()
    (app / "analysis_views.py").write_text(APP_VIEWS)
    registry = views_for(app)
    assert registry.names()[-1] == "rows" and "chart" in registry
    assert registry.get("rows").render(data, {}).caption == "300 rows"
    (app / "analysis_views.py").write_text("VIEWS = [1 / 0]\n")
    with pytest.raises(AppLoadError, match="ZeroDivisionError") as info:
        views_for(app)
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    (app / "analysis_views.py").write_text("VIEWS = ['chart']\n")
    with pytest.raises(AppLoadError, match="is not a switchyard.analysis.views.View"):
        views_for(app)
    with pytest.raises(ViewError, match="unknown view 'nope': choose one of chart, map"):
        builtin_views().get("nope")
