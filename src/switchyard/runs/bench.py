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
    workspace.atomic_write_json(benchmark_path(app_env), doc)
    return doc


def _timing(run_dir: str) -> dict:
    try:
        return json.loads((Path(run_dir) / "timing.json").read_text())
    except (OSError, ValueError):
        return {}
