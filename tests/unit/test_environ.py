"""The allow-list every process that runs app or step code starts from (switchyard.environ)."""

from __future__ import annotations

import pytest

from switchyard.environ import child_environ, declared_names, dropped, is_secret
from switchyard.exceptions import SettingsError

CALLER = {
    "PATH": "/usr/bin", "HOME": "/root", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "TMPDIR": "/tmp",
    "PYTHONHASHSEED": "0", "SWITCHYARD_HOME": "/ws", "SWITCHYARD_AGENT_IDLE": "20",
    "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "30s", "CUDA_VISIBLE_DEVICES": "0", "OMP_NUM_THREADS": "1",
    "UV_CACHE_DIR": "/cache", "HTTPS_PROXY": "http://proxy:3128",
    # what must stay behind
    "SWITCHYARD_API_TOKEN": "t1", "SWITCHYARD_SMTP_PASSWORD": "t2", "SWITCHYARD_WEBHOOK_SECRET": "t3",
    "AWS_ACCESS_KEY_ID": "t4", "AWS_SECRET_ACCESS_KEY": "t5", "GITHUB_TOKEN": "t6", "DB_PASSWORD": "t7",
    "SSH_AUTH_SOCK": "/tmp/agent", "UV_INDEX_URL": "https://u:t8@idx/simple", "UV_PUBLISH_TOKEN": "t9",
    "http_proxy": "http://u:t10@proxy:3128", "MY_APP_SETTING": "x", "EDITOR": "vi",
}


def test_only_the_allow_list_passes_and_never_a_secret():
    env = child_environ(CALLER)
    assert set(env) == {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PYTHONHASHSEED", "SWITCHYARD_HOME",
                        "SWITCHYARD_AGENT_IDLE", "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT",
                        "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "UV_CACHE_DIR", "HTTPS_PROXY"}
    assert all(env[k] == CALLER[k] for k in env)
    assert not any(v.startswith("t") and v[1:].isdigit() for v in env.values())
    assert "SWITCHYARD_API_TOKEN" in dropped(CALLER) and "PATH" not in dropped(CALLER)
    # declared names pass, even secret-looking ones; the workbench's own secrets never do
    env = child_environ(CALLER, declared=["MY_APP_SETTING", "DB_PASSWORD", "SWITCHYARD_API_TOKEN"],
                        overrides={"PATH": "/env/bin:/usr/bin"})
    assert env["MY_APP_SETTING"] == "x" and env["DB_PASSWORD"] == "t7" and "SWITCHYARD_API_TOKEN" not in env
    assert env["PATH"] == "/env/bin:/usr/bin"
    assert is_secret("UV_EXTRA_INDEX_URL", "https://a:b@h/") and not is_secret("UV_EXTRA_INDEX_URL", "https://h/")


def test_declared_names_come_from_app_settings(tmp_path):
    path = tmp_path / "app_settings.toml"
    assert declared_names(path) == ()
    path.write_text('[args]\n\n[environment]\npass = ["A_B", "MY_TOKEN"]\n')
    assert declared_names(path) == ("A_B", "MY_TOKEN")
    for body, key in (('pass = ["not a name"]', "environment.pass"), ('pass = ["SWITCHYARD_SMTP_PASSWORD"]',
                                                                       "environment.pass"),
                      ('copy = ["A"]', "environment")):
        path.write_text(f"[environment]\n{body}\n")
        with pytest.raises(SettingsError) as e:
            declared_names(path)
        assert str(e.value).startswith(f"{path}: {key}: ")
