"""The flight app's own args form (the Orchestrate page toggles between it and the generated one).

Contract: ``args_form(args, model)`` draws widgets for the current ``[args]``
(a dict) and returns the new args when the operator saves, else None. The page
validates the result with the app's args model and writes the changed keys.
"""

from __future__ import annotations

import streamlit as st

ROW_CHOICES = [500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000]
CHUNK_CHOICES = [1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000]


def _nearest(value, choices):
    try:
        value = int(value)
    except (TypeError, ValueError):
        return choices[0]
    return min(choices, key=lambda c: abs(c - value))


def _clamp(value, low, high, default):
    try:
        return min(max(int(value), low), high)
    except (TypeError, ValueError):
        return default


def args_form(args: dict, model: type) -> dict | None:
    defaults = {name: f.default for name, f in model.model_fields.items()}
    with st.form("flight-args-custom", border=False):
        st.caption("Synthetic telemetry: one CSV file per partition, one aircraft per file.")
        c1, c2 = st.columns(2)
        files = c1.slider("Telemetry files (partitions)", 1, 500,
                          _clamp(args.get("files"), 1, 500, defaults["files"]))
        rows = c2.select_slider("Typical rows per file", ROW_CHOICES,
                                value=_nearest(args.get("rows_per_file", defaults["rows_per_file"]), ROW_CHOICES))
        aircraft = c1.number_input("Aircraft", min_value=1, max_value=9999,
                                   value=_clamp(args.get("aircraft"), 1, 9999, defaults["aircraft"]))
        chunk = c2.select_slider("Rows per work item (pool mode splits files into these)", CHUNK_CHOICES,
                                 value=_nearest(args.get("chunk_rows", defaults["chunk_rows"]), CHUNK_CHOICES))
        seed = st.number_input("Seed (same seed, same files)", min_value=0,
                               value=_clamp(args.get("seed"), 0, 2**53 - 1, defaults["seed"]))
        if st.form_submit_button("Save args", type="primary"):
            return {"files": int(files), "rows_per_file": int(rows), "aircraft": int(aircraft),
                    "seed": int(seed), "chunk_rows": int(chunk)}
    return None
