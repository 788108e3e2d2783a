"""The run ETA: one estimate for the page's progress caption and the driver's batch lines (which
``switchyard run`` prints): the batches left, each lasting the mean completed duration, spread
over the worker slots."""

from __future__ import annotations

from switchyard.modes import Mode


def remaining_seconds(mean: float, left: int, slots: int, ran: list[float] | tuple = ()) -> float:
    """The ETA of ``left`` batches of ``mean`` seconds each over ``slots`` worker slots, the
    executing ones (``ran``: the seconds each has run) counted for what they still need."""
    if left <= 0:
        return 0.0
    work = sum(max(mean - r, 0.0) for r in ran) + mean * max(left - len(ran), 0)
    return work / max(1, min(int(slots), left))


def eta_slots(mode: int, workers: dict | None) -> int:
    """Batches that run side by side: one per Dask worker in a dask mode, else one at a time."""
    return (sum(int(n) for n in (workers or {}).values()) or 1) if Mode(int(mode)).uses_dask else 1


def eta_text(seconds: float | None) -> str:
    """``ETA 42 s`` / ``ETA 3 min 05 s``; before any batch completed, when it will be known."""
    if seconds is None:
        return "ETA: after the first batch"
    if seconds < 60:
        return f"ETA {seconds:.0f} s"
    return f"ETA {seconds // 60:.0f} min {seconds % 60:02.0f} s"
