"""Run output for the Load data preview, and ``export.csv`` for the Pipeline and Analysis pages.

The output of a run is the path its app's ``reduce`` returned (recorded in the
run store): a Parquet, CSV or JSON-lines file, or a folder of Parquet files.
The export goes to ``<workspace>/export/<app>/export.csv`` (or
``$SWITCHYARD_EXPORT/<app>/export.csv``) and is written atomically.
"""

from __future__ import annotations

import ast
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from switchyard import workspace
from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError

EXPORT_FILE = "export.csv"
PARQUET = (".parquet", ".pq")


class ExportError(SwitchyardError):
    """No run output to load, an unreadable one, or a bad column choice."""

    category = "export"


@dataclass
class Preview:
    """The first rows of a run's output, with its size and column types."""

    path: Path
    orchestration_id: str | None
    rows: int
    columns: list[str]
    dtypes: dict[str, str]
    head: pd.DataFrame


def latest_output(app_env: AppEnv, store=None) -> tuple[str, Path]:
    """The newest completed run of the app that has an output: (orchestration id, output path).

    Raises:
        ExportError: no completed run of the app, or its output file is gone.
    """
    from switchyard.runs.state import Status
    from switchyard.runs.store import RunStore

    store = store or RunStore(app_env.home / "switchyard.db")
    for o in store.list(status=Status.COMPLETED, app=app_env.app, kind="app", limit=20):
        if o.output:
            path = Path(o.output)
            if not path.exists():
                raise ExportError(f"the output of run {o.id} ({path}) is gone: run app "
                                  f"'{app_env.app}' again (RUN)")
            return o.id, path
    raise ExportError(f"app '{app_env.app}' has no completed run with an output yet: RUN it first")


def output_of(app_env: AppEnv, run_id: str | None = None, store=None) -> tuple[str, Path]:
    """(orchestration id, output path) of run ``run_id`` of the app, or of its latest completed run.

    Raises:
        ExportError: the run is unknown, of another app, not completed, or its output is gone.
    """
    if run_id is None:
        return latest_output(app_env, store)
    from switchyard.exceptions import NotFound
    from switchyard.runs.store import RunStore

    store = store or RunStore(app_env.home / "switchyard.db")
    try:
        o = store.get(run_id)
    except NotFound as e:
        raise ExportError(f"run '{run_id}' is not in the run store {app_env.home / 'switchyard.db'}: "
                          f"list the runs with `switchyard orch list --app {app_env.app}`") from e
    if o.app != app_env.app or o.kind != "app":
        raise ExportError(f"run '{run_id}' is a run of {o.kind} '{o.app}', not of app '{app_env.app}': "
                          "give a run of this app")
    if not o.output:
        raise ExportError(f"run '{run_id}' has no output (it is {o.status}): give a completed run")
    path = Path(o.output)
    if not path.exists():
        raise ExportError(f"the output of run {o.id} ({path}) is gone: run app '{app_env.app}' again (RUN)")
    return o.id, path


def _kind(path: Path) -> str:
    if path.is_dir():
        return "parquet-dir"
    suffix = path.suffix.lower()
    if suffix in PARQUET:
        return "parquet"
    if suffix == ".csv":
        return "csv"
    if suffix in (".json", ".jsonl", ".ndjson"):
        return "json"
    raise ExportError(f"run output {path}: cannot read '{suffix or path.name}' files: "
                      "make the app's reduce() write Parquet, CSV or JSON lines")


def read_output(path: Path | str, columns: list[str] | None = None, rows: int | None = None) -> pd.DataFrame:
    """Read a run output (only ``columns`` when given, only the first ``rows`` when given)."""
    path = Path(path)
    kind = _kind(path)
    try:
        if kind == "parquet" and rows is not None:
            f = pq.ParquetFile(path)
            batches, got = [], 0
            for batch in f.iter_batches(batch_size=max(rows, 1), columns=columns):
                batches.append(batch)
                got += batch.num_rows
                if got >= rows:
                    break
            schema = f.schema_arrow if columns is None else pa.schema([f.schema_arrow.field(c) for c in columns])
            return pa.Table.from_batches(batches, schema=schema).to_pandas().head(rows)
        if kind in ("parquet", "parquet-dir"):
            return pq.read_table(path, columns=columns).to_pandas()
        if kind == "csv":
            return pd.read_csv(path, usecols=columns, nrows=rows)
        frame = pd.read_json(path, lines=path.suffix.lower() != ".json")
        frame = frame[columns] if columns else frame
        return frame.head(rows) if rows is not None else frame
    except ExportError:
        raise
    except (OSError, ValueError, pa.ArrowException) as e:
        raise ExportError(f"run output {path} cannot be read ({type(e).__name__}: {e}): "
                          "run the app again (RUN)") from e


def count_rows(path: Path | str) -> int:
    path = Path(path)
    kind = _kind(path)
    if kind == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    if kind == "parquet-dir":
        return pq.read_table(path, columns=[]).num_rows
    return len(read_output(path))


def preview(app_env: AppEnv, rows: int = 20, path: Path | str | None = None, store=None,
            run_id: str | None = None) -> Preview:
    """The first ``rows`` rows of the latest run output (or of run ``run_id``, or of ``path``), its
    row count and dtypes: what LOAD DATA, ``AGI.load_data`` and ``switchyard output`` show."""
    oid = None
    if path is None:
        oid, path = output_of(app_env, run_id, store)
    path = Path(path)
    head = read_output(path, rows=rows)
    try:
        total = count_rows(path)
    except (OSError, ValueError, pa.ArrowException) as e:
        raise ExportError(f"run output {path} cannot be read ({e}): run the app again (RUN)") from e
    return Preview(path=path, orchestration_id=oid, rows=total, columns=[str(c) for c in head.columns],
                   dtypes={str(c): str(t) for c, t in head.dtypes.items()}, head=head)


def export_path(app_env: AppEnv) -> Path:
    """Where ``export.csv`` of the app goes (``SWITCHYARD_EXPORT`` overrides the workspace)."""
    return workspace.export_dir(app_env.app, app_env.home) / EXPORT_FILE


def check_columns(columns: list[str], available: list[str]) -> list[str]:
    """The chosen columns, in the order given; raise ExportError naming a bad one."""
    if not columns:
        raise ExportError("no columns chosen: pick at least one column to export (or Select all)")
    seen: set[str] = set()
    for c in columns:
        if c not in available:
            raise ExportError(f"column '{c}' is not in the run output: choose from {', '.join(available)}")
        if c in seen:
            raise ExportError(f"column '{c}' is chosen twice: choose each column once")
        seen.add(c)
    return list(columns)


def write_export(app_env: AppEnv, columns: list[str], source: Path | str | None = None,
                 store=None, run_id: str | None = None) -> Path:
    """Write the chosen columns of the latest run output (or of run ``run_id``, or of ``source``)
    to ``export.csv``, with its lineage sidecar: the Export button, ``AGI.export`` and
    ``switchyard export`` all call this.

    Returns:
        The path written.

    Raises:
        ExportError: no output, an unreadable output, or a column not in the output.
    """
    oid = run_id
    if source is None:
        oid, source = output_of(app_env, run_id, store)
    available = [str(c) for c in read_output(source, rows=0).columns]
    chosen = check_columns(list(columns), available)
    frame = read_output(source, columns=chosen)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    path = workspace.atomic_write_text(export_path(app_env), buffer.getvalue())
    try:  # where the export came from; a missing sidecar never fails the export
        from switchyard.lineage import write_export_lineage

        write_export_lineage(path, source, columns=chosen, store=store, run_id=oid, app=app_env.app)
    except Exception:
        pass
    return path


def preview_dict(p: Preview, rows: int | None = None) -> dict:
    """The JSON form of a preview: ``path``, ``run``, ``rows``, ``columns``, ``dtypes``, ``head`` (records)."""
    head = p.head if rows is None else p.head.head(rows)
    return {"path": str(p.path), "run": p.orchestration_id, "rows": p.rows, "columns": list(p.columns),
            "dtypes": dict(p.dtypes), "head": json.loads(head.to_json(orient="records", date_format="iso"))}


def _snippet(app_env: AppEnv, call: str, result: str) -> str:
    from switchyard.snippets import literal

    env = [literal(app_env.app, "app"), f"apps_dir={literal(str(app_env.apps_path), 'apps_dir')}"]
    if app_env.workspace:
        env.append(f"workspace={literal(str(app_env.home), 'workspace')}")
    text = ("import asyncio\n\nfrom switchyard import AGI, AppEnv\n\n"
            f"app_env = AppEnv({', '.join(env)})\n{result} = asyncio.run(AGI.{call})\nprint({result})\n")
    ast.parse(text)
    return text


def load_data_snippet(app_env: AppEnv, run_id: str | None = None, rows: int = 20) -> str:
    """The Python of LOAD DATA (``switchyard output``)."""
    from switchyard.snippets import literal

    run = f", run={literal(run_id, 'run')}" if run_id else ""
    return f"# Switchyard: load the output of app {app_env.app!r}\n" + _snippet(
        app_env, f"load_data(app_env, rows={literal(int(rows), 'rows')}{run})", "preview")


def export_snippet(app_env: AppEnv, columns: list[str], run_id: str | None = None) -> str:
    """The Python of EXPORT (``switchyard export``)."""
    from switchyard.snippets import literal

    run = f", run={literal(run_id, 'run')}" if run_id else ""
    return f"# Switchyard: export columns of app {app_env.app!r} to export.csv\n" + _snippet(
        app_env, f"export(app_env, columns={literal(list(columns), 'columns')}{run})", "path")
