"""Built-in figure views: the chart builder, the map and the correlation heatmap.

Plots draw the data's sample (:attr:`LoadedData.plot_frame`) and say so on the
figure; the bar chart aggregates every row instead.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from switchyard.analysis.data import LoadedData
from switchyard.analysis.views import Choice, View, ViewError, ViewResult, need_column

MAX_COLOR_VALUES = 20  # distinct colours before the rest become "(other)"
MAX_FACETS = 12
CHART_KINDS = ("scatter", "line", "bar", "histogram", "box")
MAP_STYLES = ("white-bg", "open-street-map", "carto-positron", "carto-darkmatter")
LATITUDE_NAMES = ("latitude", "lat")
LONGITUDE_NAMES = ("longitude", "lon", "lng", "long")


def _first(items: list[str], *prefer: str) -> str | None:
    for name in prefer:
        if name in items:
            return name
    return items[0] if items else None


def _colour_default(data: LoadedData, exclude: tuple[str | None, ...] = ()) -> str | None:
    frame = data.plot_frame
    for c in data.columns_of("category"):
        if c not in exclude and 1 < frame[c].nunique() <= MAX_COLOR_VALUES:
            return c
    return None


def _limit_colours(frame: pd.DataFrame, column: str | None, kinds: dict[str, str]) -> tuple[pd.DataFrame, str | None]:
    """Keep the most frequent values of a categorical colour column; the rest become (other)."""
    if not column or kinds.get(column) == "numeric":
        return frame, None
    counts = frame[column].astype(str).value_counts()
    if len(counts) <= MAX_COLOR_VALUES:
        return frame, None
    keep = set(counts.index[: MAX_COLOR_VALUES - 1])
    frame = frame.copy()
    values = frame[column].astype(str)
    frame[column] = values.where(values.isin(keep), "(other)")
    return frame, f"'{column}' has {len(counts):,} values: the {MAX_COLOR_VALUES - 1} most frequent are coloured"


def _check_facet(frame: pd.DataFrame, facet: str | None) -> None:
    if facet and frame[facet].nunique() > MAX_FACETS:
        raise ViewError(f"facet column '{facet}' has {frame[facet].nunique():,} values: pick one with at "
                        f"most {MAX_FACETS} (or none)")


def _subtitle(fig: Any, *notes: str | None) -> Any:
    text = "; ".join(n for n in notes if n)
    if text:
        fig.update_layout(title={"subtitle": {"text": text}})
    return fig


def _join(*parts: str | None) -> str | None:
    text = "; ".join(p for p in parts if p)
    return text or None


class ChartView(View):
    """Scatter, line, bar, histogram or box chart with x, y, colour and facet pickers."""

    name, title = "chart", "Chart"

    def choices(self, data: LoadedData) -> list[Choice]:
        return [
            Choice("kind", "Chart type", kind="option", options=CHART_KINDS),
            Choice("x", "x", optional=True),
            Choice("y", "y", accepts=("numeric", "datetime"), optional=True),
            Choice("color", "Colour", optional=True),
            Choice("facet", "Facet", accepts=("category",), optional=True),
        ]

    def defaults(self, data: LoadedData) -> dict[str, Any]:
        numeric, times = data.columns_of("numeric"), data.columns_of("datetime")
        cats = data.columns_of("category")
        # latitude/longitude belong on the map view; the chart starts from the other numbers
        plain = [c for c in numeric if c not in lat_lon_columns(data)]
        if len(plain) >= 2:
            kind, x, y = "scatter", plain[0], plain[1]
        elif times and numeric:
            kind, x, y = "line", times[0], (plain or numeric)[0]
        elif len(numeric) >= 2:
            kind, x, y = "scatter", _first(numeric, *LONGITUDE_NAMES), _first(numeric, *LATITUDE_NAMES)
            y = y if y != x else numeric[1]
        elif numeric and cats:
            kind, x, y = "box", cats[0], numeric[0]
        elif numeric:
            kind, x, y = "histogram", numeric[0], None
        else:
            kind, x, y = "bar", (cats or data.columns)[0], None
        color = _colour_default(data, exclude=(x, y)) if kind != "box" else None
        return {"kind": kind, "x": x, "y": y, "color": color, "facet": None}

    def render(self, data: LoadedData, chosen: dict[str, Any]) -> ViewResult:
        import plotly.express as px

        kind = chosen.get("kind") or "scatter"
        if kind not in CHART_KINDS:
            raise ViewError(f"chart type '{kind}' is unknown: choose one of {', '.join(CHART_KINDS)}")
        x, y, color, facet = (chosen.get(k) or None for k in ("x", "y", "color", "facet"))
        if kind in ("scatter", "line"):
            x, y = need_column(x, "an x", kind, data), need_column(y, "a y", kind, data, ("numeric", "datetime"))
        elif kind == "histogram":
            x = need_column(x, "an x", kind, data)
        elif kind == "box":
            y = need_column(y, "a y", kind, data, ("numeric",))
        else:
            x = need_column(x, "an x", kind, data)
        for c in (color, facet, x, y):
            if c is not None:
                need_column(c, "a column", kind, data)
        facet_args = {"facet_col": facet, "facet_col_wrap": 3} if facet else {}
        if kind == "bar":
            return self._bar(data, x, y, color, facet, facet_args)
        _check_facet(data.frame, facet)
        frame = data.plot_frame
        frame, colour_note = _limit_colours(frame, color, data.kinds)
        title = f"{kind}: " + (f"{y} by {x}" if x and y else (x or y))
        if kind == "scatter":
            fig = px.scatter(frame, x=x, y=y, color=color, title=title, **facet_args)
        elif kind == "line":
            fig = px.line(frame.sort_values(x, kind="stable"), x=x, y=y, color=color, title=title,
                          **facet_args)
        elif kind == "histogram":
            fig = px.histogram(frame, x=x, y=y, color=color, title=title, **facet_args)
        else:
            fig = px.box(frame, x=x, y=y, color=color, title=title, **facet_args)
        fig.update_layout(height=450)
        return ViewResult(figure=_subtitle(fig, data.sample_note, colour_note),
                          caption=_join(data.sample_note and f"plots a {data.sample_note}", colour_note))

    def _bar(self, data: LoadedData, x: str, y: str | None, color: str | None, facet: str | None,
             facet_args: dict) -> ViewResult:
        import plotly.express as px

        # Aggregated over every row (not the sample): one bar per x value.
        _check_facet(data.frame, facet)
        frame, colour_note = _limit_colours(data.frame, color, data.kinds)
        keys = [k for k in (x, color, facet) if k]
        keys = list(dict.fromkeys(keys))
        if y:
            agg = frame.groupby(keys, dropna=False, observed=True)[y].mean().reset_index()
            label = f"mean {y}"
            agg = agg.rename(columns={y: label})
        else:
            agg = frame.groupby(keys, dropna=False, observed=True).size().reset_index(name="rows")
            label = "rows"
        note = None
        if agg[x].nunique() > 200:
            top = agg.groupby(x)[label].sum().nlargest(200).index
            agg = agg[agg[x].isin(top)]
            note = f"'{x}' has too many values: the 200 largest bars are shown"
        fig = px.bar(agg, x=x, y=label, color=color, title=f"bar: {label} by {x}", **facet_args)
        fig.update_layout(height=450)
        return ViewResult(figure=_subtitle(fig, f"over all {data.rows:,} rows", note, colour_note),
                          caption=_join(note, colour_note))


def lat_lon_columns(data: LoadedData) -> tuple[str | None, str | None]:
    """The latitude and longitude columns, by name (``latitude``/``lat``, ``*_latitude``...)."""
    numeric = data.columns_of("numeric")

    def find(names: tuple[str, ...]) -> str | None:
        lowered = {c.lower(): c for c in numeric}
        for n in names:
            if n in lowered:
                return lowered[n]
        for c in numeric:
            if any(c.lower().endswith(("_" + n, n.capitalize())) for n in names):
                return c
        return None

    return find(LATITUDE_NAMES), find(LONGITUDE_NAMES)


class MapView(View):
    """Points at latitude/longitude on a map, coloured by a column."""

    name, title = "map", "Map"

    def choices(self, data: LoadedData) -> list[Choice]:
        return [
            Choice("lat", "Latitude", accepts=("numeric",), optional=True),
            Choice("lon", "Longitude", accepts=("numeric",), optional=True),
            Choice("color", "Colour", optional=True),
            Choice("style", "Background", kind="option", options=MAP_STYLES,
                   help="white-bg needs no internet; the others load map tiles from the web"),
        ]

    def defaults(self, data: LoadedData) -> dict[str, Any]:
        lat, lon = lat_lon_columns(data)
        return {"lat": lat, "lon": lon, "color": _colour_default(data), "style": MAP_STYLES[0]}

    def render(self, data: LoadedData, chosen: dict[str, Any]) -> ViewResult:
        import plotly.express as px

        if chosen.get("lat") is None and chosen.get("lon") is None:
            raise ViewError(f"{data.path.name} has no latitude/longitude columns: the map needs two "
                            "numeric columns such as 'latitude' and 'longitude'")
        lat = need_column(chosen.get("lat"), "a latitude", "the map", data, ("numeric",))
        lon = need_column(chosen.get("lon"), "a longitude", "the map", data, ("numeric",))
        color = chosen.get("color") or None
        if color:
            need_column(color, "a colour", "the map", data)
        style = chosen.get("style") or MAP_STYLES[0]
        frame = data.plot_frame.dropna(subset=[lat, lon])
        for column, bound in ((lat, 90), (lon, 180)):
            values = frame[column]
            if len(values) and (values.min() < -bound or values.max() > bound):
                raise ViewError(f"column '{column}' has values outside -{bound}..{bound}: it is not a "
                                f"{'latitude' if bound == 90 else 'longitude'}; pick another column")
        if frame.empty:
            raise ViewError(f"'{lat}' and '{lon}' have no rows with both values: pick other columns")
        frame, colour_note = _limit_colours(frame, color, data.kinds)
        center, zoom = map_view_box(frame[lat], frame[lon])
        # A label and a few numbers on hover: each extra column is copied per point by Plotly.
        label = next((c for c in data.columns_of("category", "text") if c != color), None)
        numbers = [c for c in data.columns_of("numeric") if c not in (lat, lon, color)][:3]
        fig = px.scatter_map(frame, lat=lat, lon=lon, color=color, map_style=style, zoom=zoom,
                             center=center, title=f"map: {lat} / {lon}", hover_name=label,
                             hover_data=numbers)
        fig.update_traces(marker={"size": 6})
        fig.update_layout(height=500, margin={"l": 0, "r": 0, "t": 60, "b": 0})
        offline = "no map tiles (works offline)" if style == "white-bg" else None
        return ViewResult(figure=_subtitle(fig, data.sample_note, colour_note),
                          caption=_join(data.sample_note and f"plots a {data.sample_note}", colour_note,
                                        offline))


def map_view_box(lat: pd.Series, lon: pd.Series, width_px: int = 600,
                 height_px: int = 420) -> tuple[dict[str, float], float]:
    """Centre and zoom that fit the points in a ``width_px`` x ``height_px`` map.

    At zoom z the world is 512 * 2**z pixels wide. Points spread over the whole world get
    zoom 0 (a wide map then shows copies of the world side by side, but no point is cut off).
    """
    lat_min, lat_max, lon_min, lon_max = lat.min(), lat.max(), lon.min(), lon.max()

    def fit(pixels: int, degrees: float) -> float:
        return math.log2(pixels * 360.0 / (512.0 * max(degrees, 1e-6) * 1.25))  # 1.25: a margin

    zoom = min(fit(width_px, lon_max - lon_min), fit(height_px, lat_max - lat_min))
    zoom = max(0.0, min(14.0, zoom))
    return {"lat": float((lat_min + lat_max) / 2), "lon": float((lon_min + lon_max) / 2)}, round(zoom, 2)


class CorrelationView(View):
    """Correlation heatmap of the numeric columns."""

    name, title = "correlation", "Correlation"

    def choices(self, data: LoadedData) -> list[Choice]:
        return [Choice("columns", "Columns", kind="columns", accepts=("numeric",)),
                Choice("method", "Method", kind="option", options=("pearson", "spearman"))]

    def defaults(self, data: LoadedData) -> dict[str, Any]:
        return {"columns": data.columns_of("numeric")[:20], "method": "pearson"}

    def render(self, data: LoadedData, chosen: dict[str, Any]) -> ViewResult:
        import plotly.express as px

        columns = [c for c in chosen.get("columns") or [] if data.kinds.get(c) == "numeric"]
        if len(columns) < 2:
            have = data.columns_of("numeric")
            raise ViewError(f"correlation needs at least two numeric columns: {data.path.name} has "
                            f"{len(have)}" + (f" ({', '.join(have)})" if have else "")
                            + ("; pick two or more" if len(have) >= 2 else ""))
        method = chosen.get("method") or "pearson"
        frame = data.frame if method == "pearson" else data.plot_frame
        corr = frame[columns].corr(method=method)
        corr.index.name = "column"  # named: the table shows the row labels
        fig = px.imshow(corr, text_auto=".2f", zmin=-1, zmax=1, color_continuous_scale="RdBu_r",
                        aspect="auto", title=f"{method} correlation")
        fig.update_layout(height=max(350, 40 * len(columns) + 150))
        note = data.sample_note if method != "pearson" else None
        return ViewResult(figure=_subtitle(fig, note), table=corr.round(4),
                          caption=note and f"computed on a {note}")
