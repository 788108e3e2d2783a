"""Analysis: exported data and run records turned into tables and Plotly figures.

``data`` loads a CSV/Parquet file of the workspace, ``views`` is the registry
of view types (apps can add their own) whose built-ins live in ``charts``
(chart builder, map, correlation) and ``tables`` (rows with filters, summary
statistics), ``runs`` charts the run store and benchmarks, ``metrics``
exports run metrics (JSON, Prometheus text), ``lineage`` records where a file
came from, ``prefs`` keeps the operator's view choices in ``[analysis]`` of
``app_settings.toml``. None imports streamlit.
"""

from switchyard.analysis.data import AnalysisError, LoadedData, load_table

__all__ = ["AnalysisError", "LoadedData", "load_table"]
