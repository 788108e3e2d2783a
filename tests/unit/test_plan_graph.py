import html
import re
import time

import pytest

from switchyard.app import Partition
from switchyard.plan import build_plan, plan_digraph, plan_dot
from switchyard.plan.graph import dot_svg

NODE = re.compile(r"^\s*(\w+) \[label=", re.M)


def make_plan(n, workers, weight=lambda i: float(i % 13 + 1), names=lambda i: f"part-{i}"):
    parts = [Partition(names(i), weight(i)) for i in range(n)]
    return build_plan("flight", {"n": n}, workers, "127.0.0.1:8786", parts, now=0.0)


def nodes(dot):
    return NODE.findall(dot)


def test_small_plan_draws_every_partition_with_its_share():
    plan = build_plan(
        "flight",
        {},
        {"127.0.0.1": 2},
        "127.0.0.1:8786",
        [Partition("a", 3.0), Partition("b", 1.0), Partition("c", 4.0)],
        now=0.0,
    )
    dot = plan_dot(plan)
    # c (4) alone on one slot, a + b (3 + 1) on the other
    assert plan.assignment() == {"c": "127.0.0.1-0", "a": "127.0.0.1-1", "b": "127.0.0.1-1"}
    assert set(nodes(dot)) == {"s", "h0", "w0", "w1", "w0p0", "w1p0", "w1p1"}
    assert '"a\\n37.5 %"' in dot
    assert '"c\\n50.0 %"' in dot
    assert '127.0.0.1-0\\n50.0 % · 1 partition"' in dot
    assert "127.0.0.1-1\\n50.0 % · 2 partitions" in dot
    assert "more" not in dot


def test_large_plan_aggregates_partitions_per_worker():
    plan = make_plan(500, {"127.0.0.1": 4})
    dot = plan_dot(plan, max_partitions_per_worker=8)
    partition_nodes = [n for n in nodes(dot) if re.fullmatch(r"w\d+p\d+", n)]
    assert len(partition_nodes) == 4 * 8
    hidden = [int(m) for m in re.findall(r"… (\d+) more partitions", dot)]
    assert len(hidden) == 4 and sum(hidden) == 500 - 32
    assert len(nodes(dot)) <= 1 + 1 + 4 + 4 * 9


def test_aggregated_partitions_are_the_lightest():
    plan = make_plan(40, {"h": 1}, weight=lambda i: float(i + 1))
    dot = plan_dot(plan, max_partitions_per_worker=3)
    drawn = re.findall(r'"(part-\d+)\\n', dot)
    assert sorted(drawn) == ["part-37", "part-38", "part-39"]
    # the 37 lightest hold 703 of 820 = 85.7 %
    assert "… 37 more partitions (85.7 %)" in dot


def test_many_workers_fold_into_one_node():
    workers = {f"10.0.0.{i}": 2 for i in range(50)}
    plan = make_plan(1000, workers)
    dot = plan_dot(plan, max_partitions_per_worker=2, max_workers=32)
    worker_nodes = [n for n in nodes(dot) if re.fullmatch(r"w\d+", n)]
    assert len(worker_nodes) == 32
    assert re.search(r"… 68 more workers \([\d.]+ %, \d+ partitions\) on \d+ hosts", dot)
    host_nodes = [n for n in nodes(dot) if re.fullmatch(r"h\d+", n)]
    assert len(host_nodes) <= 32
    assert len(nodes(dot)) <= 1 + 32 + 32 * 4 + 1


def test_thousand_partition_plan_source_is_fast():
    plan = make_plan(1000, {"127.0.0.1": 4, "::1": 4})
    start = time.perf_counter()
    dot = plan_dot(plan)
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5
    assert len(nodes(dot)) <= 1 + 2 + 8 + 8 * 9


def test_ipv6_hosts_and_odd_names_render_with_dot():
    names = ['quote"d', "back\\slash", "<b>html</b>", "new\nline", "colon:port", "x" * 3]
    parts = [Partition(n, float(i + 1)) for i, n in enumerate(names)]
    plan = build_plan("flight", {}, {"::1": 1, "fe80::2": 2}, "[::1]:8786", parts, now=0.0)
    digraph = plan_digraph(plan)
    for node_id in nodes(digraph.source):
        assert ":" not in node_id
    texts = [
        html.unescape(t)
        for t in re.findall(r"<text[^>]*>([^<]*)</text>", digraph.pipe(format="svg").decode())
    ]
    assert {"::1", "fe80::2", "::1-0", "fe80::2-0", "fe80::2-1", "[::1]:8786"} <= set(texts)
    assert {'quote"d', "back\\slash", "<b>html</b>", "new line", "colon:port"} <= set(texts)


def test_the_page_svg_is_one_escaped_line_with_every_node():
    names = ["<b>html</b>", "</svg><script>alert(1)</script>", "plain"]
    plan = build_plan("flight", {}, {"127.0.0.1": 2}, "127.0.0.1:8786",
                      [Partition(n, float(i + 1)) for i, n in enumerate(names)], now=0.0)
    source = plan_dot(plan)
    svg = dot_svg(source)
    assert "\n" not in svg and svg.startswith('<svg width="100%" role="img" aria-label="work plan"')
    assert svg.endswith("</svg>") and svg.count("<svg") == 1 and svg.count("</svg>") == 1
    assert "<!--" not in svg and "<title>" not in svg and "<script" not in svg and "<b>" not in svg
    assert svg.count('class="node"') == len(nodes(source))  # scheduler, host, 2 workers, 3 partitions
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert set(names) <= set(texts) and "127.0.0.1-1" in texts


@pytest.mark.parametrize("bad", [{"max_workers": -1}, {"max_partitions_per_worker": -2}])
def test_negative_limits_are_refused(bad):
    with pytest.raises(ValueError):
        plan_digraph(make_plan(3, {"h": 1}), **bad)


def test_edited_plan_and_capacity_show_in_labels():
    plan = build_plan(
        "flight",
        {},
        {"h": 2},
        "",
        [Partition(f"p{i}", 1.0) for i in range(6)],
        capacities={"h-1": 2.0},
        now=0.0,
    )
    from switchyard.plan import reassign

    dot = plan_dot(reassign(plan, "p0", "h-1"))
    assert "capacity 2" in dot
    assert "edited" in dot
