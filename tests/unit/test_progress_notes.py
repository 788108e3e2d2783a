"""The run progress's ETA, from completed batches' durations, against a simulated 2-worker run."""

from __future__ import annotations

from switchyard.analysis.runs import eta_seconds
from switchyard.runs.eta import eta_text
from switchyard.runs.state import Batch, BatchStatus


def simulate(n: int, slots: int, duration: float, now: float) -> list[Batch]:
    """The batches of a run with equal batches on ``slots`` workers, as the store has them at ``now``."""
    batches = []
    for i in range(n):
        start = (i // slots) * duration
        end = start + duration
        if end <= now:
            status, s, e = BatchStatus.COMPLETED, start, end
        elif start <= now:
            status, s, e = BatchStatus.RUNNING, start, None
        else:
            status, s, e = BatchStatus.PENDING, None, None
        batches.append(Batch(orchestration_id="o", idx=i, name=f"b{i}", status=status, started_at=s, ended_at=e))
    return batches


def test_eta_is_within_half_of_the_real_remaining_time_at_25_50_75_percent():
    n, slots, duration = 8, 2, 2.0
    total = n / slots * duration
    for share in (0.25, 0.5, 0.75):
        now = total * share + 0.5  # mid-batch: two batches executing, half done
        eta = eta_seconds(simulate(n, slots, duration, now), slots, now=now)
        real = total - now
        assert eta is not None and abs(eta - real) <= 0.5 * real, (share, eta, real)
    assert eta_seconds(simulate(n, slots, duration, 1.0), slots, now=1.0) is None  # nothing completed yet
    assert eta_seconds(simulate(n, slots, duration, total + 1), slots, now=total + 1) == 0.0
    assert eta_text(None) == "ETA: after the first batch" and eta_text(75.0) == "ETA 1 min 15 s"


def test_serve_stop_says_whether_the_warm_cluster_stays_up():
    from switchyard.service.service import cluster_note

    up = cluster_note("flight", "127.0.0.1:8786", True)
    assert "stays up" in up and "switchyard cluster down flight" in up and "--stop-cluster" in up
    assert "nothing else is running" in cluster_note("flight", "127.0.0.1:8786", False)
