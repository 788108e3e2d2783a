"""Pipelines: steps stored in ``pipeline.toml``, validated as a DAG, run as an orchestration on Dask."""
