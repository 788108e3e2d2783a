"""The alerts section of the Orchestrations page: recent alerts with their delivery per
channel, "Check now", the channels with "Send test", and forms to add a channel and edit
the rules. Every action calls :mod:`switchyard.alerts`, like ``switchyard alerts ...``."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from switchyard import alerts, workspace
from switchyard.alerts.config import KINDS, DEFAULT_PASSWORD_ENV
from switchyard.alerts.records import delivery_text
from switchyard.exceptions import SwitchyardError
from switchyard.runs.store import RunStore
from switchyard.ui.common import show_error

LIMIT = 50


@st.cache_resource(show_spinner=False)
def _store(path: str) -> RunStore:
    return RunStore(path)


def alerts_frame(rows: list[dict]) -> pd.DataFrame:
    """Recent alerts as a table: time, rule, severity, app, subject, message, delivery."""
    return pd.DataFrame({
        "time": [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(a["at_epoch"])) for a in rows],
        "rule": [a["rule"] for a in rows],
        "severity": [a["severity"] for a in rows],
        "app": [a["app"] or "" for a in rows],
        "subject": [a["subject"] for a in rows],
        "message": [a["message"] for a in rows],
        "delivery": ["; ".join(delivery_text(d) for d in a["deliveries"]) or "no channel" for a in rows],
    }, columns=["time", "rule", "severity", "app", "subject", "message", "delivery"])


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.replace(";", ",").split(",") if t.strip()]


def render_alerts_section(home: Path | None = None) -> None:
    """The whole section (``home``: the workspace, default ``$SWITCHYARD_HOME``)."""
    home = Path(home or workspace.home())
    store = _store(str(home / "switchyard.db"))
    st.subheader("Alerts")
    if st.button("Check now", key="alerts-check", icon=":material/notifications_active:"):
        try:
            rows = alerts.check(store, home=home)
        except SwitchyardError as e:
            show_error(e)
        else:
            new = sum(1 for a in rows if a["new"])
            failed = [delivery_text(d) for a in rows for d in a["deliveries"] if not d["delivered"]]
            st.success(f"checked: {new} new alert(s), {len(rows) - new} retried")
            for line in failed:
                st.warning(line)
    rows = alerts.list_alerts(store, limit=LIMIT)
    if rows:
        st.dataframe(alerts_frame(rows), hide_index=True, width="stretch", key="alerts-table")
        failed = sum(1 for a in rows if not a["delivered"])
        if failed:
            st.caption(f"{failed} of the {len(rows)} alerts shown are not delivered to every channel; "
                       "failed deliveries are retried by later checks (3 attempts).")
    else:
        st.caption("No alerts yet.")
    try:
        view = alerts.channels_view(home)
    except SwitchyardError as e:
        show_error(e, "Fix the file, then reload the page.")
        return
    _channels(store, home, view)
    _add_channel(home)
    _rules(home, view["rules"])


def _channels(store: RunStore, home: Path, view: dict) -> None:
    st.markdown(f"**Channels** (`{view['path']}`{'' if view['exists'] else ', defaults'})")
    for c in view["channels"]:
        cols = st.columns([3, 1, 1])
        only = f" · apps: {', '.join(c['apps'])}" if c["apps"] else ""
        cols[0].markdown(f"`{c['name']}` · {c['kind']} · {c['target']}{only}")
        if cols[1].button("Send test", key=f"alerts-test-{c['name']}"):
            try:
                a = alerts.send_test(c["name"], store=store, home=home)
            except SwitchyardError as e:
                show_error(e)
            else:
                d = a["deliveries"][0]
                if d["delivered"]:
                    st.success(f"test alert delivered through {c['name']}: {d.get('note') or 'OK'}")
                else:
                    st.error(f"test alert through {c['name']} FAILED: {d['error']}")
        if cols[2].button("Remove", key=f"alerts-remove-{c['name']}"):
            try:
                alerts.remove_channel(c["name"], home)
            except SwitchyardError as e:
                show_error(e)
            else:
                st.rerun()


def _add_channel(home: Path) -> None:
    with st.expander("Add a channel"):
        kind = st.radio("Kind", KINDS, horizontal=True, key="alerts-new-kind")
        spec: dict = {"name": st.text_input("Name", key="alerts-new-name", placeholder="ops-hook"), "kind": kind}
        if kind == "file":
            spec["path"] = st.text_input("File (relative to the workspace)", "alerts.log", key="alerts-new-path")
        elif kind == "webhook":
            spec["url"] = st.text_input("URL (receives a JSON POST)", key="alerts-new-url",
                                        placeholder="https://hooks.example.com/alerts")
            spec["timeout"] = st.number_input("Timeout (s)", 1.0, 300.0, 5.0, key="alerts-new-timeout")
        else:
            spec["host"] = st.text_input("SMTP host", key="alerts-new-host")
            spec["port"] = int(st.number_input("Port", 1, 65535, 25, key="alerts-new-port"))
            spec["sender"] = st.text_input("From", key="alerts-new-sender", placeholder="switchyard@example.com")
            spec["to"] = _split(st.text_input("To (comma-separated)", key="alerts-new-to"))
            spec["starttls"] = st.checkbox("STARTTLS", key="alerts-new-starttls")
            spec["username"] = st.text_input("Login name (empty: no login)", key="alerts-new-username")
            spec["password_env"] = st.text_input("Environment variable with the password", DEFAULT_PASSWORD_ENV,
                                                 key="alerts-new-password-env")
            st.caption("The password is never written to a file: export the variable where alerts are checked.")
        spec["apps"] = _split(st.text_input("Only these apps (comma-separated, empty: all)",
                                            key="alerts-new-apps"))
        if st.button("Add channel", key="alerts-new-add"):
            try:
                alerts.add_channel({k: v for k, v in spec.items() if v is not False}, home)
            except SwitchyardError as e:
                show_error(e)
            else:
                st.success(f"channel '{spec['name']}' added")
                st.rerun()


def _rules(home: Path, rules: dict) -> None:
    with st.expander("Rules"):
        with st.form("alerts-rules"):
            wanted = {
                "on_failure": st.checkbox("Alert when a run fails", rules["on_failure"],
                                          key="alerts-rule-failure"),
                "duration_factor": st.number_input(
                    "Alert when a run takes more than N x its usual duration (0: off)", 0.0, 1000.0,
                    float(rules["duration_factor"]), step=0.5, key="alerts-rule-factor"),
                "min_history": int(st.number_input("Completed runs needed to know the usual duration", 1, 20,
                                                   int(rules["min_history"]), key="alerts-rule-history")),
                "health_gate": st.checkbox("Alert when a service's health gate fails", rules["health_gate"],
                                           key="alerts-rule-health"),
            }
            if st.form_submit_button("Save rules"):
                try:
                    alerts.set_rules({k: v for k, v in wanted.items() if v != rules[k]}, home)
                except SwitchyardError as e:
                    show_error(e)
                else:
                    st.success("rules saved")
