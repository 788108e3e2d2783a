"""Drawing a work plan: a graphviz tree scheduler -> hosts -> worker slots -> partitions.

Labels carry loads as shares of the plan's total weight. Large plans are
aggregated so the drawing stays readable and fast: each worker shows its
heaviest partitions and one "… N more partitions" node, and past
``max_workers`` the least-loaded workers fold into one node. Node ids are
generated (``s``, ``h0``, ``w3``, ``w3p0``); hosts and names only appear in
labels, so any host string (IPv6 colons included) is safe.
"""

from __future__ import annotations

import heapq
import re

import graphviz

from switchyard.plan.workplan import WorkerSlot, WorkPlan

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PEAK_COLOR = "#f4b183"
_WORKER_COLOR = "#dae8fc"
_PARTITION_COLOR = "#f5f5f5"
_AGGREGATE_COLOR = "#ffffff"


def plan_digraph(
    plan: WorkPlan, max_partitions_per_worker: int = 8, max_workers: int = 32
) -> graphviz.Digraph:
    """The plan as a tree: scheduler -> hosts -> worker slots -> partitions.

    Args:
        plan: The work plan to draw.
        max_partitions_per_worker: Partition nodes drawn per worker (its heaviest);
            the rest fold into one "… N more partitions (x %)" node.
        max_workers: Worker nodes drawn (the most loaded, in plan order); the rest
            fold into one "… N more workers" node.

    Returns:
        A ``graphviz.Digraph``; its size is bounded by the two limits, not by the plan.
    """
    if max_partitions_per_worker < 0 or max_workers < 0:
        raise ValueError("max_partitions_per_worker and max_workers must be >= 0")
    total = plan.total_weight
    slot_weights = [s.weight for s in plan.slots]

    def share(weight: float) -> float:
        return 100.0 * weight / total if total > 0 else 0.0

    g = graphviz.Digraph(
        "workplan",
        graph_attr={"rankdir": "LR", "ranksep": "0.4", "nodesep": "0.15"},
        node_attr={
            "shape": "box",
            "style": "rounded,filled",
            "fontname": "Helvetica",
            "fontsize": "10",
            "fillcolor": _PARTITION_COLOR,
        },
        edge_attr={"arrowsize": "0.5", "color": "#888888"},
    )
    span = plan.makespan
    bound = plan.lower_bound
    ratio = f"makespan {span / bound:.3f} x lower bound" if bound > 0 else "makespan 0"
    g.node(
        "s",
        _label(
            "scheduler",
            plan.scheduler or "(local)",
            f"{plan.partition_count} partitions · {ratio}" + (" · edited" if plan.edited else ""),
        ),
        fillcolor="#e1d5e7",
    )

    shown = _shown_slots(plan.slots, max_workers)
    shown_set = set(shown)
    hosts: dict[str, list[int]] = {}
    for pos, s in enumerate(plan.slots):
        hosts.setdefault(s.host, []).append(pos)
    host_ids: dict[str, str] = {}
    for h_pos, (host, positions) in enumerate(hosts.items()):
        if not any(p in shown_set for p in positions):
            continue
        hid = f"h{h_pos}"
        host_ids[host] = hid
        weight = sum(slot_weights[p] for p in positions)
        g.node(
            hid,
            _label(
                host,
                f"{len(positions)} {_plural(len(positions), 'worker')} · {_pct(share(weight))}",
            ),
            fillcolor="#d5e8d4",
        )
        g.edge("s", hid)

    for pos in shown:
        s = plan.slots[pos]
        wid = f"w{pos}"
        lines = [
            s.id,
            f"{_pct(share(slot_weights[pos]))} · {len(s.partitions)} "
            f"{_plural(len(s.partitions), 'partition')}",
        ]
        if s.capacity != 1.0:
            lines.append(f"capacity {s.capacity:g}")
        is_peak = span > 0 and s.load >= span * (1 - 1e-12)
        g.node(wid, _label(*lines), fillcolor=_PEAK_COLOR if is_peak else _WORKER_COLOR)
        g.edge(host_ids[s.host], wid)
        _draw_partitions(g, wid, s, max_partitions_per_worker, share)

    hidden = [pos for pos in range(len(plan.slots)) if pos not in shown_set]
    if hidden:
        weight = sum(slot_weights[p] for p in hidden)
        count = sum(len(plan.slots[p].partitions) for p in hidden)
        hidden_hosts = {plan.slots[p].host for p in hidden}
        text = (
            f"… {len(hidden)} more {_plural(len(hidden), 'worker')} ({_pct(share(weight))}, "
            f"{count} {_plural(count, 'partition')})"
        )
        parent = "s"
        if len(hidden_hosts) == 1 and next(iter(hidden_hosts)) in host_ids:
            parent = host_ids[next(iter(hidden_hosts))]
        elif len(hidden_hosts) > 1:
            text += f" on {len(hidden_hosts)} hosts"
        g.node("wmore", _label(text), fillcolor=_AGGREGATE_COLOR, style="rounded,dashed,filled")
        g.edge(parent, "wmore", style="dashed")
    return g


def plan_dot(plan: WorkPlan, **kw) -> str:
    """The DOT source of :func:`plan_digraph` (same keyword arguments)."""
    return plan_digraph(plan, **kw).source


def dot_svg(source: str, label: str = "work plan") -> str:
    """DOT ``source`` laid out by Graphviz's ``dot`` here, as one line of inline SVG.

    Drawn on the server, the page shows it at once; ``st.graphviz_chart`` instead lays the
    graph out in the browser with a WebAssembly Graphviz it must first load. The SVG keeps dot's
    height, takes the container's width (its viewBox scales it) and is marked ``role="img"``.

    Raises:
        graphviz.ExecutableNotFound: ``dot`` is not installed (the Debian package graphviz).
    """
    svg = graphviz.Source(source).pipe(format="svg", encoding="utf-8")
    svg = _NOISE.sub("", svg[svg.index("<svg"):])  # comments, and the ids dot puts in tooltips
    svg = re.sub(r'^<svg width="[^"]*"', f'<svg width="100%" role="img" aria-label="{label}"', svg, count=1)
    return " ".join(svg.split())  # one line: markdown would read an indented line as code


_NOISE = re.compile(r"<!--.*?-->|<title>.*?</title>", re.S)


def _shown_slots(slots: list[WorkerSlot], max_workers: int) -> list[int]:
    """Positions of the slots to draw: all of them, or the most loaded, kept in plan order."""
    if len(slots) <= max_workers:
        return list(range(len(slots)))
    top = heapq.nsmallest(max_workers, range(len(slots)), key=lambda p: (-slots[p].load, p))
    return sorted(top)


def _draw_partitions(g: graphviz.Digraph, wid: str, slot: WorkerSlot, limit: int, share) -> None:
    parts = slot.partitions
    heaviest = heapq.nsmallest(limit, range(len(parts)), key=lambda k: (-parts[k].weight, k))
    for k in heaviest:
        p = parts[k]
        pid = f"{wid}p{k}"
        g.node(pid, _label(p.name, _pct(share(p.weight))))
        g.edge(wid, pid)
    rest = len(parts) - len(heaviest)
    if rest:
        drawn = sum(parts[k].weight for k in heaviest)
        weight = max(slot.weight - drawn, 0.0)
        g.node(
            f"{wid}more",
            _label(f"… {rest} more {_plural(rest, 'partition')} ({_pct(share(weight))})"),
            fillcolor=_AGGREGATE_COLOR,
            style="rounded,dashed,filled",
        )
        g.edge(wid, f"{wid}more", style="dashed")


def _label(*lines: str) -> str:
    # Names and hosts are operator data: backslashes and control characters must not act as
    # graphviz escapes; nohtml keeps a label like "<x>" from being read as an HTML label.
    text = "\\n".join(_CONTROL.sub(" ", line).replace("\\", "\\\\") for line in lines)
    return graphviz.nohtml(text)


def _pct(x: float) -> str:
    if x == 0:
        return "0 %"
    if x < 0.1:
        return "<0.1 %"
    return f"{x:.1f} %"


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"
