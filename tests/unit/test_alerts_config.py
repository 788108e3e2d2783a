"""alerts.toml: defaults, validation errors naming file and key, edits that keep comments, redaction."""

from __future__ import annotations

import pytest

from switchyard.alerts import config, edits
from switchyard.alerts.config import Rules, redact_url
from switchyard.exceptions import AlertError

GOOD = """\
# ops alerts
[rules]
duration_factor = 2.5  # we like to know early
min_history = 4

[[channels]]
name = "log"
kind = "file"
path = "alerts.log"

[[channels]]
name = "ops-hook"
kind = "webhook"
url = "https://bot:s3cret@hooks.example.com:8443/alerts/T01?token=abc#frag"
timeout = 2
headers = { "X-Team" = "ops" }
apps = ["flight"]

[[channels]]
name = "mail"
kind = "smtp"
host = "127.0.0.1"
port = 2525
sender = "switchyard@example.com"
to = ["ops@example.com", "oncall@example.com"]
starttls = true
username = "alerts"
password_env = "OPS_SMTP_PW"
"""


def write(home, text):
    (home / "alerts.toml").write_text(text)
    return home / "alerts.toml"


def test_without_a_file_rules_are_defaults_and_alerts_go_to_alerts_log(tmp_path):
    s = config.load(tmp_path)
    assert not s.exists and s.rules == Rules(on_failure=True, duration_factor=3.0, min_history=3, health_gate=True)
    [log] = s.channels
    assert (log.name, log.kind, log.file_path(tmp_path)) == ("log", "file", tmp_path / "alerts.log")


def test_a_full_file_parses_and_shows_no_secret(tmp_path, monkeypatch):
    write(tmp_path, GOOD)
    s = config.load(tmp_path)
    assert s.rules == Rules(duration_factor=2.5, min_history=4)
    hook, mail = s.channel("ops-hook"), s.channel("mail")
    assert hook.timeout == 2.0 and hook.headers == {"X-Team": "ops"} and hook.accepts("flight")
    assert not hook.accepts("montecarlo") and s.channel("log").accepts("montecarlo")
    assert mail.to == ("ops@example.com", "oncall@example.com") and mail.port == 2525
    shown = str([c.describe(tmp_path) for c in s.channels])
    assert "s3cret" not in shown and "token" not in shown and "abc" not in shown and "bot" not in shown
    assert hook.target() == "https://hooks.example.com:8443/alerts/T01"
    assert mail.target() == "smtp://127.0.0.1:2525 -> ops@example.com, oncall@example.com"
    monkeypatch.setenv("OPS_SMTP_PW", "pw-from-env")
    assert config.password(mail) == "pw-from-env"


SMTP_M = "[[channels]]\nname = \"m\"\nkind = \"smtp\"\nhost = \"h\"\nsender = \"a@b\"\nto = [\"c@d\"]\n"


@pytest.mark.parametrize("text, key, fix", [
    ("[rules]\non_failure = 1\n", "rules.on_failure", "write on_failure = true or on_failure = false"),
    ("[rules]\nduration_factor = 0.5\n", "rules.duration_factor", "0 turns the rule off"),
    ("[rules]\nmin_history = 0\n", "rules.min_history", "min_history = 3"),
    ("[rules]\non_slow = true\n", "rules.on_slow", "use one of: on_failure"),
    ("rules = 3\n", "rules", "write it as [rules]"),
    ("[[channels]]\nname = \"a b\"\nkind = \"file\"\npath = \"x\"\n", "channels[0].name", 'name = "ops-hook"'),
    ("[[channels]]\nname = \"x\"\nkind = \"slack\"\n", 'channels."x".kind', "one of file, webhook, smtp"),
    ("[[channels]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"ftp://h/p?token=SECRET\"\n", 'channels."x".url',
     "https://hooks.example.com"),
    ("[[channels]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://h/\"\ntimeout = 0\n",
     'channels."x".timeout', "timeout = 5"),
    ("[[channels]]\nname = \"x\"\nkind = \"file\"\npath = \"a\"\nurl = \"http://h/\"\n", 'channels."x".url',
     "use only: name, kind, apps, path"),
    ("[[channels]]\nname = \"m\"\nkind = \"smtp\"\nhost = \"h\"\nsender = \"a@b\"\nto = \"c@d\"\n",
     'channels."m".to', 'to = ["ops@example.com"]'),
    ("[[channels]]\nname = \"m\"\nkind = \"smtp\"\nhost = \"h\"\nsender = \"nobody\"\nto = [\"c@d\"]\n",
     'channels."m".sender', '"ops@example.com"'),
    ("[[channels]]\nname = \"m\"\nkind = \"smtp\"\nhost = \"h\"\nport = 70000\nsender = \"a@b\"\nto = [\"c@d\"]\n",
     'channels."m".port', "1..65535"),
    ("[[channels]]\nname = \"m\"\nkind = \"smtp\"\nhost = \"h\"\nsender = \"a@b\"\nto = [\"c@d\"]\n"
     "password = \"hunter2\"\n", 'channels."m".password', "password_env"),
    ("[[channels]]\nname = \"m\"\nkind = \"file\"\npath = \"a\"\napps = \"flight\"\n", 'channels."m".apps',
     'apps = ["flight"]'),
    ("[[channels]]\nname = \"a\"\nkind = \"file\"\npath = \"x\"\n[[channels]]\nname = \"a\"\nkind = \"file\"\n"
     "path = \"y\"\n", "channels[1].name", "its own name"),
    (SMTP_M + "username = \"alerts\"\n", 'channels."m".username',
     "set starttls = true (port 587), or port = 465 (SMTPS)"),
    (SMTP_M + "port = 465\nstarttls = true\nsmtps = true\n", 'channels."m".starttls', "STARTTLS and SMTPS exclude"),
    (SMTP_M + "starttls = true\nca_file = \"missing-ca.pem\"\n", 'channels."m".ca_file', "PEM file of the CA"),
    (SMTP_M + "ca_file = \"alerts.toml\"\n", 'channels."m".ca_file', "set starttls = true"),
    (SMTP_M + "smtps = \"yes\"\n", 'channels."m".smtps', "write smtps = true or false"),
    ("[rules\n", None, "fix the syntax"),
    ("[other]\n", "other", "use only [rules] and [[channels]]"),
])
def test_invalid_values_name_the_file_the_key_and_the_fix(tmp_path, text, key, fix):
    path = write(tmp_path, text)
    with pytest.raises(AlertError) as e:
        config.load(tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"{path}: {key}: " if key else f"{path}: ")
    assert fix in msg and "\n" not in msg
    assert "SECRET" not in msg and "hunter2" not in msg


def test_redact_url_keeps_scheme_host_port_and_path_only():
    assert redact_url("https://u:p@h.example.com:8443/a/b?token=x#y") == "https://h.example.com:8443/a/b"
    assert redact_url("http://[::1]:9000/hook?k=v") == "http://[::1]:9000/hook"
    assert redact_url("http://127.0.0.1/hook") == "http://127.0.0.1/hook"
    assert redact_url("not a url") == "<invalid url>"


def test_edits_keep_comments_validate_and_create_the_file_from_the_defaults(tmp_path):
    s = edits.add_channel({"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9000/hook", "timeout": 3,
                            "apps": ["flight"]}, tmp_path)
    assert [c.name for c in s.channels] == ["log", "hook"]  # the default log channel stays
    text = (tmp_path / "alerts.toml").read_text()
    assert "# One JSON line per alert" in text and "\n\n[[channels]]\nname = \"hook\"" in text
    with pytest.raises(AlertError, match=r'channels."hook": a channel with this name exists'):
        edits.add_channel({"name": "hook", "kind": "file", "path": "x.log"}, tmp_path)
    with pytest.raises(AlertError, match=r'channels\[2\]\.name'):
        edits.add_channel({"name": "", "kind": "file", "path": "x.log"}, tmp_path)
    with pytest.raises(AlertError, match=r'channels."bad".url'):
        edits.add_channel({"name": "bad", "kind": "webhook", "url": "nope"}, tmp_path)
    assert (tmp_path / "alerts.toml").read_text() == text  # refused edits wrote nothing
    edits.set_rule("duration_factor", "2.5", tmp_path)
    edits.set_rule("on_failure", "off", tmp_path)
    with pytest.raises(AlertError, match=r"rules.min_history: 'many' is not a whole number"):
        edits.set_rule("min_history", "many", tmp_path)
    with pytest.raises(AlertError, match=r"rules.nope: unknown rule"):
        edits.set_rule("nope", "1", tmp_path)
    s = edits.remove_channel("log", tmp_path)
    assert s.rules == Rules(on_failure=False, duration_factor=2.5) and [c.name for c in s.channels] == ["hook"]
    text = (tmp_path / "alerts.toml").read_text()
    assert "duration_factor = 2.5    # a run takes more than" in text  # the comment survived
    with pytest.raises(AlertError, match=r'channels."log": no such channel: use one of: hook'):
        edits.remove_channel("log", tmp_path)
    assert config.load(tmp_path).rules.duration_factor == 2.5


def test_an_edited_file_is_read_again(tmp_path):
    write(tmp_path, "[rules]\nmin_history = 4\n")
    assert config.load(tmp_path).rules.min_history == 4
    write(tmp_path, "[rules]\nmin_history = 5  # longer text so the size changes\n")
    assert config.load(tmp_path).rules.min_history == 5
