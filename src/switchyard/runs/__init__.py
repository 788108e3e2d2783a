"""Runs: the run store (SQLite), the orchestration state machine and the driver.

Import the submodules directly (``switchyard.runs.state``, ``switchyard.runs.store``);
this package stays empty so importing it costs nothing.
"""
