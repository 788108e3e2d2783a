"""Background jobs: a thread or a snippet subprocess, recorded on disk, streamed to a log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from switchyard import ui_jobs
from switchyard.app import AppEnv
from switchyard.exceptions import SettingsError


def wait_done(app_env, kind, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = ui_jobs.job_state(app_env, kind)
        if state is not None and not state.is_running:
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {kind} still running after {timeout} s")


@pytest.fixture
def app_env(tmp_path):
    return AppEnv("demo", apps_dir=tmp_path / "apps", workspace=tmp_path / "home")


def test_thread_job_records_success_and_its_lines(app_env):
    def call(on_line):
        on_line("first")
        on_line("second")
        return {"answer": 42}

    ui_jobs.start_call(app_env, "run", call, summarize=lambda v: v)
    state = wait_done(app_env, "run")
    assert state.status == ui_jobs.SUCCEEDED and state.result == {"answer": 42}
    assert ui_jobs.read_log(state) == ["first", "second"]
    assert json.loads(ui_jobs.record_path(app_env, "run").read_text())["status"] == "succeeded"


def test_thread_job_operator_error_is_one_line_with_its_category(app_env):
    def call(on_line):
        raise SettingsError("app_settings.toml", "cluster.dask", "'yes' is not true/false", "write dask = true")

    ui_jobs.start_call(app_env, "run", call)
    state = wait_done(app_env, "run")
    assert state.status == ui_jobs.FAILED and state.category == "settings"
    assert state.error == "app_settings.toml: cluster.dask: 'yes' is not true/false: write dask = true"
    assert "Traceback" not in "\n".join(ui_jobs.read_log(state))


def test_thread_job_app_exception_puts_its_traceback_in_the_log(app_env):
    def call(on_line):
        raise ZeroDivisionError("the app divided by zero")

    ui_jobs.start_call(app_env, "run", call)
    state = wait_done(app_env, "run")
    assert state.category == "app" and state.error == "ZeroDivisionError: the app divided by zero"
    log = "\n".join(ui_jobs.read_log(state))
    assert "Traceback (most recent call last)" in log and "ZeroDivisionError" in log


def test_a_second_start_while_running_is_refused(app_env):
    release = threading.Event()
    ui_jobs.start_call(app_env, "run", lambda on_line: release.wait(10))
    try:
        with pytest.raises(ui_jobs.JobRunning, match="run of app 'demo' is already running"):
            ui_jobs.start_call(app_env, "run", lambda on_line: None)
    finally:
        release.set()
    assert wait_done(app_env, "run").status == ui_jobs.SUCCEEDED


def test_snippet_job_streams_lines_while_it_runs(app_env, tmp_path):
    snippet = tmp_path / "AGI_demo.py"
    snippet.write_text("import time\nprint('one', flush=True)\ntime.sleep(1.5)\nresult = 'done'\nprint('two')\n")
    ui_jobs.start_snippet(app_env, "install", snippet)
    deadline = time.time() + 10
    seen_running_with_line = False
    while time.time() < deadline:
        state = ui_jobs.job_state(app_env, "install")
        if state.is_running and "one" in ui_jobs.read_log(state):
            seen_running_with_line = True
            break
        time.sleep(0.05)
    assert seen_running_with_line
    state = wait_done(app_env, "install")
    assert state.status == ui_jobs.SUCCEEDED and state.result == {"summary": "done"}
    assert ui_jobs.read_log(state)[-2:] == ["one", "two"]


def test_snippet_job_failures_are_classified(app_env, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from switchyard.exceptions import ClusterError\n"
                   "raise ClusterError('no scheduler answers at 10.0.0.9:8786: start it first')\n")
    ui_jobs.start_snippet(app_env, "install", bad)
    state = wait_done(app_env, "install")
    assert (state.status, state.category) == (ui_jobs.FAILED, "cluster")
    assert state.error == "no scheduler answers at 10.0.0.9:8786: start it first"
    crash = tmp_path / "crash.py"
    crash.write_text("def work():\n    return {}['missing']\nwork()\n")
    ui_jobs.start_snippet(app_env, "install", crash)
    state = wait_done(app_env, "install")
    assert state.category == "app" and state.error == "KeyError: 'missing'"
    assert any("return {}['missing']" in line for line in ui_jobs.read_log(state))


def test_a_job_whose_process_vanished_is_reported_failed(app_env):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path = ui_jobs.record_path(app_env, "install")
    path.parent.mkdir(parents=True)
    state = ui_jobs.JobState(kind="install", app="demo", status="running", log=str(path.with_suffix(".log")),
                             started_at=time.time() - 5, pid=gone.pid)
    path.write_text(json.dumps(state.to_dict()))
    found = ui_jobs.job_state(app_env, "install")
    assert found.status == ui_jobs.FAILED and f"its process {gone.pid} is gone" in found.error
    again = ui_jobs.job_state(app_env, "install")  # recorded, not recomputed
    assert again.status == ui_jobs.FAILED and again.ended_at == found.ended_at


def test_a_thread_job_of_a_stopped_workbench_is_reported_failed(app_env):
    path = ui_jobs.record_path(app_env, "run")
    path.parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state = ui_jobs.JobState(kind="run", app="demo", status="running", log="x.log", started_at=time.time(),
                             runner="thread", pid=dead.pid)
    path.write_text(json.dumps(state.to_dict()))
    assert "workbench process that ran it stopped" in ui_jobs.job_state(app_env, "run").error
    assert os.getpid() != dead.pid
