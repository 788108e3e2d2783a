"""Run metrics for machines: a JSON document and the Prometheus text exposition format.

``switchyard metrics APP --json`` prints :func:`run_metrics`; the HTTP API's
``GET /metrics`` serves :func:`prometheus_text` with :data:`PROMETHEUS_CONTENT_TYPE`.
Both read the run store only.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from typing import Any

from switchyard.modes import mode_string
from switchyard.runs.state import Batch, BatchStatus, Orchestration, Status

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Upper bounds (seconds) of the batch duration histogram buckets.
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def _seconds(o: Orchestration, now: float) -> float | None:
    if o.seconds is not None:
        return float(o.seconds)
    if o.started_at is None:
        return None
    return max(0.0, (o.ended_at if o.ended_at is not None else now) - o.started_at)


def batch_record(b: Batch) -> dict[str, Any]:
    """One batch's timing, as in ``{"runs": [{"batches": [...]}]}``."""
    return {"idx": b.idx, "name": b.name, "worker": b.worker, "status": b.status.value,
            "attempts": b.attempts, "started_at": b.started_at, "ended_at": b.ended_at,
            "seconds": b.seconds, "items": b.items}


def run_record(o: Orchestration, batches: list[Batch], now: float | None = None,
               with_batches: bool = True) -> dict[str, Any]:
    """The metrics of one run: identity, status, mode, workers, seconds and batch timings."""
    now = time.time() if now is None else float(now)
    durations = [b.seconds for b in batches if b.status is BatchStatus.COMPLETED and b.seconds is not None]
    counts = Counter(b.status.value for b in batches)
    record = {
        "id": o.id, "app": o.app, "kind": o.kind, "status": o.status.value,
        "mode": o.mode, "mode_string": mode_string(o.mode), "workers": dict(o.workers or {}),
        "worker_count": sum(int(n) for n in (o.workers or {}).values()),
        "seconds": _seconds(o, now), "created_at": o.created_at, "started_at": o.started_at,
        "ended_at": o.ended_at, "total_batches": o.total_batches,
        "completed_batches": o.completed_batches,
        "batch_counts": {s.value: counts.get(s.value, 0) for s in BatchStatus},
        "batch_seconds": {
            "count": len(durations),
            "total": sum(durations),
            "mean": sum(durations) / len(durations) if durations else None,
            "min": min(durations) if durations else None,
            "max": max(durations) if durations else None,
        },
        "error": o.error,
    }
    if with_batches:
        record["batches"] = [batch_record(b) for b in batches]
    return record


def run_metrics(store, app: str | None = None, limit: int = 50, with_batches: bool = True,
                now: float | None = None) -> dict[str, Any]:
    """``{"runs": [...]}``: the newest ``limit`` runs (of ``app``, or all), newest first.

    Each run has id, app, kind, status, mode, mode_string, workers, worker_count, seconds,
    created/started/ended_at, batch counts per status, batch_seconds (count, total, mean,
    min, max of completed batches) and, with ``with_batches``, every batch's timing.
    """
    runs = store.list(app=app, limit=limit)
    return {"runs": [run_record(o, store.batches(o.id), now, with_batches) for o in runs]}


# -- Prometheus ---------------------------------------------------------------------------------

def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: Any) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _number(v: float) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return repr(float(v)) if isinstance(v, float) else str(int(v))


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: Any) -> None:
        self.lines.append(f"{name}{_labels(**labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def prometheus_text(store, limit: int = 500, now: float | None = None) -> str:
    """Run metrics in the Prometheus text format (version 0.0.4), over the newest ``limit`` runs.

    Families: ``switchyard_orchestrations`` (by app, kind, status),
    ``switchyard_batches`` (by app, status), ``switchyard_batch_duration_seconds``
    (histogram of completed batches, by app), ``switchyard_active_workers`` (workers of
    running orchestrations, by app), ``switchyard_last_run_seconds`` and
    ``switchyard_last_run_workers`` (the newest completed run, by app and mode) and
    ``switchyard_metrics_runs_considered``.
    """
    now = time.time() if now is None else float(now)
    runs = store.list(limit=limit)
    by_status: Counter = Counter()
    batches_by_status: Counter = Counter()
    buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(DURATION_BUCKETS))
    duration_sum: Counter = Counter()
    duration_count: Counter = Counter()
    active_workers: Counter = Counter()
    last_run: dict[str, Orchestration] = {}
    apps = sorted({o.app for o in runs})
    for o in runs:
        by_status[(o.app, o.kind, o.status.value)] += 1
        if o.status.is_active:
            active_workers[o.app] += sum(int(n) for n in (o.workers or {}).values())
        if o.status is Status.COMPLETED and o.app not in last_run:
            last_run[o.app] = o  # runs come newest first
        # SQL aggregates: a run of 100,000 batches costs two queries, not 100,000 rows
        for status, n in store.batch_counts(o.id).items():
            batches_by_status[(o.app, status)] += n
        counts, seconds, n = store.duration_histogram(o.id, DURATION_BUCKETS)
        buckets[o.app] = [a + b for a, b in zip(buckets[o.app], counts)]
        duration_sum[o.app] += seconds
        duration_count[o.app] += n

    out = _Exposition()
    out.family("switchyard_orchestrations", "gauge", "Orchestrations in the run store by app, kind and status.")
    kinds = sorted({o.kind for o in runs}) or ["app"]
    for app in apps:
        for kind in kinds:
            if not any(k[:2] == (app, kind) for k in by_status):
                continue
            for status in Status:
                out.sample("switchyard_orchestrations", by_status.get((app, kind, status.value), 0),
                           app=app, kind=kind, status=status.value)
    out.family("switchyard_batches", "gauge", "Batches of those orchestrations by app and batch status.")
    for app in apps:
        for status in BatchStatus:
            out.sample("switchyard_batches", batches_by_status.get((app, status.value), 0),
                       app=app, status=status.value)
    out.family("switchyard_batch_duration_seconds", "histogram", "Duration of completed batches.")
    for app in apps:
        for bound, count in zip(DURATION_BUCKETS, buckets[app]):
            out.sample("switchyard_batch_duration_seconds_bucket", count, app=app, le=_number(float(bound)))
        out.sample("switchyard_batch_duration_seconds_bucket", duration_count[app], app=app, le="+Inf")
        out.sample("switchyard_batch_duration_seconds_sum", float(duration_sum[app]), app=app)
        out.sample("switchyard_batch_duration_seconds_count", duration_count[app], app=app)
    out.family("switchyard_active_workers", "gauge", "Workers of running, pausing or cancelling orchestrations.")
    for app in apps:
        out.sample("switchyard_active_workers", active_workers.get(app, 0), app=app)
    out.family("switchyard_last_run_seconds", "gauge", "Duration of the newest completed run.")
    for app, o in sorted(last_run.items()):
        out.sample("switchyard_last_run_seconds", float(_seconds(o, now) or 0.0), app=app,
                   mode=mode_string(o.mode), id=o.id)
    out.family("switchyard_last_run_workers", "gauge", "Workers of the newest completed run.")
    for app, o in sorted(last_run.items()):
        out.sample("switchyard_last_run_workers", sum(int(n) for n in (o.workers or {}).values()), app=app,
                   mode=mode_string(o.mode), id=o.id)
    out.family("switchyard_metrics_runs_considered", "gauge", "Orchestrations these metrics were computed over.")
    out.sample("switchyard_metrics_runs_considered", len(runs))
    return out.text()
