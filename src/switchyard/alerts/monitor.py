"""One alert pass: read the store and the services, apply the rules, record what is new,
deliver it, and retry deliveries that failed earlier. The I/O around :mod:`.rules`.

The scheduler calls :func:`check` every few seconds, so a pass with nothing new costs a
few reads: the settings file is re-parsed only when it changed, finished runs are only
looked at until they have their alerts, and no Dask client is opened.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from switchyard import workspace
from switchyard.alerts import channels as delivery
from switchyard.alerts import config, probe, records
from switchyard.alerts.rules import NewAlert, closed_episodes, evaluate
from switchyard.exceptions import AlertError
from switchyard.runs.store import RunStore


ENDED_SLACK = 120.0  # seconds: ended runs judged again by the next pass
_last_pass: dict[str, float] = {}  # store path -> ``now`` of this process's last pass


@contextmanager
def _store(store: RunStore | None, home: Path) -> Iterator[RunStore]:
    """The given store, or the workspace's opened for this call only."""
    if store is not None:
        yield store
        return
    with RunStore(home / "switchyard.db") as own:
        yield own


def check(store: RunStore | None = None, *, home: Path | str | None = None, now: float | None = None,
          deliver: bool = True, answers: probe.Answers | None = None) -> list[dict[str, Any]]:
    """Evaluate the rules, record and deliver new alerts, retry undelivered ones.

    Args:
        store: The run store (default: the workspace's).
        home: The workspace (default ``$SWITCHYARD_HOME``): ``alerts.toml``, ``service/``.
        now: Epoch seconds (default: the clock).
        deliver: False records new alerts with pending deliveries and sends nothing.
        answers: Whether a scheduler address accepts connections (tests pass their own).

    Returns:
        The alerts this pass recorded or delivered (shaped as :func:`list_alerts`), each
        with ``new``: True when this pass recorded it, False for a retried delivery.

    Raises:
        AlertError: ``alerts.toml`` is invalid.
    """
    home = Path(home or workspace.home())
    now = time.time() if now is None else float(now)
    settings = config.load(home)
    with _store(store, home) as store:
        return _check(store, settings, home, now, deliver, answers)


def _check(store: RunStore, settings: config.AlertSettings, home: Path, now: float, deliver: bool,
           answers: probe.Answers | None) -> list[dict[str, Any]]:
    rules = settings.rules
    records.ensure_schema(store)
    # Ended runs are judged for slowness in the first pass that sees them (with some slack for
    # clocks and commits out of order), not in every pass for a whole day.
    last = _last_pass.get(str(store.path))
    ended_since = last - ENDED_SLACK if last is not None and last <= now else None
    runs = records.candidates(store, now, failures=rules.on_failure, slow=rules.duration_factor > 0,
                              ended_since=ended_since)
    history = records.history(store, {(o.app, o.kind) for o in runs}) if rules.duration_factor > 0 else []
    health = probe.service_health(home, now, answers) if rules.health_gate else {}
    known = records.already(store, [o.id for o in runs])
    new_ids = [i for i in (records.record(store, a, settings.channels, now, home)
                           for a in evaluate(runs, history, health, now, rules, known)) if i is not None]
    records.close_episodes(store, closed_episodes(health, known), now)
    _last_pass[str(store.path)] = now

    touched = set(new_ids)
    if deliver:
        touched |= deliver_due(store, settings, home, now)
    shaped = records.get_alerts(store, touched)
    for a in shaped:
        a["new"] = a["id"] in new_ids
    return shaped


def deliver_due(store: RunStore, settings: config.AlertSettings, home: Path, now: float,
                alert_ids: list[int] | None = None) -> set[int]:
    """Attempt every delivery that is due (or those of ``alert_ids``); return the alerts touched."""
    if alert_ids is None and not records.has_due(store, now):
        return set()
    by_name = {c.name: c for c in settings.channels}
    touched = set()
    for job in records.claim_due(store, now, alert_ids):
        touched.add(job["alert_id"])
        channel = by_name.get(job["channel"])
        final = job["payload"].get("rule") == "test"  # an operator's test is tried once, right now
        if channel is None or channel.kind != job["kind"]:
            records.finish(store, job["alert_id"], job["channel"], now, final=True,
                           error=f"channel '{job['channel']}' is no longer in {settings.path}: not retried")
            continue
        try:
            note = delivery.deliver(channel, job["payload"], home)
        except AlertError as e:
            records.finish(store, job["alert_id"], job["channel"], now, error=str(e), final=final)
        else:
            records.finish(store, job["alert_id"], job["channel"], now, note=note)
    return touched


def send_test(channel_name: str, *, store: RunStore | None = None, home: Path | str | None = None,
              now: float | None = None) -> dict[str, Any]:
    """Send a test alert (rule ``test``) through one channel, record it, and return it with its
    delivery (``delivered``, ``error``); it is not retried.

    Raises:
        AlertError: no channel of that name, or the settings are invalid.
    """
    home = Path(home or workspace.home())
    now = time.time() if now is None else float(now)
    settings = config.load(home)
    channel = settings.channel(channel_name)
    alert = NewAlert(rule="test", app=None, subject=f"{channel.name}@{now:.6f}",
                     title=f"test of channel {channel.name}",
                     message=f"test alert from switchyard through channel '{channel.name}' ({channel.kind})",
                     details={"channel": channel.name, "target": channel.target(home)})
    with _store(store, home) as store:
        records.ensure_schema(store)
        alert_id = records.record(store, alert, [channel], now, home)
        if alert_id is None:
            raise AlertError(f"a test of channel '{channel.name}' was sent at this very instant: try again")
        deliver_due(store, settings, home, now, alert_ids=[alert_id])
        return records.get_alerts(store, [alert_id])[0]


def list_alerts(store: RunStore | None = None, limit: int = 100, app: str | None = None, *,
                home: Path | str | None = None) -> list[dict[str, Any]]:
    """Recent alerts, newest first, with the delivery of each channel (see
    :func:`switchyard.alerts.records.list_alerts`)."""
    with _store(store, Path(home or workspace.home())) as store:
        return records.list_alerts(store, limit=limit, app=app)


def channels_view(home: Path | str | None = None) -> dict[str, Any]:
    """The settings as shown to operators: file, whether it exists, rules, channels (no secrets)."""
    home = Path(home or workspace.home())
    settings = config.load(home)
    return {"path": str(settings.path), "exists": settings.exists, "rules": config.rules_dict(settings.rules),
            "channels": [c.describe(home) for c in settings.channels]}
