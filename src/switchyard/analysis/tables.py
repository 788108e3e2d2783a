"""Built-in table views: the rows (with filters and a sort) and summary statistics."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from switchyard.analysis.data import LoadedData
from switchyard.analysis.views import FILTER_OPS, Choice, View, ViewError, ViewResult, need_column

TABLE_ROWS = 1000


class SummaryView(View):
    """Summary statistics of every column."""

    name, title = "summary", "Summary statistics"

    def render(self, data: LoadedData, chosen: dict[str, Any]) -> ViewResult:
        return ViewResult(table=summary_table(data), caption=f"{data.rows:,} rows, {len(data.columns)} columns")


def summary_table(data: LoadedData) -> pd.DataFrame:
    """One row per column: kind, non-null, nulls, distinct, mean, std, min, median, max, top value."""
    rows = []
    for c in data.columns:
        s = data.frame[c]
        kind = data.kinds[c]
        non_null = int(s.notna().sum())
        row: dict[str, Any] = {"column": c, "kind": kind, "non-null": non_null,
                               "nulls": len(s) - non_null, "distinct": int(s.nunique(dropna=True))}
        if kind == "numeric" and not pd.api.types.is_bool_dtype(s):
            row.update(mean=s.mean(), std=s.std(), min=s.min(), median=s.median(), max=s.max())
        elif kind == "datetime":
            row.update(min=str(s.min()), max=str(s.max()))
        else:
            counts = s.value_counts(dropna=True)
            if len(counts):
                row.update(top=str(counts.index[0]), top_count=int(counts.iloc[0]))
        rows.append(row)
    order = ["column", "kind", "non-null", "nulls", "distinct", "mean", "std", "min", "median", "max",
             "top", "top_count"]
    table = pd.DataFrame(rows)
    table = table[[c for c in order if c in table.columns]]
    for c in ("min", "max"):
        if c in table:  # numbers and dates side by side: show them as text
            table[c] = table[c].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v))
                                    else (f"{v:.6g}" if isinstance(v, float) else str(v)))
    return table


class TableView(View):
    """The rows, with filters, a sort column and a choice of columns."""

    name, title = "table", "Table"

    def choices(self, data: LoadedData) -> list[Choice]:
        return [Choice("columns", "Columns", kind="columns"),
                Choice("filters", "Filters", kind="filters"),
                Choice("sort", "Sort by", optional=True),
                Choice("order", "Order", kind="option", options=("ascending", "descending"))]

    def defaults(self, data: LoadedData) -> dict[str, Any]:
        return {"columns": data.columns[:30], "filters": [], "sort": None, "order": "ascending"}

    def render(self, data: LoadedData, chosen: dict[str, Any]) -> ViewResult:
        columns = [c for c in chosen.get("columns") or [] if c in data.kinds] or data.columns
        frame = apply_filters(data.frame, chosen.get("filters") or [], data.kinds)
        matching = len(frame)
        sort = chosen.get("sort")
        if sort:
            need_column(sort, "a sort column", "the table", data)
            frame = frame.sort_values(sort, ascending=chosen.get("order") != "descending", kind="stable")
        shown = frame[columns].head(TABLE_ROWS)
        caption = f"{matching:,} of {data.rows:,} rows match"
        if matching > TABLE_ROWS:
            caption += f"; showing the first {TABLE_ROWS:,}"
        return ViewResult(table=shown, caption=caption)


def apply_filters(frame: pd.DataFrame, filters: list[dict[str, Any]], kinds: dict[str, str]) -> pd.DataFrame:
    """Rows matching every filter: ``{"column", "op": "between"|"in"|"contains", "value"}``.

    ``between`` takes ``[low, high]`` (numbers, or ISO dates for a datetime column; None leaves
    a side open), ``in`` a list of values (compared as text), ``contains`` a text (any case).
    """
    if not filters:
        return frame
    mask = pd.Series(True, index=frame.index)
    for f in filters:
        column, op, value = f.get("column"), f.get("op"), f.get("value")
        if column not in frame.columns:
            raise ViewError(f"filter on column '{column}', which is not in the data: remove that filter")
        s = frame[column]
        if op == "between":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ViewError(f"filter on '{column}': between needs [low, high], got {value!r}")
            low, high = value
            if kinds.get(column) == "datetime":
                tz = getattr(s.dt, "tz", None)
                low, high = (None if v is None else _timestamp(v, tz) for v in (low, high))
            if low is not None:
                mask &= s >= low
            if high is not None:
                mask &= s <= high
        elif op == "in":
            mask &= s.astype(str).isin([str(v) for v in (value or [])])
        elif op == "contains":
            if value:
                mask &= s.astype(str).str.contains(str(value), case=False, regex=False, na=False)
        else:
            raise ViewError(f"filter on '{column}': unknown operation '{op}': use {', '.join(FILTER_OPS)}")
    return frame[mask]


def _timestamp(value: Any, tz: Any) -> pd.Timestamp:
    t = pd.Timestamp(value)
    if tz is not None and t.tzinfo is None:
        return t.tz_localize(tz)
    if tz is None and t.tzinfo is not None:
        return t.tz_convert(None)
    return t
