"""Load data (a preview of the latest run output) and Export (chosen columns to export.csv)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from switchyard import export
from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError
from switchyard.ui.common import show_error, snippet_block
from switchyard.workspace import atomic_write_text


def _preview_key(app_env: AppEnv) -> str:
    return f"preview-{app_env.app}"


def _snippet(app_env: AppEnv, text: str, name: str, key: str) -> None:
    """The button's Python (the CLI equivalent in the caption), saved beside the other snippets."""
    with st.expander("Python snippet", expanded=False):
        snippet_block(text, name, lambda: atomic_write_text(app_env.home / "snippets" / app_env.app / name, text),
                      key=key)


def render_load(app_env: AppEnv, store=None) -> export.Preview | None:
    """The Load data section; the preview is kept in the session so it survives reruns."""
    key = _preview_key(app_env)
    _snippet(app_env, export.load_data_snippet(app_env), "AGI_load_data.py", f"load-snippet-{app_env.app}")
    st.caption(f"CLI: `switchyard output {app_env.app} [--run ID] [--rows N] [--json]`")
    if st.button("LOAD DATA", type="primary", key=f"load-go-{app_env.app}",
                 help="previews the output of the app's latest completed run"):
        try:
            st.session_state[key] = export.preview(app_env, store=store)
        except SwitchyardError as e:
            st.session_state.pop(key, None)
            show_error(e)
    p: export.Preview | None = st.session_state.get(key)
    if p is None:
        st.caption("LOAD DATA shows the first rows, the row count and the column types of the latest run output.")
        return None
    st.caption(f"`{p.path}`" + (f" · run `{p.orchestration_id}`" if p.orchestration_id else ""))
    m1, m2 = st.columns(2)
    m1.metric("Rows", f"{p.rows:,}")
    m2.metric("Columns", len(p.columns))
    left, right = st.columns([3, 1])
    with left, st.container(key="load-preview"):
        st.dataframe(p.head, hide_index=True, width="stretch")
    with right:
        st.dataframe(pd.DataFrame({"column": list(p.dtypes), "dtype": list(p.dtypes.values())}),
                     hide_index=True, width="stretch")
    return p


def render_export(app_env: AppEnv, store=None) -> None:
    """The Export section: a column selector with Select all; writes export.csv and says where."""
    p: export.Preview | None = st.session_state.get(_preview_key(app_env))
    if p is None:
        st.info("LOAD DATA first: the export takes its columns from the loaded output.")
        return
    pick_key = f"export-columns-{app_env.app}-{p.path}"

    def select_all() -> None:
        st.session_state[pick_key] = list(p.columns)

    c1, c2 = st.columns([5, 1], vertical_alignment="bottom")
    chosen = c1.multiselect("Columns to export", p.columns, key=pick_key)
    c2.button("Select all", on_click=select_all, key=f"export-all-{app_env.app}")
    if chosen:
        _snippet(app_env, export.export_snippet(app_env, chosen, p.orchestration_id), "AGI_export.py",
                 f"export-snippet-{app_env.app}")
        st.caption(f"CLI: `switchyard export {app_env.app} --columns {','.join(chosen)}"
                   + (f" --run {p.orchestration_id}`" if p.orchestration_id else "`"))
    st.caption(f"writes `{export.export_path(app_env)}` for the Pipeline and Analysis pages")
    done_key = f"export-done-{app_env.app}"
    if st.button("EXPORT", type="primary", key=f"export-go-{app_env.app}", disabled=not chosen):
        try:
            path = export.write_export(app_env, chosen, source=p.path, store=store, run_id=p.orchestration_id)
            st.session_state[done_key] = f"Wrote {len(chosen)} column(s) × {p.rows:,} rows to {path}"
        except SwitchyardError as e:
            show_error(e)
    if st.session_state.get(done_key):
        st.success(st.session_state[done_key])
