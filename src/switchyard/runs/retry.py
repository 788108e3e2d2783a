"""The one retry policy of every orchestration (app batches and pipeline steps)."""

from __future__ import annotations


def backoff(attempt: int, base: float, cap: float = 30.0) -> float:
    """Delay before attempt ``attempt + 1`` (attempt counts from 1): ``base * 2**(attempt-1)``, capped."""
    return min(cap, base * (2 ** max(0, attempt - 1)))
