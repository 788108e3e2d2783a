"""The aggregated timeline's SVG: one bar per worker x bucket x status, stacked, scaled to the
busiest bucket, with a tooltip each; names are escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from switchyard.ui.busy_chart import BAND, busy_svg

NS = "{http://www.w3.org/2000/svg}"
COLORS = {"completed": "#0a0", "dead": "#f00"}


def bars(svg: str) -> list[ET.Element]:
    return [r for r in ET.fromstring(svg).iter(f"{NS}rect") if r.get("class") == "busy"]


def test_bars_stack_per_bucket_and_scale_to_the_busiest():
    agg = {"t0": 1_800_000_000.0, "width": 2.0, "buckets": 4, "rows": [
        ("w-0", 0, "completed", 1.0, 10), ("w-0", 0, "dead", 1.0, 3),  # busy 1.0 in all
        ("w-0", 3, "completed", 4.0, 8),  # two threads busy all along: the scale's top
        ("w<1>", 1, "completed", 1.0, 1)]}
    svg = busy_svg(agg, COLORS)
    found = bars(svg)
    assert len(found) == 4
    tips = [r.find(f"{NS}title").text for r in found]
    assert "w-0 · " in tips[0] and "completed: busy 0.50, 10 batches started" in tips[0]
    assert "dead: busy 0.50, 3 batches started" in tips[1]
    heights = [float(r.get("height")) for r in found]
    assert heights[2] == BAND and heights[0] == heights[1] == BAND / 4  # scaled to the top (2.0)
    # stacked: the dead bar sits right on top of the completed one, in the same column
    assert float(found[1].get("y")) + heights[1] == float(found[0].get("y"))
    assert found[0].get("x") == found[1].get("x") and float(found[2].get("x")) > float(found[0].get("x"))
    assert [r.get("fill") for r in found[:2]] == ["#0a0", "#f00"]
    assert "w&lt;1&gt;" in svg and "<1>" not in svg  # a worker name cannot inject markup
    assert re.search(r">2<", svg)  # the scale's label


def test_an_empty_aggregate_is_still_a_valid_svg():
    svg = busy_svg({"t0": None, "width": 0.0, "buckets": 0, "rows": []}, COLORS)
    assert bars(svg) == [] and ET.fromstring(svg).tag == f"{NS}svg"
