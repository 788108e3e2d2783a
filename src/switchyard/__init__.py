"""Switchyard: an operator workbench for distributed batch work.

``from switchyard import AGI, AppEnv`` is all a snippet needs. Imports are lazy
so that worker processes and the CLI start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["AGI", "AppEnv", "App", "Args", "Partition", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from switchyard.agi import AGI
    from switchyard.app import App, AppEnv, Args, Partition


def __getattr__(name: str) -> Any:
    if name == "AGI":
        from switchyard.agi import AGI

        return AGI
    if name in ("App", "AppEnv", "Args", "Partition"):
        from switchyard import app

        return getattr(app, name)
    raise AttributeError(f"module 'switchyard' has no attribute {name!r}")
