"""Alerts: a run failed, a run is far slower than usual, a service's health gate failed.

Rules (:mod:`.rules`, pure) decide; :func:`check` records each new alert once in the run
store and delivers it through the channels of ``<home>/alerts.toml`` (a file, a webhook,
email over SMTP), retrying failed deliveries. See docs/alerts.md.
"""

from __future__ import annotations

from switchyard.alerts.config import AlertSettings, Channel, Rules, redact_url, settings_path
from switchyard.alerts.config import load as load_settings
from switchyard.alerts.edits import add_channel, remove_channel, set_rule, set_rules
from switchyard.alerts.monitor import channels_view, check, list_alerts, send_test
from switchyard.alerts.rules import NewAlert, closed_episodes, evaluate

__all__ = [
    "AlertSettings", "Channel", "NewAlert", "Rules", "add_channel", "channels_view", "check",
    "closed_episodes", "evaluate", "list_alerts", "load_settings", "redact_url", "remove_channel",
    "send_test", "set_rule", "set_rules", "settings_path",
]
