"""BENCHMARK: one run per enabled mode this machine supports; ``benchmark.json``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from switchyard import workspace
from switchyard.app import AppEnv
from switchyard.modes import enabled_modes, mode_string, unsupported_reason
from switchyard.runs.request import resolve
from switchyard.runs.submit import run_sync

Line = Callable[[str], None]


def benchmark_path(app_env: AppEnv) -> Path:
    return app_env.home / "benchmark" / app_env.app / "benchmark.json"


def benchmark_sync(app_env: AppEnv, modes_enabled: int | str | None = None, scheduler: str | None = None,
                   workers: dict[str, int] | None = None, on_line: Line | None = None, **args: Any) -> dict:
    """Run every mode allowed by ``modes_enabled`` that this machine supports; write benchmark.json."""
    on_line = on_line or (lambda line: print(line, flush=True))
    req = resolve(app_env, mode=modes_enabled, scheduler=scheduler, workers=workers, args=args).request
    rows = []
    for mode in enabled_modes(req.modes):
        reason = unsupported_reason(mode)
        if reason:
            on_line(f"benchmark: skipping mode {int(mode)} ({mode_string(mode)}): {reason}")
            rows.append({"mode": int(mode), "mode_string": mode_string(mode), "status": "skipped",
                         "seconds": None, "reason": reason})
            continue
        on_line(f"benchmark: mode {int(mode)} ({mode_string(mode)})")
        res = run_sync(app_env, mode=int(mode), scheduler=req.scheduler, workers=dict(req.workers),
                       on_line=on_line, **dict(req.args))
        timing = _timing(res.run_dir)
        rows.append({"mode": int(mode), "mode_string": mode_string(mode), "status": res.status,
                     "seconds": res.seconds, "execution_seconds": timing.get("execution_seconds"),
                     # what the batches computed on, from the worker-side probe: device -> batches
                     "devices": timing.get("devices") or {},
                     "orchestration_id": res.orchestration_id})
    ok = [r for r in rows if r["status"] == "completed"]
    fastest = min(ok, key=lambda r: r["seconds"])["mode"] if ok else None
    doc = {"app": app_env.app, "args": dict(req.args), "workers": dict(req.workers), "created_at": time.time(),
           "results": rows, "fastest": fastest}
    return record_benchmark(benchmark_path(app_env), doc)


HISTORY_KEEP = 200  # benchmark runs kept per app
_ENTRY_KEYS = ("created_at", "args", "workers", "results", "fastest")


def load_benchmark(path: Path | str) -> dict | None:
    """benchmark.json with its ``history`` (oldest first); a file written before histories were
    kept is its own one-entry history. None when missing or unreadable."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        return None
    history = doc.get("history")
    if not isinstance(history, list):
        history = [{k: doc.get(k) for k in _ENTRY_KEYS}]
    return {**doc, "history": [h for h in history if isinstance(h, dict)]}


def record_benchmark(path: Path | str, doc: dict) -> dict:
    """Write ``doc`` (one benchmark run) as the latest benchmark, appended to the history kept in
    the file. The top-level keys stay today's format (the latest run), so older readers work."""
    previous = load_benchmark(path)
    history = (previous or {}).get("history", [])
    history = [*history, {k: doc.get(k) for k in _ENTRY_KEYS}][-HISTORY_KEEP:]
    out = {**doc, "history": history}
    workspace.atomic_write_json(Path(path), out)
    return out


def history_rows(doc: dict) -> list[dict]:
    """One row per (benchmark run, mode that completed): when, mode, seconds, args, workers, device."""
    rows = []
    for entry in doc.get("history", []):
        args = ", ".join(f"{k}={v}" for k, v in sorted((entry.get("args") or {}).items()))
        workers = sum(int(n) for n in (entry.get("workers") or {}).values())
        for r in entry.get("results") or []:
            if r.get("status") != "completed" or r.get("seconds") is None:
                continue
            devices = r.get("devices") or {}
            rows.append({"created_at": entry.get("created_at"), "mode": r.get("mode"),
                         "mode_string": r.get("mode_string"), "seconds": r.get("seconds"), "args": args,
                         "workers": workers, "device": ", ".join(sorted(devices)) or None})
    return rows


def _timing(run_dir: str) -> dict:
    try:
        return json.loads((Path(run_dir) / "timing.json").read_text())
    except (OSError, ValueError):
        return {}
