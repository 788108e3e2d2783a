"""Backfill keys: which arg of an app a backfill varies, and the values it takes.

A backfill key is a field of the app's args model. Its values come from a range
(``--from A --to B [--step N]``: whole numbers for an ``int`` field, days
``YYYY-MM-DD`` for a ``date`` field) or from a list (``--keys a,b,c``, any
field type). Every value is validated by the app's own args model together
with the app's other args (``[args]`` of ``app_settings.toml`` plus the call's
overrides), so a value the app would refuse is refused here, before anything
is launched. Values are returned in their JSON form (a date as its
``YYYY-MM-DD`` text), which is how orchestrations store their args.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import types
import typing
from typing import Any, Iterable

from switchyard.app import App, AppEnv, load_app, validate_args
from switchyard.exceptions import ScheduleError
from switchyard.settings import load_settings

#: The most values one backfill may cover.
MAX_KEYS = 10_000
INT, DATE, OTHER = "int", "date", "other"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _base_type(annotation: Any) -> Any:
    """The type under ``Optional[...]`` / ``Annotated[...]``, or None for a real union."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _base_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(members[0]) if len(members) == 1 else None
    return annotation


def key_kind(app_cls: type[App], key: str) -> str:
    """``"int"``, ``"date"`` or ``"other"``: what kind of range the arg ``key`` allows.

    Raises:
        ScheduleError: the app has no arg ``key`` (the message lists its args).
    """
    fields = app_cls.Args.model_fields
    if key not in fields:
        known = ", ".join(fields) or "none"
        raise ScheduleError(f"app '{app_cls.name}' has no arg '{key}': give --key one of: {known}")
    base = _base_type(fields[key].annotation)
    if isinstance(base, type):
        if issubclass(base, int) and not issubclass(base, bool):
            return INT
        if issubclass(base, dt.date) and not issubclass(base, dt.datetime):
            return DATE
    return OTHER


def _int(text: Any, key: str, flag: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise ScheduleError(f"backfill key '{key}': {flag} {text!r} is not a whole number: "
                            f"write e.g. {flag} 1") from None


def _day(text: Any, key: str, flag: str) -> dt.date:
    value = str(text).strip()
    if _DAY.match(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ScheduleError(f"backfill key '{key}': {flag} {text!r} is not a day: write it as YYYY-MM-DD, "
                        f"e.g. {flag} 2026-01-31")


def expand_range(kind: str, start: Any, end: Any, step: Any = None, *, key: str = "key",
                 max_keys: int = MAX_KEYS) -> list[Any]:
    """The values from ``start`` to ``end`` inclusive, every ``step`` (whole numbers or days).

    Dates are returned as :class:`datetime.date`, whole numbers as ``int``.

    Raises:
        ScheduleError: a bound or the step is malformed, ``start`` is after ``end``, the
            kind allows no range, or the range has more than ``max_keys`` values.
    """
    if kind not in (INT, DATE):
        raise ScheduleError(f"backfill key '{key}' is neither an int nor a date arg, so it has no range: "
                            "give its values with --keys a,b,c")
    n = 1 if step is None else _int(step, key, "--step")
    if n < 1:
        raise ScheduleError(f"backfill key '{key}': --step {n} must be 1 or more")
    parse = _int if kind == INT else _day
    lo, hi = parse(start, key, "--from"), parse(end, key, "--to")
    if lo > hi:
        raise ScheduleError(f"backfill key '{key}': --from {lo} is after --to {hi}: swap them")
    span = (hi - lo) if kind == INT else (hi - lo).days
    count = span // n + 1
    if count > max_keys:
        raise ScheduleError(f"backfill key '{key}': {lo}..{hi} every {n} gives {count} values, more than "
                            f"{max_keys}: narrow the range or raise --step")
    if kind == INT:
        return list(range(lo, hi + 1, n))
    return [lo + dt.timedelta(days=i * n) for i in range(count)]


def split_keys(keys: str | Iterable[Any], key: str = "key") -> list[Any]:
    """The values of ``--keys a,b,c`` (a comma-separated text, or already a list).

    Raises:
        ScheduleError: no value given.
    """
    if isinstance(keys, str):
        values: list[Any] = [k.strip() for k in keys.split(",")]
    else:
        values = [k.strip() if isinstance(k, str) else k for k in keys]
    values = [v for v in values if v != ""]
    if not values:
        raise ScheduleError(f"backfill key '{key}': --keys is empty: write e.g. --keys a,b,c")
    return values


def backfill_values(app_env: AppEnv, key: str, *, start: Any = None, end: Any = None, step: Any = None,
                    keys: str | Iterable[Any] | None = None, args: dict[str, Any] | None = None,
                    max_keys: int = MAX_KEYS) -> list[Any]:
    """Validate a backfill request and return its values in JSON form, duplicates removed.

    Args:
        app_env: The app.
        key: The arg the backfill varies.
        start: First value of a range (``--from``).
        end: Last value of a range, inclusive (``--to``).
        step: Range step: whole numbers, or days for a date arg (default 1).
        keys: The values as a list or a comma-separated text, instead of a range.
        args: Overrides of the app's other args (as ``--arg`` gives them).
        max_keys: Refuse more values than this.

    Raises:
        ScheduleError: unknown key, malformed or reversed range, range or list too long,
            ``args`` setting the key itself, or neither (or both) of a range and a list.
        ArgsError: a value (or another arg) that the app's args model refuses; the message
            names the arg and the value.
    """
    app_cls = load_app(app_env)
    kind = key_kind(app_cls, key)
    args = dict(args or {})
    if key in args:
        raise ScheduleError(f"backfill key '{key}' is also given with --arg {key}=...: the backfill sets it; "
                            "leave that --arg out")
    ranged = start is not None or end is not None
    if ranged and keys is not None:
        raise ScheduleError(f"backfill key '{key}': give either --from/--to or --keys, not both")
    if keys is not None:
        if step is not None:
            raise ScheduleError(f"backfill key '{key}': --step goes with --from/--to, not with --keys")
        raw = split_keys(keys, key)
        source = "backfill --keys"
    elif ranged:
        if start is None or end is None:
            raise ScheduleError(f"backfill key '{key}': a range needs both --from and --to")
        raw = expand_range(kind, start, end, step, key=key, max_keys=max_keys)
        source = "backfill --from/--to"
    else:
        hint = "--from A --to B" if kind != OTHER else "--keys a,b,c"
        raise ScheduleError(f"backfill key '{key}': no values given: write {hint}")
    base = {**load_settings(app_env.settings_path).args, **args}
    seen: set[str] = set()
    values: list[Any] = []
    for value in raw:
        model = validate_args(app_cls, {**base, key: value}, source)
        plain = model.model_dump(mode="json")[key]
        text = json.dumps(plain, sort_keys=True)
        if text not in seen:
            seen.add(text)
            values.append(plain)
    if len(values) > max_keys:
        raise ScheduleError(f"backfill key '{key}': {len(values)} values, more than {max_keys}: "
                            "split the backfill in several")
    return values


def check_concurrency(concurrency: Any) -> int:
    """``concurrency`` as a whole number >= 1.

    Raises:
        ScheduleError: it is not.
    """
    try:
        n = int(str(concurrency).strip()) if isinstance(concurrency, (int, str)) else 0
    except ValueError:
        n = 0
    if n < 1 or isinstance(concurrency, bool):
        raise ScheduleError(f"--concurrency {concurrency}: give a whole number of runs at once, 1 or more")
    return n


def preflight(app_env: AppEnv, key: str, values: list[Any], concurrency: int, *, mode: int | str | None = None,
              args: dict[str, Any] | None = None, workers: dict[str, int] | None = None,
              scheduler: str | None = None) -> int:
    """Check what every launch of a backfill needs, before any is made; return the resolved mode.

    Raises:
        ScheduleError: bad ``concurrency``.
        SwitchyardError: whatever :func:`switchyard.agi.resolve` refuses (mode, workers, args).
    """
    from switchyard.runs.request import resolve
    from switchyard.modes import check_supported

    concurrency = check_concurrency(concurrency)
    run_args = {**(args or {}), **({key: values[0]} if values else {})}
    ctx = resolve(app_env, mode=mode, scheduler=scheduler, workers=workers, args=run_args)
    check_supported(ctx.mode)
    return int(ctx.mode)
