"""The ``AGI`` facade: install, get_distrib, run, benchmark and serve, as async calls.

The UI buttons, the generated snippets and the CLI all take the same path: these
methods call the engine below (:mod:`switchyard.runs.submit`, ``runs.install``,
``runs.bench``, and :mod:`switchyard.service` for ``serve``). Arguments left out
come from the app's ``app_settings.toml``; app args given as keywords override
its ``[args]``. Nothing below the faces imports this module.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from switchyard.app import AppEnv
from switchyard.modes import Mode
from switchyard.runs.request import RunRequest
from switchyard.runs.submit import RunResult

Line = Callable[[str], None]

__all__ = ["AGI", "RunRequest", "RunResult"]


class AGI:
    """Async facade; every method runs the same library code as the UI and the CLI."""

    PYTHON_MODE = 0
    POOL = int(Mode.POOL)
    CYTHON = int(Mode.CYTHON)
    DASK = int(Mode.DASK)
    RAPIDS = int(Mode.RAPIDS)

    @staticmethod
    async def install(app_env: AppEnv, modes_enabled: int | str | None = None,
                      workers: dict[str, int] | None = None, on_line: Line | None = None, force: bool = False):
        """Provision the app's worker environment (uv venv, deps, Cython build when asked)."""
        from switchyard.runs.install import install_sync

        return await asyncio.to_thread(install_sync, app_env, modes_enabled, workers, on_line, force)

    @staticmethod
    async def get_distrib(app_env: AppEnv, scheduler: str | None = None, workers: dict[str, int] | None = None,
                          costs: str | None = None, **args: Any):
        """Compute and save the work plan on the workers RUN will use; returns the WorkPlan
        (``plan.workers_from`` and ``plan.note`` say where those workers come from).

        ``costs="measured"`` plans from the costs measured in the app's completed runs (the
        app's weights, scaled, for partitions never measured); ``"weights"`` (the default)
        from the app's weights. ``plan.cost_note`` says which costs the plan used.
        """
        from switchyard.runs.submit import get_distrib

        return await asyncio.to_thread(get_distrib, app_env, scheduler, workers, True, None, costs, **args)

    @staticmethod
    async def run(app_env: AppEnv, mode: int | str | None = None, scheduler: str | None = None,
                  workers: dict[str, int] | None = None, detach: bool = False, on_line: Line | None = None,
                  request: RunRequest | None = None, backups: bool | None = None, **args: Any) -> RunResult:
        """Run the app as an orchestration; waits for its end unless ``detach``.

        Options and app args come as keywords (``mode=4, workers=..., files=8``) or as one
        ``request=RunRequest(mode=4, args={"files": 8})``; keywords win over the request.
        ``backups=True`` starts backup copies of straggling batches near the run's end (off by
        default; only for apps whose class sets ``pure_batches = True``, on Dask).
        """
        from switchyard.runs.submit import run_sync

        options = {"backups": backups} if backups is not None else None
        return await asyncio.to_thread(run_sync, app_env, mode, scheduler, workers, detach, on_line,
                                       request, options=options, **args)

    @staticmethod
    async def load_data(app_env: AppEnv, rows: int = 20, run: str | None = None):
        """What LOAD DATA shows: an :class:`~switchyard.export.Preview` (first ``rows`` rows, row
        count, dtypes) of the output of run ``run`` or of the app's latest completed run."""
        from switchyard.export import preview

        return await asyncio.to_thread(preview, app_env, rows, None, None, run)

    @staticmethod
    async def export(app_env: AppEnv, columns: list[str] | None = None, run: str | None = None):
        """What EXPORT does: write ``columns`` (None: all) of the run's output to export.csv (with
        its lineage sidecar); returns the path written."""
        from switchyard.export import output_of, read_output, write_export

        def go():
            oid, source = output_of(app_env, run)
            chosen = list(columns) if columns is not None else [str(c) for c in read_output(source, rows=0).columns]
            return write_export(app_env, chosen, source=source, run_id=oid)

        return await asyncio.to_thread(go)

    @staticmethod
    async def serve(app_env: AppEnv, action: str = "status", **kwargs: Any) -> dict:
        """Service mode: ``start``, ``status``, ``health``, ``stop`` or ``submit`` jobs to long-lived loops.

        Returns the ``agi.service.health.v1`` payload (also written to health.json); see
        :func:`switchyard.service.service.serve_sync` for the keyword arguments.
        """
        from switchyard.service.service import serve_sync

        return await asyncio.to_thread(serve_sync, app_env, action, **kwargs)

    @staticmethod
    async def benchmark(app_env: AppEnv, modes_enabled: int | str | None = None, scheduler: str | None = None,
                        workers: dict[str, int] | None = None, on_line: Line | None = None, **args: Any) -> dict:
        """Run every enabled mode and write benchmark.json (seconds per mode)."""
        from switchyard.runs.bench import benchmark_sync

        return await asyncio.to_thread(benchmark_sync, app_env, modes_enabled, scheduler, workers, on_line,
                                       **args)
