"""Run observability: recent runs, batch timelines, durations, throughput, benchmarks, comparisons.

Pure functions over the run store's records (and ``benchmark.json``) that
return DataFrames and Plotly figures. Times in figures are seconds since the
run started, so they read the same in any time zone; the absolute start is in
the title.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from switchyard.analysis.data import AnalysisError
from switchyard.modes import mode_string
from switchyard.runs.eta import remaining_seconds
from switchyard.runs.state import Batch, Orchestration

BATCH_COLORS = {
    "completed": "#2ca02c", "running": "#1f77b4", "failed": "#ff7f0e", "dead": "#d62728",
    "cancelled": "#7f7f7f", "pending": "#bcbd22", "skipped": "#c7c7c7",
}
FASTEST_COLOR, OTHER_COLOR, FAILED_COLOR = "#2ca02c", "#1f77b4", "#d62728"


def _natural(text: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text))]


def _clock(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def run_seconds(o: Orchestration, now: float | None = None) -> float | None:
    """How long the run took (the driver's figure), or has been running so far."""
    if o.seconds is not None:
        return float(o.seconds)
    if o.started_at is None:
        return None
    end = o.ended_at if o.ended_at is not None else (time.time() if now is None else now)
    return max(0.0, end - o.started_at)


def runs_table(orchestrations: Iterable[Orchestration], now: float | None = None) -> pd.DataFrame:
    """One row per run, newest first: id, status, mode, workers, batches, seconds, created."""
    rows = []
    for o in orchestrations:
        rows.append({
            "id": o.id, "status": o.status.value, "mode": f"{o.mode} ({mode_string(o.mode)})",
            "workers": sum(int(n) for n in (o.workers or {}).values()),
            "hosts": ", ".join(o.workers or {}),
            "batches": f"{o.completed_batches}/{o.total_batches}",
            "seconds": run_seconds(o, now), "created": _clock(o.created_at),
            "error": o.error or "",
        })
    columns = ["id", "status", "mode", "workers", "hosts", "batches", "seconds", "created", "error"]
    return pd.DataFrame(rows, columns=columns)


def batches_table(batches: Iterable[Batch], t0: float | None = None, now: float | None = None) -> pd.DataFrame:
    """One row per batch that started: worker, start/end in seconds since ``t0``, duration, items.

    A running batch ends at ``now`` (default: the current time). ``t0`` defaults to the
    earliest start.
    """
    now = time.time() if now is None else float(now)
    rows = []
    for b in batches:
        if b.started_at is None:
            continue
        end = b.ended_at if b.ended_at is not None else now
        rows.append({"idx": b.idx, "name": b.name, "worker": b.worker or b.planned_worker or "?",
                     "status": b.status.value, "attempts": b.attempts, "items": b.items,
                     "weight": b.weight, "started_at": b.started_at, "ended_at": end,
                     "seconds": max(0.0, end - b.started_at)})
    frame = pd.DataFrame(rows, columns=["idx", "name", "worker", "status", "attempts", "items", "weight",
                                        "started_at", "ended_at", "seconds"])
    if frame.empty:
        frame["start_s"], frame["end_s"] = [], []
        return frame
    t0 = float(frame["started_at"].min()) if t0 is None else float(t0)
    frame["start_s"] = frame["started_at"] - t0
    frame["end_s"] = frame["ended_at"] - t0
    return frame


def workers_in_order(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["worker"].unique(), key=_natural)


def gantt_figure(batches: Iterable[Batch], title: str = "batches per worker", t0: float | None = None,
                 now: float | None = None):
    """A Gantt timeline: one lane per worker, one bar per batch from its start to its end.

    Bars are horizontal ``go.Bar`` traces (one per batch status) with ``y`` the worker,
    ``base`` the start and ``x`` the duration, in seconds since ``t0`` (default: the
    first batch start).
    """
    import plotly.graph_objects as go

    frame = batches_table(batches, t0, now)
    fig = go.Figure()
    if frame.empty:
        fig.update_layout(title=f"{title}: no batch has started yet", height=200)
        return fig
    lanes = workers_in_order(frame)
    for status, part in frame.groupby("status", sort=False):
        fig.add_trace(go.Bar(
            y=part["worker"].tolist(), base=part["start_s"].tolist(), x=part["seconds"].tolist(),
            orientation="h", name=status, marker_color=BATCH_COLORS.get(status, "#888888"),
            customdata=list(zip(part["name"], part["idx"], part["attempts"], part["items"])),
            hovertemplate=("%{customdata[0]} (batch %{customdata[1]})<br>worker %{y}<br>"
                           "start %{base:.2f} s, %{x:.2f} s<br>attempts %{customdata[2]}, "
                           "items %{customdata[3]}<extra>%{fullData.name}</extra>"),
        ))
    fig.update_layout(
        title={"text": title, "subtitle": {"text": f"t = 0 at {_clock(frame['started_at'].min())}"}},
        barmode="overlay", height=max(220, 60 * len(lanes) + 140),
        xaxis_title="seconds since the first batch started", yaxis_title="worker",
        yaxis={"categoryorder": "array", "categoryarray": lanes[::-1], "type": "category"},
    )
    return fig


def duration_figure(batches: Iterable[Batch], now: float | None = None):
    """Histogram of batch durations, coloured by worker."""
    import plotly.express as px

    frame = batches_table(batches, now=now)
    frame = frame[frame["status"] == "completed"] if not frame.empty else frame
    if frame.empty:
        import plotly.graph_objects as go

        return go.Figure().update_layout(title="batch durations: no completed batch yet", height=200)
    fig = px.histogram(frame, x="seconds", color="worker", nbins=min(50, max(5, len(frame))),
                       category_orders={"worker": workers_in_order(frame)},
                       title="batch durations (completed batches)", labels={"seconds": "seconds"})
    fig.update_layout(height=320, barmode="stack")
    return fig


def throughput_table(batches: Iterable[Batch], now: float | None = None) -> pd.DataFrame:
    """Per worker: completed batches, items, weight, busy seconds, span, items/s and weight/s.

    Rates are over the worker's span (first start to last end). Weight is the app's cost
    estimate of a partition (bytes of input for the flight app).
    """
    frame = batches_table(batches, now=now)
    columns = ["worker", "batches", "items", "weight", "busy_s", "span_s", "items_per_s", "weight_per_s"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    done = frame[frame["status"] == "completed"]
    rows = []
    for worker in workers_in_order(frame):
        part = done[done["worker"] == worker]
        span = float(part["ended_at"].max() - part["started_at"].min()) if len(part) else 0.0
        items, weight = int(part["items"].sum()), float(part["weight"].sum())
        rows.append({"worker": worker, "batches": len(part), "items": items, "weight": weight,
                     "busy_s": float(part["seconds"].sum()), "span_s": span,
                     "items_per_s": items / span if span > 0 else None,
                     "weight_per_s": weight / span if span > 0 else None})
    return pd.DataFrame(rows, columns=columns)


def throughput_figure(table: pd.DataFrame, per: str = "items"):
    """Bar per worker of items/s (``per="items"``) or weight/s (``per="weight"``)."""
    import plotly.express as px

    column = f"{per}_per_s"
    fig = px.bar(table, x="worker", y=column, title=f"throughput: {per} per second per worker",
                 labels={column: f"{per} / s"}, text_auto=".3s")
    fig.update_layout(height=320)
    return fig


# -- benchmarks --------------------------------------------------------------------------------

def read_benchmark(path: Path | str) -> dict[str, Any] | None:
    """The benchmark document, or None when the app was never benchmarked.

    Raises:
        AnalysisError: the file is not a benchmark document.
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AnalysisError(f"{path} is not readable JSON ({e}): run the benchmark again "
                            "(switchyard bench APP)") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise AnalysisError(f"{path} has no 'results' list: run the benchmark again (switchyard bench APP)")
    return doc


def benchmark_table(doc: dict[str, Any]) -> pd.DataFrame:
    """One row per mode: mode, label, status, seconds, fastest (bool)."""
    rows = []
    for r in doc.get("results", []):
        if not isinstance(r, dict) or "mode" not in r:
            continue
        mode = int(r["mode"])
        rows.append({"mode": mode, "label": f"{mode} ({r.get('mode_string') or mode_string(mode)})",
                     "status": str(r.get("status", "?")), "seconds": r.get("seconds"),
                     "fastest": mode == doc.get("fastest"), "reason": r.get("reason") or ""})
    return pd.DataFrame(rows, columns=["mode", "label", "status", "seconds", "fastest", "reason"])


def benchmark_figure(doc: dict[str, Any]):
    """Seconds per mode as bars; the fastest mode green, failed/skipped modes named on the axis."""
    import plotly.graph_objects as go

    table = benchmark_table(doc)
    colors = [FASTEST_COLOR if f else (OTHER_COLOR if s == "completed" else FAILED_COLOR)
              for f, s in zip(table["fastest"], table["status"])]
    seconds = [s if isinstance(s, (int, float)) and not math.isnan(s) else 0.0 for s in table["seconds"]]
    text = [f"{s:.2f} s" + (" (fastest)" if f else "") if st == "completed" else st
            for s, f, st in zip(seconds, table["fastest"], table["status"])]
    fig = go.Figure(go.Bar(x=table["label"].tolist(), y=seconds, marker_color=colors, text=text,
                           textposition="outside", name="seconds"))
    when = _clock(doc.get("created_at")) if isinstance(doc.get("created_at"), (int, float)) else ""
    fastest = doc.get("fastest")
    fig.update_layout(
        title={"text": "benchmark: seconds per mode",
               "subtitle": {"text": (f"fastest: mode {fastest}" if fastest is not None else "no mode completed")
                                    + (f"; measured {when}" if when else "")}},
        xaxis_title="mode", yaxis_title="seconds", height=360, showlegend=False,
    )
    return fig


# -- comparing two runs ------------------------------------------------------------------------

def run_summary(o: Orchestration, batches: list[Batch], now: float | None = None) -> dict[str, Any]:
    """The figures compared between runs."""
    frame = batches_table(batches, now=now)
    done = frame[frame["status"] == "completed"] if not frame.empty else frame
    seconds = run_seconds(o, now)
    items = int(done["items"].sum()) if len(done) else 0
    return {
        "status": o.status.value, "mode": f"{o.mode} ({mode_string(o.mode)})",
        "workers": sum(int(n) for n in (o.workers or {}).values()),
        "batches": f"{o.completed_batches}/{o.total_batches}",
        "seconds": seconds,
        "mean batch s": float(done["seconds"].mean()) if len(done) else None,
        "max batch s": float(done["seconds"].max()) if len(done) else None,
        "items": items,
        "items per s": items / seconds if seconds else None,
        "retried batches": int((frame["attempts"] > 1).sum()) if len(frame) else 0,
        "args": json.dumps(o.args, sort_keys=True),
        "created": _clock(o.created_at),
    }


def compare_table(a: Orchestration, a_batches: list[Batch], b: Orchestration, b_batches: list[Batch],
                  now: float | None = None) -> pd.DataFrame:
    """Two runs side by side (one column each) and which figures differ."""
    sa, sb = run_summary(a, a_batches, now), run_summary(b, b_batches, now)
    table = pd.DataFrame({a.id: sa, b.id: sb}) if a.id != b.id else pd.DataFrame({a.id: sa})
    table.index.name = "figure"
    if a.id != b.id:
        table["differs"] = [str(x) != str(y) for x, y in zip(sa.values(), sb.values())]
    # mixed numbers and text in one column: show all as text so the table renders everywhere
    return table.map(lambda v: "" if v is None else (f"{v:.3f}" if isinstance(v, float) else v)).astype(str)


def compare_figure(a_id: str, a_batches: list[Batch], b_id: str, b_batches: list[Batch], now: float | None = None):
    """Batch durations of two runs as box plots side by side."""
    import plotly.express as px

    parts = []
    for oid, batches in ((a_id, a_batches), (b_id, b_batches)):
        frame = batches_table(batches, now=now)
        frame = frame[frame["status"] == "completed"] if not frame.empty else frame
        parts.append(frame.assign(run=oid))
    frame = pd.concat(parts, ignore_index=True)
    fig = px.box(frame, x="run", y="seconds", color="run", points="all", title="batch durations of the two runs")
    fig.update_layout(height=340, showlegend=False)
    return fig


# -- estimates ----------------------------------------------------------------------------------

def eta_seconds(batches: list, slots: int, now: float | None = None) -> float | None:
    """Seconds until the batches still to run are done, from the durations of completed ones.

    Each waiting batch is taken to last the mean completed duration; an executing one its mean
    less what it has run already; the work spreads over ``slots`` worker slots. None until
    a batch has completed (there is nothing to estimate from), 0.0 when nothing is left.
    """
    import time as _time

    from switchyard.runs.state import BatchStatus

    now = _time.time() if now is None else now
    done = [b.seconds for b in batches if b.status == BatchStatus.COMPLETED and b.seconds is not None]
    left = [b for b in batches if b.status in (BatchStatus.PENDING, BatchStatus.RUNNING, BatchStatus.FAILED)]
    if not left:
        return 0.0
    if not done:
        return None
    ran = [now - b.started_at for b in left if b.status == BatchStatus.RUNNING and b.started_at]
    return remaining_seconds(sum(done) / len(done), len(left), slots, ran)
