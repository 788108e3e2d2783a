import pytest

from switchyard.exceptions import SettingsError, WorkersError
from switchyard.settings import (check_scheduler, format_workers, load_settings, parse_workers, update_args,
                                 update_cluster)

SAMPLE = """\
# Settings of a test app
[args]
files = 8 # how many files
name = "x"

[cluster]
pool = false   # items in a process pool
cython = false
dask = true
rapids = false
scheduler = "127.0.0.1:8786"

[cluster.workers]
"127.0.0.1" = 2

[cluster.service_health]
allow_idle = false
max_unhealthy = 0
max_restart_rate = 0.25
"""


@pytest.fixture
def settings_file(tmp_path):
    p = tmp_path / "app_settings.toml"
    p.write_text(SAMPLE)
    return p


def test_load(settings_file):
    s = load_settings(settings_file)
    assert s.args == {"files": 8, "name": "x"}
    assert s.cluster.mode == 4
    assert s.cluster.workers == {"127.0.0.1": 2}
    assert s.cluster.service_health["max_restart_rate"] == 0.25


def test_round_trip_keeps_comments_and_order(settings_file):
    update_args(settings_file, {"files": 16, "name": 'a "quoted"\nvalue'})
    update_cluster(settings_file, pool=True, workers={"127.0.0.1": 1, "::1": 3})
    text = settings_file.read_text()
    assert "# Settings of a test app" in text
    assert "files = 16 # how many files" in text
    assert "pool = true   # items in a process pool" in text
    assert text.index("[args]") < text.index("[cluster]") < text.index("[cluster.service_health]")
    s = load_settings(settings_file)
    assert s.args["name"] == 'a "quoted"\nvalue'
    assert s.cluster.workers == {"127.0.0.1": 1, "::1": 3}
    assert s.cluster.mode == 5


def test_unchanged_round_trip_is_byte_identical(settings_file):
    update_args(settings_file, {})
    assert settings_file.read_text() == SAMPLE


@pytest.mark.parametrize("changes,key", [
    ({"workers": {"127.0.0.1": 0}}, "cluster.workers"),
    ({"workers": {"bad host!": 2}}, "cluster.workers"),
    ({"workers": {}}, "cluster.workers"),
    ({"pool": "yes"}, "cluster.pool"),
    ({"scheduler": "nowhere"}, "cluster.scheduler"),
])
def test_invalid_cluster_changes_leave_the_file_untouched(settings_file, changes, key):
    before = settings_file.read_bytes()
    with pytest.raises(SettingsError) as e:
        update_cluster(settings_file, **changes)
    assert str(settings_file) in str(e.value) and key in str(e.value)
    assert settings_file.read_bytes() == before


def test_malformed_toml_names_file_and_line(tmp_path):
    p = tmp_path / "app_settings.toml"
    p.write_text("[args]\nfiles = \n")
    with pytest.raises(SettingsError) as e:
        load_settings(p)
    assert str(p) in str(e.value) and "line 2" in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(SettingsError, match="file not found"):
        load_settings(tmp_path / "nope.toml")


def test_parse_workers():
    assert parse_workers("127.0.0.1:2,node-b:4,[::1]:1") == {"127.0.0.1": 2, "node-b": 4, "::1": 1}
    assert format_workers({"127.0.0.1": 2, "::1": 1}) == "127.0.0.1:2,[::1]:1"


@pytest.mark.parametrize("bad", ["127.0.0.1", "127.0.0.1:0", "h:x", "a:1,a:2", "", "bad_host!:2", "::1:2"])
def test_bad_workers_strings(bad):
    with pytest.raises(WorkersError) as e:
        parse_workers(bad)
    assert "--workers" in str(e.value)


def test_scheduler_addresses():
    assert check_scheduler("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert check_scheduler("[::1]:8786") == "[::1]:8786"
    with pytest.raises(SettingsError):
        check_scheduler("10.0.0.5")
