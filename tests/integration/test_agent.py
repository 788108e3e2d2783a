"""The run agent (a resident fork server for drivers) with real processes: runs go through
it, a killed driver or agent loses nothing, a crashing app fails its own run only, an
edited app runs as edited, and the operator sees and stops it from the CLI."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from switchyard.app import AppEnv
from switchyard.runs import agent

from ..conftest import make_tiny_app
from .conftest import cli, cli_json
from .lifecycle_helpers import (assert_output_complete, checkpoints, start_long_run, store_of, wait_status,
                                wait_until)

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


def record(home: Path, app: str) -> dict:
    return agent.Target(home, app, False).read_record()


def warm(app_env: AppEnv) -> int:
    """Install the app's environment and start its agent (if needed); return the agent's pid."""
    from switchyard.cluster.env import install_local

    assert install_local(app_env).ok
    assert agent.warm_up(app_env, wait=60)
    return record(app_env.home, app_env.app)["pid"]


def agent_log(home: Path, app: str) -> str:
    return agent.Target(home, app, False).log.read_text()


def forked(home: Path, app: str, oid: str) -> list[int]:
    """The pids the agent forked for ``oid`` (from its log)."""
    import re

    started = re.findall(rf"driver pid (\d+) started for orchestration {oid} ", agent_log(home, app))
    return [int(p) for p in started]


def run_tiny(apps: Path, home: Path, *args: str, detach: bool = False) -> dict:
    return cli_json("run", "agentapp", "--mode", "0", *(["--detach"] if detach else []), *args,
                    home=home, apps=apps)


def test_a_run_is_forked_by_the_agent_and_completes(run_home):
    apps, home = run_home
    pid = warm(AppEnv("montecarlo", apps_dir=apps, workspace=home))
    out = cli_json("run", "montecarlo", "--mode", "0", *SMALL, home=home, apps=apps)
    assert out["status"] == "completed" and out["completed"] == out["batches"] == 2
    oid = out["orchestration_id"]
    [driver] = forked(home, "montecarlo", oid)
    assert store_of(home).get(oid).driver_pid == driver  # the forked process ran it
    wait_until(lambda: f"driver pid {driver} (orchestration {oid}) exited with code 0"
               in agent_log(home, "montecarlo"), 5, "the agent reaping its driver")
    assert record(home, "montecarlo")["pid"] == pid  # the same agent serves every run


def test_a_killed_forked_driver_is_interrupted_and_resume_redoes_no_batch(run_home):
    apps, home = run_home
    agent_pid = warm(AppEnv("montecarlo", apps_dir=apps, workspace=home))
    tasks = 14
    oid = start_long_run(home, apps, tasks, mode=0)
    store = store_of(home)
    wait_until(lambda: store.get(oid).completed_batches >= 2, 120, "2 batches completed")
    driver = store.get(oid).driver_pid
    assert psutil.Process(driver).ppid() == agent_pid
    os.kill(driver, signal.SIGKILL)
    killed_at = time.time()
    before = {b.idx: (b.ended_at, b.worker) for b in store.batches(oid) if b.status.value == "completed"}
    files = checkpoints(store, oid)
    wait_status(store, oid, {"interrupted"}, timeout=30)
    assert time.time() - killed_at < 12  # LEASE_TTL (5 s) plus the sweep
    assert psutil.pid_exists(agent_pid)  # the agent outlives its child

    warm(AppEnv("montecarlo", apps_dir=apps, workspace=home))  # (a source edit meanwhile replaces it)
    cli_json("orchestrations", "resume", oid, home=home, apps=apps)
    wait_status(store, oid, {"completed"}, timeout=150)
    assert_output_complete(store, oid, tasks)  # one completion per batch across both drivers
    after = {b.idx: b for b in store.batches(oid)}
    assert all((after[i].ended_at, after[i].worker, after[i].attempts) == (*b, 1) for i, b in before.items())
    assert all(checkpoints(store, oid)[i] == f for i, f in files.items())
    assert len(forked(home, "montecarlo", oid)) == 2  # the resumed driver was forked too


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
    assert wait_status(store, healthy, {"completed", "failed", "interrupted"}, timeout=60) == "completed"
    [crashed] = forked(home, "agentapp", crash)
    assert forked(home, "agentapp", healthy)
    assert f"driver pid {crashed} (orchestration {crash}) exited with code 1" in agent_log(home, "agentapp")
    assert record(home, "agentapp")["pid"] == pid and agent.pid_alive(pid)


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
