"""The run agent (a resident fork server for drivers) with real processes: runs go through
it (a killed forked driver: ``test_faults``), a killed agent loses nothing, a crashing app
fails its own run only, an edited app runs as edited, and the operator sees and stops it
from the CLI."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from switchyard.app import AppEnv
from switchyard.runs import agent

from ..conftest import make_tiny_app
from .conftest import cli, cli_json
from .lifecycle_helpers import (agent_log, agent_record, forked, store_of, wait_status, wait_until,
                                warm_agent)

SMALL = ["--arg", "tasks=2", "--arg", "samples_per_task=2000", "--arg", "chunks=1"]

# A tiny app that can sleep in its batches, crash its driver in reduce and say its version.
INIT = '''
import os
import time

from switchyard.app import App, Args, Partition

VERSION = "one"


class AgentArgs(Args):
    n: int = 2
    sleep: float = 0.0
    crash: bool = False


class AgentApp(App):
    Args = AgentArgs

    def partitions(self):
        return [Partition(name=f"p{i}", weight=1.0, items=(i,)) for i in range(self.args.n)]

    def work_item(self, item):
        time.sleep(self.args.sleep)
        return VERSION

    def reduce(self, results, output_dir):
        if self.args.crash:
            os._exit(1)
        output_dir.mkdir(parents=True, exist_ok=True)
        path = output_dir / "out.txt"
        path.write_text(f"{VERSION} {results}")
        return path
'''


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(apps, home, AppEnv) of an installed app of this module's own; its agents stop at the end."""
    from switchyard.cluster.env import install_local

    root = tmp_path_factory.mktemp("agent")
    make_tiny_app(root / "apps", "agentapp", dependencies=(), init=INIT)
    app_env = AppEnv("agentapp", apps_dir=root / "apps", workspace=root / "home")
    assert install_local(app_env).ok
    yield root / "apps", root / "home", app_env
    agent.stop(root / "home")


record = agent_record
warm = warm_agent


def run_tiny(apps: Path, home: Path, *args: str, detach: bool = False) -> dict:
    return cli_json("run", "agentapp", "--mode", "0", *(["--detach"] if detach else []), *args,
                    home=home, apps=apps)


def test_after_kill_9_of_the_agent_the_next_run_works_and_a_fresh_agent_starts(run_home):
    apps, home = run_home
    app_env = AppEnv("montecarlo", apps_dir=apps, workspace=home)
    old = warm(app_env)
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: not agent.pid_alive(old), 10, "the agent gone")
    assert agent.Target(home, "montecarlo", False).socket.exists()  # left behind by kill -9
    out = cli_json("run", "montecarlo", "--mode", "0", *SMALL, home=home, apps=apps)
    assert out["status"] == "completed"
    fresh = wait_until(lambda: (r := record(home, "montecarlo")).get("state") == "running" and r["pid"], 60,
                       "a fresh agent")
    assert fresh != old
    out = cli_json("run", "montecarlo", "--mode", "0", *SMALL, home=home, apps=apps)
    assert out["status"] == "completed" and forked(home, "montecarlo", out["orchestration_id"])


def test_an_app_that_exits_in_reduce_fails_its_own_run_only(tiny):
    apps, home, app_env = tiny
    pid = warm(app_env)
    healthy = run_tiny(apps, home, "--arg", "n=4", "--arg", "sleep=0.5", detach=True)["orchestration_id"]
    crash = run_tiny(apps, home, "--arg", "crash=true", detach=True)["orchestration_id"]
    store = store_of(home)
    assert wait_status(store, crash, {"interrupted", "failed", "completed"}, timeout=60) != "completed"
    assert wait_status(store, healthy, {"completed", "failed", "interrupted"}, timeout=60) == "completed", store.get(healthy).error
    [crashed] = forked(home, "agentapp", crash)
    [driver] = forked(home, "agentapp", healthy)
    assert store.get(healthy).driver_pid == driver  # the forked process ran it
    assert f"driver pid {crashed} (orchestration {crash}) exited with code 1" in agent_log(home, "agentapp")
    wait_until(lambda: f"driver pid {driver} (orchestration {healthy}) exited with code 0"
               in agent_log(home, "agentapp"), 5, "the agent reaping its driver")
    assert record(home, "agentapp")["pid"] == pid and agent.pid_alive(pid)  # one agent serves every run


def test_an_app_edited_between_two_runs_runs_as_edited(tiny):
    apps, home, app_env = tiny
    warm(app_env)
    first = run_tiny(apps, home, "--arg", "n=2")
    assert Path(first["output"]).read_text() == "one [['one'], ['one']]"
    init = apps / "agentapp" / "agentapp" / "__init__.py"
    init.write_text(init.read_text().replace('VERSION = "one"', 'VERSION = "second"'))
    second = run_tiny(apps, home, "--arg", "n=2")
    assert Path(second["output"]).read_text() == "second [['second'], ['second']]"
    assert all(forked(home, "agentapp", out["orchestration_id"]) for out in (first, second))
    init.write_text(init.read_text().replace('VERSION = "second"', 'VERSION = "one"'))


def test_a_reinstalled_environment_replaces_the_agent(tiny):
    apps, home, app_env = tiny
    old = warm(app_env)
    stamp = home / "envs" / "agentapp" / ".stamp.json"
    st = stamp.stat()
    os.utime(stamp, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert run_tiny(apps, home)["status"] == "completed"  # by a process while the new agent starts
    new = warm(app_env)
    assert new != old and not agent.pid_alive(old)


def test_cli_status_and_stop(tiny):
    apps, home, app_env = tiny
    pid = warm(app_env)
    rows = cli_json("agent", "status", home=home, apps=apps)["agents"]
    [row] = [r for r in rows if r["key"] == "agentapp"]
    assert (row["state"], row["pid"], row["mode"], row["children"]) == ("running", pid, "fork", 0)
    assert row["version"] == agent.code_fingerprint() and row["idle_seconds"] >= 0
    text = cli("agent", "status", home=home, apps=apps).stdout
    assert f"agentapp: running, pid {pid}, fork mode" in text
    stopped = cli_json("agent", "stop", "agentapp", home=home, apps=apps)
    assert stopped == {"stopped": ["agentapp"], "left": []}
    assert not agent.pid_alive(pid) and not record(home, "agentapp")
    assert cli("agent", "status", home=home, apps=apps).stdout.strip() == \
        "no run agent in this workspace (the next run starts one)"


def test_an_idle_agent_exits(tiny, monkeypatch):
    apps, home, app_env = tiny
    agent.stop(home)
    monkeypatch.setenv(agent.IDLE_ENV, "1")
    pid = warm(app_env)
    wait_until(lambda: not agent.pid_alive(pid), 30, "the idle agent exiting")
    assert "idle for 1 s: exiting" in agent_log(home, "agentapp") and not record(home, "agentapp")


def test_thread_mode_runs_the_driver_in_the_agent(tiny, monkeypatch):
    apps, home, app_env = tiny
    monkeypatch.setenv(agent.MODE_ENV, "thread")
    pid = warm(app_env)
    out = run_tiny(apps, home)
    assert out["status"] == "completed"
    assert store_of(home).get(out["orchestration_id"]).driver_pid == pid
    ended = f"driver thread of orchestration {out['orchestration_id']} ended with code 0"
    assert ended in agent_log(home, "agentapp")
    agent.stop(home)


def test_a_bad_agent_setting_leaves_the_run_a_clear_error(run_home, monkeypatch):
    apps, home = run_home
    monkeypatch.setenv(agent.MODE_ENV, "forking")
    proc = cli("run", "montecarlo", "--mode", "0", "--json", *SMALL, home=home, apps=apps)
    out = json.loads(proc.stdout)
    assert out["status"] == "interrupted"
    assert "$SWITCHYARD_AGENT is 'forking': set it to fork (the default)" in out["error"]
