"""When schedules fire, which fires to launch, and what to do about runs still going.

Pure functions of time: every function takes the instant (epoch seconds) it decides
for, nothing here reads a clock, sleeps or touches the run store.

Cron schedules follow wall-clock time in their zone, like Vixie cron:

- Spring forward (wall times that do not exist): a schedule with a fixed hour field
  whose wall time falls in the gap fires once, at the first instant after the gap
  (``30 2 * * *`` in Europe/Paris on 2026-03-29 fires at 03:00 CEST). A schedule
  whose hour field starts with ``*`` has no fires in the missing hour.
- Fall back (wall times that occur twice): a schedule with a fixed hour fires once,
  at the first occurrence; one whose hour field starts with ``*`` runs by elapsed time
  and fires in both passes (``0 * * * *`` fires 25 times that day).

Fires are strictly increasing epoch seconds, and two wall times that map to the same
instant (a gap fire and the first wall time after the gap) give one fire.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from switchyard.exceptions import ScheduleError
from switchyard.schedule.cron import Cron

OVERLAP_POLICIES = ("skip", "queue", "cancel")
CATCH_UP_POLICIES = ("none", "last", "all")
_POLICIES = {"overlap": OVERLAP_POLICIES, "catch_up": CATCH_UP_POLICIES}
_TZ_FIX = "use an IANA name such as Europe/Paris or UTC, or 'local' for this machine's zone"
_DAY = 86400
_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class When:
    """When a schedule fires: a cron expression in a time zone, or a fixed interval.

    Build it with ``When.of(...)`` (validated); the fields are the stored form.

    Attributes:
        cron: A cron expression (see ``switchyard.schedule.cron``), or None.
        tz: IANA zone name the cron expression is read in; "local" is the machine's zone.
        every: Seconds between fires of an interval schedule (>= 1), or None.
        anchor: Epoch seconds; interval fires are ``anchor + k * every`` for every integer k.
    """

    cron: str | None = None
    tz: str = "UTC"
    every: float | None = None
    anchor: float = 0.0

    @classmethod
    def of(cls, *, cron: str | None = None, tz: str = "UTC", every: float | None = None,
           anchor: float = 0.0) -> When:
        """A validated When; ScheduleError names the bad value and the fix."""
        if (cron is None) == (every is None):
            given = "both" if cron is not None else "neither"
            raise ScheduleError(f"schedule: got {given} of cron and every: give exactly one, a "
                                "cron expression (e.g. '0 2 * * *') or an interval in seconds "
                                "(every >= 1)")
        if cron is not None:
            cron = Cron.parse(cron).expr
        check_timezone(tz)
        if every is not None:
            every = _number("every", every, "give the interval in seconds, at least 1")
            if every < 1:
                raise ScheduleError(f"schedule: every {every:g} is too small: give the interval "
                                    "in seconds, at least 1")
        anchor = _number("anchor", anchor, "give epoch seconds (e.g. the schedule's creation time)")
        return cls(cron=cron, tz=tz, every=every, anchor=anchor)

    @cached_property
    def _cron(self) -> Cron:
        return Cron.parse(self.cron)

    @cached_property
    def _zone(self) -> tzinfo:
        return check_timezone(self.tz)

    def next_after(self, t: float) -> float:
        """The first fire strictly after epoch ``t``."""
        if self.every is not None:
            return self.anchor + _first_k_after(self.anchor, self.every, t) * self.every
        return self._next_cron(t)

    def between(self, start: float, end: float, limit: int = 1000) -> list[float]:
        """Fires in ``(start, end]``, ascending; the LAST ``limit`` when there are more.

        Keeping the newest ones means a catch-up after a long downtime still sees the
        latest missed fire, and the cost is about ``limit`` fires however long the range.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        if end <= start:
            return []
        if self.every is not None:
            k_hi = math.floor((end - self.anchor) / self.every)
            while self.anchor + k_hi * self.every > end:
                k_hi -= 1
            k_lo = max(_first_k_after(self.anchor, self.every, start), k_hi - limit + 1)
            return [self.anchor + k * self.every for k in range(k_lo, k_hi + 1)]
        # Walk back from `end` in growing chunks until `limit` fires or `start` is reached.
        span = 3600.0
        while True:
            lo = max(start, end - span)
            fires, t = [], lo
            while (t := self._next_cron(t)) <= end:
                fires.append(t)
            if len(fires) >= limit or lo == start:
                return fires[-limit:]
            span *= 4 if not fires else max(2.0, 1.2 * limit / len(fires))

    def describe(self) -> str:
        """Short text: ``every 60 s`` or ``cron '0 2 * * *' (Europe/Paris)``."""
        if self.every is not None:
            return f"every {self.every:g} s"
        return f"cron '{self.cron}' ({self.tz})"

    def to_dict(self) -> dict[str, Any]:
        """The stored form (JSON-ready)."""
        return {"cron": self.cron, "tz": self.tz, "every": self.every, "anchor": self.anchor}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> When:
        """Inverse of ``to_dict``, validated like ``of``."""
        if not isinstance(d, dict):
            raise ScheduleError(f"schedule timing {d!r} is not a table: "
                                "give cron/tz or every/anchor keys")
        unknown = sorted(set(d) - {"cron", "tz", "every", "anchor"})
        if unknown:
            raise ScheduleError(f"schedule timing: unknown key '{unknown[0]}': "
                                "use cron, tz, every or anchor")
        return cls.of(**d)

    # -- cron in a zone -------------------------------------------------------

    def _next_cron(self, t: float) -> float:
        # Wall time w fires at w - offset, so only w > t + (smallest offset near t) can
        # fire after t. Walk the matching wall times from there; near a fall-back a later
        # wall time can fire earlier (second pass), so keep going while a wall time could
        # still beat the best fire: w - (largest offset near best) < best.
        cron, zone = self._cron, self._zone
        w = _naive(t + _offsets(zone, t)[0])
        best, bound = math.inf, None
        while True:
            w = cron.next_local(w)
            if bound is not None and w >= bound:
                return best
            for fire in self._instants(w):
                if t < fire < best:
                    best = fire
                    bound = _naive(best + _offsets(zone, best)[1])

    def _instants(self, w: datetime) -> tuple[float, ...]:
        """The instants (0, 1 or 2) the matching wall time ``w`` fires at, by the DST rules."""
        zone = self._zone
        first = w.replace(tzinfo=zone).timestamp()
        second = w.replace(tzinfo=zone, fold=1).timestamp()
        if first == second:
            return (first,)
        if first < second:  # w occurs twice: fold=0 is the earlier pass
            return (first, second) if self._cron.hour_star else (first,)
        # w falls in a gap: fold=0 read it with the old offset (later), fold=1 with the new one.
        return () if self._cron.hour_star else (_gap_end(zone, second, first),)


def check_timezone(name: str) -> tzinfo:
    """The tzinfo for an IANA zone name or "local"; ScheduleError naming the zone otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError(f"time zone {name!r} is not a zone name: {_TZ_FIX}")
    if name == "local":
        return _local_zone()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    # Only on the error path: scanning the zone database costs tens of milliseconds.
    close = [z for z in available_timezones() if z.lower() == name.lower()]
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ScheduleError(f"time zone '{name}' is unknown{hint}: {_TZ_FIX}")


@dataclass(frozen=True)
class FirePlan:
    """What to do with the due fire times of one schedule.

    Attributes:
        launch: Fire times to launch now (ascending).
        missed: Fire times recorded as missed, not launched (ascending).
    """

    launch: list[float]
    missed: list[float]


def plan_fires(due: list[float], now: float, catch_up: str, window: float | None,
               grace: float) -> FirePlan:
    """Split the due fire times into those to launch and those recorded as missed.

    A time with ``now - t <= grace`` is on time and always launched. Older ones were
    missed (the scheduler was down): catch_up "none" launches none of them, "last"
    the newest one, "all" all of them; with ``window`` set, missed times older than
    ``now - window`` are never launched. Everything not launched is missed.

    Dedupe: when an on-time fire is launched, "last" adds nothing older, since the run
    about to start covers it ("all" still launches every missed time in the window).
    Times after ``now`` are not due yet and are left out of both lists.

    Args:
        due: Fire times not handled yet (any order; duplicates count once).
        now: Epoch seconds of the decision.
        catch_up: One of ``CATCH_UP_POLICIES``.
        window: Seconds back from ``now`` that a missed time may still launch, or None.
        grace: Seconds a fire may be late and still count as on time (>= 0).
    """
    catch_up = check_policy("catch_up", catch_up)
    if not isinstance(grace, (int, float)) or isinstance(grace, bool) or not grace >= 0:
        raise ScheduleError(f"schedule: grace {grace!r} is invalid: give seconds, 0 or more")
    if window is not None and (not isinstance(window, (int, float)) or isinstance(window, bool)
                               or not window > 0):
        raise ScheduleError(f"schedule: catch-up window {window!r} is invalid: "
                            "give seconds above 0, or no window")
    times = sorted({t for t in due if t <= now})
    on_time = [t for t in times if now - t <= grace]
    late = [t for t in times if now - t > grace]
    eligible = late if window is None else [t for t in late if t >= now - window]
    if catch_up == "all":
        caught = eligible
    elif catch_up == "last" and eligible and not on_time:
        caught = eligible[-1:]
    else:
        caught = []
    chosen = set(caught)
    return FirePlan(launch=caught + on_time, missed=[t for t in late if t not in chosen])


def check_policy(kind: str, value: str) -> str:
    """``value`` normalised (lower case) when it is an allowed ``kind`` policy ("overlap" or
    "catch_up"); ScheduleError listing the allowed values otherwise."""
    allowed = _POLICIES.get(kind.replace("-", "_"))
    if allowed is None:
        raise ValueError(f"unknown policy kind {kind!r}: use one of {sorted(_POLICIES)}")
    norm = value.strip().lower() if isinstance(value, str) else value
    if norm not in allowed:
        raise ScheduleError(f"{kind} policy {value!r} is not allowed: "
                            f"use one of {', '.join(allowed)}")
    return norm


@dataclass(frozen=True)
class OverlapDecision:
    """What to do with a fire while earlier runs of the schedule are still active.

    Attributes:
        action: "launch", "skip" or "queue" (the caller launches it when the active ones end).
        cancel: Orchestration ids to cancel before launching.
        reason: One line for the trigger record.
    """

    action: str
    cancel: tuple[str, ...] = ()
    reason: str = ""


def decide_overlap(policy: str, active: list[str]) -> OverlapDecision:
    """Apply the overlap ``policy`` to a fire, given the ids of the schedule's active runs."""
    policy = check_policy("overlap", policy)
    if not active:
        return OverlapDecision("launch")
    ids = ", ".join(active)
    still = "is" if len(active) == 1 else "are"
    if policy == "skip":
        return OverlapDecision("skip", reason=f"skipped: {ids} {still} still running")
    if policy == "queue":
        return OverlapDecision("queue", reason=f"queued: waiting for {ids}")
    return OverlapDecision("launch", cancel=tuple(active),
                           reason=f"cancelling {ids} before launching")


# -- helpers -------------------------------------------------------------------


def _number(key: str, value: Any, fix: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScheduleError(f"schedule: {key} {value!r} is not a number: {fix}")
    return float(value)


def _first_k_after(anchor: float, every: float, t: float) -> int:
    k = math.floor((t - anchor) / every) + 1
    # The division can round either way; settle k on the fires as they are computed.
    while anchor + (k - 1) * every > t:
        k -= 1
    while anchor + k * every <= t:
        k += 1
    return k


def _naive(ts: float) -> datetime:
    return _EPOCH + timedelta(seconds=ts)


def _offset(zone: tzinfo, ts: float) -> float:
    return datetime.fromtimestamp(ts, zone).utcoffset().total_seconds()


def _offsets(zone: tzinfo, ts: float) -> tuple[float, float]:
    """Smallest and largest UTC offset within a day of ``ts`` (zones change at most once a day)."""
    seen = [_offset(zone, ts + d) for d in (-_DAY, 0, _DAY)]
    return min(seen), max(seen)


def _gap_end(zone: tzinfo, before: float, after: float) -> float:
    """The transition instant in ``(before, after]``: the first instant after a gap."""
    lo, hi = int(before), int(math.ceil(after))
    new = _offset(zone, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(zone, mid) == new:
            hi = mid
        else:
            lo = mid
    return float(hi)


def _local_zone() -> tzinfo:
    """The machine's zone: $TZ, then /etc/localtime (the one place this module does I/O)."""
    names = [os.environ.get("TZ", "").lstrip(":")]
    try:
        names.append(os.path.realpath("/etc/localtime"))
    except OSError:
        pass
    for name in filter(None, names):
        key = name.split("zoneinfo/", 1)[-1]
        try:
            return ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
    # No zone database entry: a fixed offset, so no daylight-saving changes are known.
    return datetime.now().astimezone().tzinfo
