"""The session reaper stops only processes that started during the session and point into its folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.reaper import leftovers, reap

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_reaps_a_detached_leftover_and_spares_outsiders(tmp_path):
    inside = tmp_path / "session"
    (inside / "home").mkdir(parents=True)
    outside = tmp_path / "session-other"  # a sibling whose name starts like the root
    outside.mkdir()
    started = time.time()
    env = dict(os.environ, SWITCHYARD_HOME=str(inside / "home"))
    by_env = subprocess.Popen(SLEEPER, env=env, start_new_session=True)
    by_cwd = subprocess.Popen(SLEEPER, cwd=inside / "home", start_new_session=True)
    sibling = subprocess.Popen(SLEEPER, env=dict(os.environ, SWITCHYARD_HOME=str(outside)), start_new_session=True)
    stray = subprocess.Popen(SLEEPER, start_new_session=True)
    try:
        found = leftovers(inside, started)
        assert by_env.pid in found and by_cwd.pid in found
        assert sibling.pid not in found and stray.pid not in found and os.getpid() not in found
        assert leftovers(inside, time.time() + 5) == []  # started before "the session": spared

        described = reap(inside, started, grace=2.0)
        assert {int(line.split()[0]) for line in described} == set(found)
        assert by_env.wait(5) is not None and by_cwd.wait(5) is not None
        assert sibling.poll() is None and stray.poll() is None
    finally:
        for proc in (by_env, by_cwd, sibling, stray):
            proc.kill()
            proc.wait()
