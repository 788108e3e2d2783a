"""Reads of a run's batches whose cost is bounded by what is shown, not by the run's size.

Pages, the HTTP API and the CLI show runs of 100,000 batches and more: they read one
page of batches at a time (filtered in SQL, by offset or by a keyset cursor on the
batch index), counts and timings as SQL aggregates, errors grouped by their message
signature, and the timeline as busy seconds per worker and time bucket. None of
these reads every row of a run into Python.

:class:`BatchReads` is a mixin of :class:`switchyard.runs.store.RunStore`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from switchyard.runs.leases import _marks, _now
from switchyard.runs.state import Batch, BatchStatus

PAGE_MAX = 1000  # the most batches one page read returns
_FINISHED_ERRORS = ("failed", "dead", "cancelled")

_SIGNATURE_RULES = (
    (re.compile(r"0x[0-9a-fA-F]+"), "#"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "'…'"),
    (re.compile(r"(?<!\w)(/[\w.\-]+)+"), "<path>"),
    (re.compile(r"\d+(\.\d+)?"), "#"),
)


def error_signature(error: str | None) -> str | None:
    """An error message with what varies between batches blanked out: its first line, with
    numbers, quoted text, hex and paths replaced (``ValueError: batch 7 is broken`` and
    ``ValueError: batch 9 is broken`` share ``ValueError: batch # is broken``)."""
    if not error:
        return None
    first = error.strip().splitlines()[0] if error.strip() else error
    for pattern, repl in _SIGNATURE_RULES:
        first = pattern.sub(repl, first)
    return first[:200]


@dataclass(frozen=True)
class BatchFilter:
    """Which batches of a run to read: every field is optional and they combine (AND).

    ``name`` and ``error`` match a substring (case-insensitive); ``first`` / ``last``
    bound the batch index; ``signature`` is an error group's signature."""

    status: tuple[str, ...] = ()
    worker: str | None = None
    name: str | None = None
    error: str | None = None
    signature: str | None = None
    first: int | None = None
    last: int | None = None

    @staticmethod
    def of(status: str | Iterable[str] | None = None, **kw: Any) -> "BatchFilter":
        if status is None:
            wanted: tuple[str, ...] = ()
        elif isinstance(status, str):
            wanted = (BatchStatus(status).value,)
        else:
            wanted = tuple(BatchStatus(s).value for s in status)
        return BatchFilter(status=wanted, **{k: v for k, v in kw.items() if v not in (None, "")})

    def where(self, oid: str) -> tuple[str, list[Any]]:
        parts, params = ["orchestration_id = ?"], [oid]
        if self.status:
            parts.append(f"status IN ({_marks(self.status)})")
            params += list(self.status)
        if self.worker:
            parts.append("worker = ?")
            params.append(self.worker)
        for column, text in (("name", self.name), ("error", self.error)):
            if text:
                parts.append(f"{column} LIKE ? ESCAPE '\\'")
                params.append("%" + re.sub(r"([%_\\])", r"\\\1", text) + "%")
        if self.signature:
            parts.append("error_signature = ?")
            params.append(self.signature)
        if self.first is not None:
            parts.append("idx >= ?")
            params.append(int(self.first))
        if self.last is not None:
            parts.append("idx <= ?")
            params.append(int(self.last))
        return " AND ".join(parts), params


class BatchReads:
    """Paged, filtered and aggregated reads of batches (a mixin of ``RunStore``)."""

    def batch_page(self, oid: str, filt: BatchFilter | None = None, *, limit: int = 100,
                   offset: int = 0, after: int | None = None) -> list[Batch]:
        """One page of the batches of ``oid`` matching ``filt``, in index order.

        ``after`` is a keyset cursor (the last index of the previous page), cheaper than a
        large ``offset``; ``limit`` is capped at :data:`PAGE_MAX`."""
        from switchyard.runs.store import _BATCH_COLUMNS

        self._require(oid)
        where, params = (filt or BatchFilter()).where(oid)
        if after is not None:
            where += " AND idx > ?"
            params.append(int(after))
        limit = max(0, min(int(limit), PAGE_MAX))
        rows = self._read(f"SELECT {_BATCH_COLUMNS} FROM batches WHERE {where} ORDER BY idx "
                          "LIMIT ? OFFSET ?", [*params, limit, max(0, int(offset))])
        return [Batch.from_row(r) for r in rows]

    def batch_total(self, oid: str, filt: BatchFilter | None = None) -> int:
        """How many batches of ``oid`` match ``filt``."""
        where, params = (filt or BatchFilter()).where(oid)
        return int(self._read(f"SELECT COUNT(*) FROM batches WHERE {where}", params)[0][0])

    def batch_indices(self, oid: str, filt: BatchFilter) -> list[int]:
        """The indices of the batches matching ``filt`` (e.g. the dead ones of an error group)."""
        where, params = filt.where(oid)
        return [r[0] for r in self._read(f"SELECT idx FROM batches WHERE {where} ORDER BY idx", params)]

    def workers(self, oid: str) -> list[str]:
        """The workers batches of ``oid`` ran on, sorted: one index seek per worker."""
        rows = self._read(
            "WITH RECURSIVE w(x) AS (SELECT MIN(worker) FROM batches WHERE orchestration_id = ? "
            "UNION ALL SELECT (SELECT MIN(worker) FROM batches WHERE orchestration_id = ? AND worker > x) "
            "FROM w WHERE x IS NOT NULL) SELECT x FROM w WHERE x IS NOT NULL", (oid, oid))
        return [r[0] for r in rows]

    def worker_counts(self, oid: str) -> dict[str, dict[str, int]]:
        """Worker -> batch status -> count, over the batches that ran somewhere."""
        out: dict[str, dict[str, int]] = {}
        for worker, status, n in self._read(
                "SELECT worker, status, COUNT(*) FROM batches WHERE orchestration_id = ? "
                "AND worker IS NOT NULL GROUP BY worker, status ORDER BY worker", (oid,)):
            out.setdefault(worker, {})[status] = n
        return out

    def error_groups(self, oid: str, limit: int = 50) -> list[dict[str, Any]]:
        """Failed, dead and cancelled batches grouped by error signature, largest group first:
        signature, count, dead (how many are dead letters), first batch index and an example."""
        rows = self._read(
            "SELECT error_signature, COUNT(*), SUM(status = 'dead'), MIN(idx) FROM batches "
            f"WHERE orchestration_id = ? AND status IN ({_marks(_FINISHED_ERRORS)}) "
            "AND error IS NOT NULL GROUP BY error_signature ORDER BY COUNT(*) DESC, MIN(idx) LIMIT ?",
            (oid, *_FINISHED_ERRORS, int(limit)))
        groups = []
        for signature, count, dead, first in rows:
            example = self._read("SELECT name, error, worker FROM batches WHERE orchestration_id = ? "
                                 "AND idx = ?", (oid, first))[0]
            groups.append({"signature": signature or "", "count": count, "dead": int(dead or 0),
                           "first_idx": first, "first_name": example[0], "example": example[1],
                           "worker": example[2]})
        return groups

    def batch_span(self, oid: str, filt: BatchFilter | None = None,
                   now: float | None = None) -> tuple[int, float | None, float | None]:
        """(batches that started, first start, last end or now) over those matching ``filt``."""
        where, params = (filt or BatchFilter()).where(oid)
        n, t0, t1 = self._read(
            f"SELECT COUNT(*), MIN(started_at), MAX(COALESCE(ended_at, ?)) FROM batches "
            f"WHERE {where} AND started_at IS NOT NULL", [_now(now), *params])[0]
        return int(n), t0, t1

    def busy_buckets(self, oid: str, buckets: int = 60, filt: BatchFilter | None = None,
                     now: float | None = None, span: tuple | None = None) -> dict[str, Any]:
        """Busy seconds per worker, time bucket and batch status over the run's span.

        Returns ``{"t0", "width", "buckets", "rows": [(worker, bucket, status, seconds,
        batches)]}``. A batch shorter than a bucket counts in the bucket it started in; a
        longer one is split over the buckets it covers (few: a worker runs one batch per
        thread at a time, so at most threads x buckets of them are longer than a bucket).
        ``span`` is :meth:`batch_span` when the caller read it already."""
        now = _now(now)
        n, t0, t1 = span or self.batch_span(oid, filt, now)
        if not n or t0 is None:
            return {"t0": None, "width": 0.0, "buckets": 0, "rows": []}
        width = max((t1 - t0) / max(1, buckets), 1e-3)
        where, params = (filt or BatchFilter()).where(oid)
        end = "COALESCE(ended_at, ?)"
        short = self._read(
            f"SELECT COALESCE(worker, '?'), MIN(CAST((started_at - ?) / ? AS INTEGER), ?), status, "
            f"SUM({end} - started_at), COUNT(*) FROM batches WHERE {where} AND started_at IS NOT NULL "
            f"AND {end} - started_at <= ? GROUP BY 1, 2, 3",
            [t0, width, buckets - 1, now, *params, now, width])
        acc: dict[tuple[str, int, str], list[float]] = {
            (w, b, s): [sec, cnt] for w, b, s, sec, cnt in short}
        long = self._read(
            f"SELECT COALESCE(worker, '?'), status, started_at, {end} FROM batches WHERE {where} "
            f"AND started_at IS NOT NULL AND {end} - started_at > ?", [now, *params, now, width])
        for worker, status, start, stop in long:
            first = int((start - t0) / width)
            for b in range(max(0, first), min(buckets, int((stop - t0) / width) + 1)):
                lo, hi = t0 + b * width, t0 + (b + 1) * width
                share = max(0.0, min(stop, hi) - max(start, lo))
                cell = acc.setdefault((worker, b, status), [0.0, 0])
                cell[0] += share
                cell[1] += 1 if b == first else 0
        rows = sorted((w, b, s, v[0], v[1]) for (w, b, s), v in acc.items())
        return {"t0": t0, "width": width, "buckets": buckets, "rows": rows}

    def slowest_batches(self, oid: str, n: int = 10, filt: BatchFilter | None = None,
                        now: float | None = None) -> list[Batch]:
        """The ``n`` batches that took (or so far take) longest."""
        from switchyard.runs.store import _BATCH_COLUMNS

        where, params = (filt or BatchFilter()).where(oid)
        rows = self._read(f"SELECT {_BATCH_COLUMNS} FROM batches WHERE {where} AND started_at IS NOT NULL "
                          "ORDER BY COALESCE(ended_at, ?) - started_at DESC LIMIT ?",
                          [*params, _now(now), int(n)])
        return [Batch.from_row(r) for r in rows]

    def duration_histogram(self, oid: str, bounds: Iterable[float]) -> tuple[list[int], float, int]:
        """Completed batches' durations: (cumulative count per bound, sum of seconds, count)."""
        bounds = [float(b) for b in bounds]
        d = "MAX(0.0, ended_at - started_at)"  # as Batch.seconds
        cases = f"SUM({d} <= ?), " * len(bounds)
        row = self._read(
            f"SELECT {cases}COALESCE(SUM({d}), 0), COUNT(*) FROM batches "
            "WHERE orchestration_id = ? AND status = 'completed' AND started_at IS NOT NULL "
            "AND ended_at IS NOT NULL", [*bounds, oid])[0]
        return [int(v or 0) for v in row[:len(bounds)]], float(row[len(bounds)]), int(row[-1])


def batch_listing(store, oid: str, filt: BatchFilter | None = None, *, limit: int = 100, offset: int = 0,
                  after: int | None = None) -> dict[str, Any]:
    """One page of batches as the HTTP API and ``orchestrations show --batches --json`` print it:
    ``batches`` (dicts), ``count`` (on this page), ``total`` (matching the filter), ``limit``,
    ``offset``, and ``next_after``: the cursor for the next page (None on the last one)."""
    limit = max(1, min(int(limit), PAGE_MAX))
    page = store.batch_page(oid, filt, limit=limit, offset=offset, after=after)
    total = store.batch_total(oid, filt)
    if after is None:
        more = offset + len(page) < total
    else:
        more = len(page) == limit and store.batch_total(
            oid, BatchFilter(**{**(filt or BatchFilter()).__dict__, "first": page[-1].idx + 1})) > 0
    return {"orchestration_id": oid, "batches": [b.to_dict() for b in page], "count": len(page),
            "total": total, "limit": limit, "offset": int(offset),
            "next_after": page[-1].idx if page and more else None}
