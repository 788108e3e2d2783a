"""The service-mode section in AppTest: STATUS/HEALTH without a service, the table, the gate, settings."""

from __future__ import annotations

from switchyard.app import AppEnv
from switchyard.settings import load_settings

from ..conftest import make_tiny_app


def panel():
    from switchyard.app import AppEnv
    from switchyard.settings import load_settings
    from switchyard.ui import service

    env = AppEnv("tinyapp")
    service.render(env, load_settings(env.settings_path))


def test_status_health_and_saved_gate_settings(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    make_tiny_app(tmp_path / "apps")
    monkeypatch.setenv("SWITCHYARD_APPS", str(tmp_path / "apps"))
    monkeypatch.setenv("SWITCHYARD_HOME", str(tmp_path / "home"))
    at = AppTest.from_function(panel, default_timeout=30).run()
    assert not at.exception
    assert [c.value for c in at.code][1].count("action='status'") == 1
    at.button(key="service-status-tinyapp").click().run()
    assert "**stopped**" in at.markdown[0].value
    assert len(at.dataframe) == 1
    assert "allow_idle" in at.error[0].value
    at.checkbox(key="service-tinyapp-allow-idle").check().run()
    at.button(key="service-tinyapp-save").click().run()
    env = AppEnv("tinyapp", apps_dir=tmp_path / "apps")
    assert load_settings(env.settings_path).cluster.service_health["allow_idle"] is True
    at.button(key="service-health-tinyapp").click().run()
    assert any("health gate: passed" in s.value for s in at.success)
    assert (tmp_path / "home" / "service" / "tinyapp" / "health.json").is_file()
