"""The DAG of a pipeline's steps as a graphviz drawing, each step coloured by its status."""

from __future__ import annotations

import graphviz

from switchyard.pipeline.model import Pipeline

COLOURS = {
    "completed": "#2e7d32",
    "running": "#1565c0",
    "pending": "#9e9e9e",
    "failed": "#ef6c00",
    "dead": "#c62828",
    "skipped": "#bdbdbd",
    "cancelled": "#6d4c41",
    None: "#eceff1",
}
_LIGHT_TEXT = {"completed", "running", "dead", "failed", "cancelled"}


def step_graph(p: Pipeline, statuses: dict[str, str] | None = None,
               stale: dict[str, list[str]] | None = None) -> graphviz.Digraph:
    """A left-to-right graph: one node per step (title, id, status), an edge per dependency
    and a dashed edge to each fallback."""
    statuses = statuses or {}
    stale = stale or {}
    g = graphviz.Digraph("pipeline", graph_attr={"rankdir": "LR", "bgcolor": "transparent"},
                         node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica"})
    for s in p.steps:
        status = statuses.get(s.id)
        colour = COLOURS.get(status, COLOURS[None])
        label = f"{s.title or s.id}\n[{s.id}] {status or 'not run'}"
        if s.id in stale:
            label += "\nSTALE: " + ", ".join(stale[s.id])
        if not s.enabled:
            label += "\n(disabled)"
        g.node(s.id, label=label, fillcolor=colour, fontcolor="white" if status in _LIGHT_TEXT else "black",
               color="#f9a825" if s.id in stale else colour, penwidth="3" if s.id in stale else "1",
               id=f"step-{s.id}", **{"class": f"status-{status or 'none'}"})
    for s in p.steps:
        for d in s.depends_on:
            g.edge(d, s.id)
        if s.fallback:
            g.edge(s.id, s.fallback, style="dashed", label="fallback")
    return g
