"""Widgets of the Analysis page: the data source, view choices, view panels and run panels.

Every figure and table comes from ``switchyard.analysis``; these functions
only lay out widgets, keep the operator's choices in ``[analysis]`` and show
operator errors as messages, never as tracebacks.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from switchyard.analysis import data as adata
from switchyard import lineage
from switchyard.analysis import prefs as aprefs, runs as aruns
from switchyard.analysis.charts import lat_lon_columns
from switchyard.analysis.views import Choice, View, ViewRegistry, ViewResult
from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError
from switchyard.ui.common import show_error

NEXT_STEP = "Pick other columns or another file; the message says which."
ENCODINGS = ("utf-8", "latin-1", "cp1252", "utf-16")


@st.cache_resource(max_entries=4, show_spinner=False)
def _load(stamp: tuple[str, int, int], encoding: str, home: str) -> adata.LoadedData:
    # Keyed by (path, mtime, size): a rewritten export is read again, an unchanged one never.
    return adata.load_table(stamp[0], home=Path(home), encoding=encoding)


def load(path: Path, encoding: str, sample_rows: int, home: Path) -> adata.LoadedData:
    """The loaded table (cached while the file is unchanged); raises AnalysisError."""
    resolved = adata.resolve_path(path, home)
    return _load(adata.file_stamp(resolved), encoding, str(home)).with_sample_rows(sample_rows)


def source_picker(app_env: AppEnv, prefs: aprefs.AnalysisPrefs) -> tuple[Path, str]:
    """Where the data comes from: the app's export.csv, or a file of the workspace."""
    export = adata.export_file(app_env.app, app_env.home)
    key = f"an-{app_env.app}-source"
    with st.expander("Data source", expanded=bool(prefs.source)):
        kinds = ["export.csv of the app", "another file in the workspace"]
        kind = st.radio("Load", kinds, index=1 if prefs.source else 0, key=f"{key}-kind", horizontal=True)
        source, encoding = "", prefs.encoding
        if kind == kinds[1]:
            source = st.text_input("Path (relative to the workspace, or absolute inside it)",
                                   value=prefs.source, key=f"{key}-path",
                                   placeholder="e.g. runs/<id>/output/segments.parquet",
                                   help=f"workspace: {app_env.home}")
        encoding = st.selectbox("CSV encoding", ENCODINGS,
                                index=ENCODINGS.index(encoding) if encoding in ENCODINGS else 0,
                                key=f"{key}-encoding")
        sample_rows = st.number_input("Plots sample above this many rows", min_value=adata.MIN_SAMPLE_ROWS,
                                      value=prefs.sample_rows, step=10_000, key=f"{key}-sample")
        changes = {k: v for k, v in (("source", source), ("encoding", encoding),
                                     ("sample_rows", int(sample_rows)))
                   if v != getattr(prefs, k)}
        if changes:
            _save(lambda: aprefs.save_prefs(app_env.settings_path, **changes))
            for k, v in changes.items():
                setattr(prefs, k, v)
    return (Path(source) if source.strip() else export), encoding


def _save(write) -> None:
    try:
        write()
    except SwitchyardError as e:
        st.warning(f"Your choice is used but could not be saved: {e}")


def data_header(data: adata.LoadedData) -> None:
    """Rows, columns, size and sampling of the loaded data; its columns and lineage on demand."""
    a, b, c, d = st.columns(4)
    a.metric("Rows", f"{data.rows:,}")
    b.metric("Columns", len(data.columns))
    c.metric("File size", _size(data.file_bytes))
    d.metric("Plotted rows", f"{min(data.rows, data.sample_rows):,}",
             help="Plots draw a random sample above the sample size (see Data source).")
    st.caption(f"`{data.path}`" + (f" — {data.sample_note} in plots" if data.sample_note else ""))
    for note in data.notes:
        st.info(note)
    with st.expander("Columns and types"):
        st.dataframe(data.dtypes(), hide_index=True)
    with st.expander("Lineage"):
        lineage_panel(data.path)


def lineage_panel(path: Path) -> None:
    try:
        doc = lineage.read_lineage(path)
    except SwitchyardError as e:
        show_error(e, "Export the data again to rewrite its lineage.")
        return
    if doc is None:
        st.caption(f"No lineage recorded for {path.name} (no {lineage.sidecar_path(path).name}).")
        return
    state = lineage.lineage_state(path, doc)
    if state != "current":
        st.warning(f"{path.name} {state} since its lineage was recorded.")
    st.markdown(f"**run** `{doc.get('run_id') or '?'}` of app **{doc.get('app')}**, plan "
                f"`{doc.get('plan_fingerprint') or '?'}`, recorded {_clock(doc.get('created_at'))}")
    st.json({"args": doc.get("args", {}), "columns": doc.get("columns")}, expanded=False)
    files = [{"role": role, **rec} for role in ("inputs", "derived_from") for rec in doc.get(role, [])]
    if files:
        st.dataframe(pd.DataFrame(files), hide_index=True)


def views_picker(app_env: AppEnv, registry: ViewRegistry, data: adata.LoadedData,
                 prefs: aprefs.AnalysisPrefs) -> list[View]:
    """Which views to show (saved in ``analysis.views``)."""
    names = registry.names()
    if prefs.views is not None:
        default = [v for v in prefs.views if v in names]
    else:
        lat, lon = lat_lon_columns(data)
        default = (["map"] if lat and lon else []) + ["chart", "summary"]
    titles = {v.name: v.title for v in registry}
    chosen = st.multiselect("Views", names, default=default, format_func=lambda n: titles.get(n, n),
                            key=f"an-{app_env.app}-views")
    if chosen != default:
        _save(lambda: aprefs.save_prefs(app_env.settings_path, views=list(chosen)))
    return [registry.get(n) for n in chosen]


def view_panel(app_env: AppEnv, view: View, data: adata.LoadedData, saved: dict[str, Any]) -> None:
    """One view: its pickers, its figure or table, its caption; choices saved when changed."""
    prefix = f"an-{app_env.app}-{_columns_id(data)}-{view.name}"
    with st.container(border=True, key=f"view-{view.name}"):
        st.subheader(view.title)
        try:
            start = view.resolve(data, saved)
            choices = view.choices(data)
            chosen = dict(start)
            # options (radios) on their own rows, then the column pickers side by side
            for choice in choices:
                if choice.kind == "option":
                    chosen[choice.key] = choice_widget(choice, data, start.get(choice.key), prefix)
            pickers = [c for c in choices if c.kind in ("column", "columns")]
            for column, choice in zip(st.columns(max(1, min(len(pickers), 5))), pickers):
                with column:
                    chosen[choice.key] = choice_widget(choice, data, start.get(choice.key), prefix)
            for choice in choices:
                if choice.kind == "filters":
                    chosen[choice.key] = filters_widget(data, start.get(choice.key) or [], prefix)
            if chosen != start:
                _save(lambda: aprefs.save_view_choices(app_env.settings_path, view.name, chosen, start))
            result = view.render(data, chosen)
        except SwitchyardError as e:
            show_error(e, NEXT_STEP)
            return
        show_result(result, prefix)


def _columns_id(data: adata.LoadedData) -> str:
    # Widgets of another file (other columns) must not inherit this file's picks.
    return hashlib.sha1("\x1f".join(data.columns).encode()).hexdigest()[:8]


def choice_widget(choice: Choice, data: adata.LoadedData, value: Any, prefix: str) -> Any:
    key = f"{prefix}-{choice.key}"
    options = choice.candidates(data)
    if choice.kind == "columns":
        return st.multiselect(choice.label, options, default=[v for v in value or [] if v in options],
                              key=key, help=choice.help or None)
    if choice.kind == "option":
        index = options.index(value) if value in options else 0
        return st.radio(choice.label, options, index=index, key=key, horizontal=True,
                        help=choice.help or None)
    if choice.optional:
        options = [None, *options]
    index = options.index(value) if value in options else 0
    return st.selectbox(choice.label, options, index=index, key=key, help=choice.help or None,
                        format_func=lambda c: "(none)" if c is None else f"{c} · {data.kinds.get(c, '')}")


def filters_widget(data: adata.LoadedData, value: list[dict], prefix: str) -> list[dict]:
    """Row filters: pick columns, then a range, values or text per column."""
    saved = {f["column"]: f for f in value if f.get("column") in data.kinds}
    columns = st.multiselect("Filter on", data.columns, default=list(saved), key=f"{prefix}-filter-on")
    filters = []
    for c in columns:
        kind, s, key = data.kinds[c], data.frame[c], f"{prefix}-filter-{c}"
        old = saved.get(c, {}).get("value")
        if kind == "numeric":
            lo, hi = float(s.min()), float(s.max())
            if lo == hi:
                st.caption(f"{c}: every row has {lo:g}")
                continue
            start = tuple(old) if isinstance(old, list) and len(old) == 2 else (lo, hi)
            start = (max(lo, min(hi, float(start[0]))), max(lo, min(hi, float(start[1]))))
            low, high = st.slider(c, lo, hi, value=start, key=key)
            filters.append({"column": c, "op": "between", "value": [low, high]})
        elif kind == "datetime":
            lo, hi = _naive(s.min()), _naive(s.max())
            if lo == hi:
                st.caption(f"{c}: every row has {lo}")
                continue
            start = (lo, hi)
            if isinstance(old, list) and len(old) == 2:
                start = tuple(min(hi, max(lo, _naive(pd.Timestamp(v)))) for v in old)
            low, high = st.slider(c, lo, hi, value=start, key=key, format="YYYY-MM-DD HH:mm")
            filters.append({"column": c, "op": "between", "value": [low.isoformat(), high.isoformat()]})
        elif kind == "category":
            values = [str(v) for v in s.astype(str).value_counts().index[:200]]
            picked = st.multiselect(c, values, default=[v for v in (old or values) if v in values], key=key)
            filters.append({"column": c, "op": "in", "value": picked})
        else:
            text = st.text_input(f"{c} contains", value=old if isinstance(old, str) else "", key=key)
            filters.append({"column": c, "op": "contains", "value": text})
    return filters


def _naive(t: Any) -> datetime:
    t = pd.Timestamp(t)
    if t.tzinfo is not None:
        t = t.tz_convert(timezone.utc).tz_localize(None)
    return t.to_pydatetime()


def show_result(result: ViewResult, key: str) -> None:
    if result.figure is not None:
        st.plotly_chart(result.figure, key=f"{key}-figure", config={"displaylogo": False})
    if result.table is not None:
        st.dataframe(result.table, hide_index=result.table.index.name is None, key=f"{key}-table")
    if result.caption:
        st.caption(result.caption)


# -- runs -------------------------------------------------------------------------------------

def run_label(o) -> str:
    seconds = aruns.run_seconds(o)
    took = f", {seconds:.1f} s" if seconds is not None else ""
    return f"{o.id} · {o.status.value} · mode {o.mode}{took}"


def run_detail(store, oid: str) -> None:
    """Gantt timeline, batch durations and throughput of one run."""
    o = store.get(oid)
    batches = store.batches(oid)
    st.plotly_chart(aruns.gantt_figure(batches, title=f"batches per worker of {oid}"), key=f"gantt-{oid}")
    left, right = st.columns(2)
    with left:
        st.plotly_chart(aruns.duration_figure(batches), key=f"durations-{oid}")
    table = aruns.throughput_table(batches)
    with right:
        if table.empty or table["items_per_s"].isna().all():
            st.info("Throughput appears once batches have completed.")
        else:
            per = st.radio("Throughput of", ["items", "weight"], horizontal=True, key=f"per-{oid}",
                           help="weight is the app's cost estimate of a partition (input bytes for flight)")
            st.plotly_chart(aruns.throughput_figure(table, per), key=f"throughput-{oid}-{per}")
    st.dataframe(table, hide_index=True, key=f"throughput-table-{oid}")
    if o.error:
        st.error(f"run {oid}: {o.error}")


def benchmark_panel(path: Path) -> None:
    try:
        doc = aruns.read_benchmark(path)
    except SwitchyardError as e:
        show_error(e, "Run the benchmark again.")
        return
    if doc is None:
        st.info(f"No benchmark yet ({path} is missing): run `switchyard bench APP` or the BENCHMARK "
                "action of the Orchestrate page.")
        return
    st.plotly_chart(aruns.benchmark_figure(doc), key="benchmark")
    st.dataframe(aruns.benchmark_table(doc), hide_index=True, key="benchmark-table")


def compare_panel(store, runs: list) -> None:
    if len(runs) < 2:
        st.info("Comparing needs two runs of this app.")
        return
    labels = {o.id: run_label(o) for o in runs}
    ids = list(labels)
    a_col, b_col = st.columns(2)
    a = a_col.selectbox("Run A", ids, index=1, format_func=labels.get, key="compare-a")
    b = b_col.selectbox("Run B", ids, index=0, format_func=labels.get, key="compare-b")
    oa, ob = store.get(a), store.get(b)
    ba, bb = store.batches(a), store.batches(b)
    table = aruns.compare_table(oa, ba, ob, bb)
    st.dataframe(table, key="compare-table", height=35 * (len(table) + 1) + 3)
    st.plotly_chart(aruns.compare_figure(a, ba, b, bb), key="compare-figure")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _clock(t: Any) -> str:
    if not isinstance(t, (int, float)):
        return "?"
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def benchmark_history(path: Path, key: str) -> None:
    """Seconds per mode over the benchmark runs kept in benchmark.json (one point per run and mode)."""
    import plotly.graph_objects as go

    from switchyard.runs.bench import history_rows, load_benchmark

    doc = load_benchmark(path)
    rows = pd.DataFrame(history_rows(doc) if doc else [])
    if rows.empty:
        return
    runs = rows["created_at"].nunique()
    st.markdown(f"**Benchmark history** ({runs} run{'s' if runs != 1 else ''})")
    rows["when"] = pd.to_datetime(rows["created_at"], unit="s")
    fig = go.Figure()
    for (mode, ms), part in rows.groupby(["mode", "mode_string"], sort=True):
        fig.add_trace(go.Scatter(
            x=part["when"], y=part["seconds"], mode="lines+markers", name=f"mode {mode} ({ms})",
            customdata=part[["args", "workers", "device"]].fillna("").values,
            hovertemplate="%{y:.2f} s<br>args %{customdata[0]}<br>%{customdata[1]} workers"
                          "<br>%{customdata[2]}<extra></extra>"))
    fig.update_layout(height=260, margin=dict(l=10, r=10, t=10, b=10), yaxis_title="seconds")
    with st.container(key=key):
        st.plotly_chart(fig, width="stretch", config={"displayModeBar": False}, key=f"{key}-chart")
