"""View types of the Analysis page: a registry of tables and Plotly figures over loaded data.

A view declares the choices it needs (:class:`Choice`: a column of some kinds,
several columns, an option, filters), picks defaults from the columns' kinds,
and renders a :class:`ViewResult` (a figure or a table, and a caption). The
page draws one widget per choice; nothing here imports streamlit, so an app
can add its own view types in ``<app folder>/analysis_views.py``::

    from switchyard.analysis.views import Choice, View, ViewResult

    class Tracks(View):
        name, title = "tracks", "Flight tracks"
        def choices(self, data): return [Choice("flight", "Flight", accepts=("category",))]
        def defaults(self, data): return {"flight": data.columns_of("category")[0]}
        def render(self, data, chosen): ...  # return ViewResult(figure=...)

    VIEWS = [Tracks()]
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from switchyard.analysis.data import AnalysisError, LoadedData
from switchyard.exceptions import AppLoadError

if TYPE_CHECKING:
    import pandas as pd

APP_VIEWS_FILE = "analysis_views.py"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class ViewError(AnalysisError):
    """A view cannot be drawn from this data with these choices."""


@dataclass(frozen=True)
class Choice:
    """One thing the operator picks for a view.

    Attributes:
        key: Name in the chosen dict and in ``[analysis.<view>]``.
        label: Widget label.
        kind: ``column`` (one column), ``columns`` (several), ``option`` (one of
            ``options``) or ``filters`` (row filters, see :func:`switchyard.analysis.tables.apply_filters`).
        accepts: Column kinds allowed (empty: any).
        options: The values of an ``option``.
        optional: A column choice that may be left empty (None).
    """

    key: str
    label: str
    kind: str = "column"
    accepts: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    optional: bool = False
    help: str = ""

    def candidates(self, data: LoadedData) -> list[str]:
        """What may be picked: the columns of accepted kinds, or the options."""
        if self.kind == "option":
            return list(self.options)
        return data.columns_of(*self.accepts)


@dataclass
class ViewResult:
    """What a view shows: a Plotly figure and/or a table, and a caption under it."""

    figure: Any = None
    table: pd.DataFrame | None = None
    caption: str | None = None


class View:
    """Base class of a view type: override ``choices``, ``defaults`` and ``render``."""

    name: str = ""
    title: str = ""

    def choices(self, data: LoadedData) -> list[Choice]:
        return []

    def defaults(self, data: LoadedData) -> dict[str, Any]:
        return {}

    def render(self, data: LoadedData, chosen: dict[str, Any]) -> ViewResult:
        raise NotImplementedError

    def resolve(self, data: LoadedData, saved: dict[str, Any] | None = None) -> dict[str, Any]:
        """The defaults, overridden by the ``saved`` choices that still fit this data."""
        chosen = dict(self.defaults(data))
        for choice in self.choices(data):
            if not saved or choice.key not in saved:
                continue
            value = saved[choice.key]
            allowed = choice.candidates(data)
            if choice.kind in ("column", "option"):
                if value in allowed or (value in ("", None) and choice.optional):
                    chosen[choice.key] = value or None
            elif choice.kind == "columns":
                if isinstance(value, list) and all(v in allowed for v in value):
                    chosen[choice.key] = list(value)
            elif choice.kind == "filters":
                filters = parse_filters(value)
                if all(f.get("column") in data.kinds for f in filters):
                    chosen[choice.key] = filters
        return chosen


def need_column(value: Any, what: str, view: str, data: LoadedData, kinds: tuple[str, ...] = ()) -> str:
    if value in (None, ""):
        have = data.columns_of(*kinds)
        listed = ", ".join(f"'{c}'" for c in have[:6]) or "none"
        kind = " or ".join(kinds) if kinds else "any"
        raise ViewError(f"{view} needs {what} ({kind} column): pick one; the file has {listed}")
    if value not in data.kinds:
        raise ViewError(f"column '{value}' is not in {data.path.name}: pick one of "
                        f"{', '.join(data.columns[:10])}")
    return value


# -- filters ----------------------------------------------------------------------------------

FILTER_OPS = ("between", "in", "contains")


def parse_filters(value: Any) -> list[dict[str, Any]]:
    """Filters as saved (a JSON string or a list of dicts) -> a list of dicts; bad entries dropped."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            return []
    if not isinstance(value, list):
        return []
    return [f for f in value if isinstance(f, dict) and f.get("op") in FILTER_OPS and "column" in f]


# -- the registry -----------------------------------------------------------------------------

class ViewRegistry:
    """View types by name, in the order they were registered."""

    def __init__(self, views: list[View] | tuple[View, ...] = ()):
        self._views: dict[str, View] = {}
        for v in views:
            self.register(v)

    def register(self, view: View) -> View:
        """Add ``view`` (one with the same name is replaced: an app may redefine a built-in)."""
        if not isinstance(view, View):
            raise TypeError(f"{view!r} is not a switchyard.analysis.views.View")
        if not _NAME.match(view.name or ""):
            raise ValueError(f"view name {view.name!r} must be lower case letters, digits and _ "
                             "(starting with a letter)")
        self._views[view.name] = view
        return view

    def get(self, name: str) -> View:
        try:
            return self._views[name]
        except KeyError:
            raise ViewError(f"unknown view '{name}': choose one of {', '.join(self._views)}") from None

    def names(self) -> list[str]:
        return list(self._views)

    def __iter__(self):
        return iter(self._views.values())

    def __contains__(self, name: object) -> bool:
        return name in self._views


def builtin_views() -> ViewRegistry:
    """Chart, map, table, correlation and summary views, in that order."""
    from switchyard.analysis.charts import ChartView, CorrelationView, MapView
    from switchyard.analysis.tables import SummaryView, TableView

    return ViewRegistry([ChartView(), MapView(), TableView(), CorrelationView(), SummaryView()])


def views_for(app_dir: Path | str | None) -> ViewRegistry:
    """The built-in views plus those of ``<app_dir>/analysis_views.py`` (its ``VIEWS`` list).

    Raises:
        AppLoadError: the app's module fails to import, or ``VIEWS`` holds something that is
            not a View; chained to the app's own exception.
    """
    registry = builtin_views()
    if app_dir is None:
        return registry
    path = Path(app_dir) / APP_VIEWS_FILE
    if not path.is_file():
        return registry
    module_name = f"switchyard_app_views_{Path(app_dir).name}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception as e:  # the app's own code: any exception is its bug, shown with its traceback
        raise AppLoadError(f"{path} failed to import ({type(e).__name__}: {e}): fix the app's view "
                           "module") from e
    sys.modules.pop(module_name, None)
    views = getattr(module, "VIEWS", None)
    if not isinstance(views, (list, tuple)):
        raise AppLoadError(f"{path} has no VIEWS list: define VIEWS = [MyView(), ...]")
    for v in views:
        try:
            registry.register(v)
        except (TypeError, ValueError) as e:
            raise AppLoadError(f"{path}: VIEWS: {e}: fix the view definition") from e
    return registry
