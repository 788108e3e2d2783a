"""Worker environments with real uv, real Cython, real subprocesses."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from switchyard import logs
from switchyard.cluster.env import (
    LOCK_NAME, c_compiler, env_dir, env_python, install_local, is_current, worker_environ,
)
from switchyard.exceptions import InstallError


def run_in_env(app_env, code: str, cython: bool) -> str:
    done = subprocess.run([str(env_python(app_env)), "-c", code], env=worker_environ(app_env, cython),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_stream_process_delivers_each_line_while_the_process_runs(tmp_path):
    script = "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.3)\n"
    seen: list[tuple[float, str]] = []
    sink = logs.LineSink(tmp_path / "x.log", lambda s: seen.append((time.monotonic(), s)))
    code = logs.stream_process([sys.executable, "-c", script + "raise SystemExit(3)"],
                               on_line=sink, prefix="[p] ")
    ended = time.monotonic()
    sink.close()
    assert code == 3
    assert [s for _, s in seen] == ["[p] line 0", "[p] line 1", "[p] line 2"]
    assert ended - seen[0][0] > 0.5  # the first line came long before the exit
    assert logs.tail(tmp_path / "x.log", 2) == ["[p] line 1", "[p] line 2"]
    lines, offset = logs.follow(tmp_path / "x.log", 0)
    assert len(lines) == 3 and logs.follow(tmp_path / "x.log", offset) == ([], offset)
    with pytest.raises(TypeError):
        logs.stream_process("echo hi", on_line=None)  # type: ignore[arg-type]


def test_first_install_streams_its_output_and_pins_the_engine(provisioned_env):
    app_env, result, lines = provisioned_env.app_env, provisioned_env.result, provisioned_env.lines
    assert result.ok and not result.skipped and result.python == env_python(app_env)
    uv_lines = [t for t, s in lines if s.startswith("[uv] ")]
    check_lines = [t for t, s in lines if s.startswith("[check] ")]
    assert len(uv_lines) >= 3
    # uv's lines reached the callback while the install was still going on, not at the end.
    assert max(uv_lines) < min(check_lines) <= lines[-1][0]
    log = result.log_path.read_text()
    assert log.startswith("=== ") and "install 'tinyapp'" in log and "[uv] " in log
    # The workers get the driver's exact dask/distributed, plus the app's own dependency.
    out = run_in_env(app_env, "import dask, distributed, blinker, tinyapp; "
                     "print(dask.__version__, distributed.__version__)", cython=False)
    assert out.split() == [importlib.metadata.version("dask"), importlib.metadata.version("distributed")]


def test_second_install_is_skipped_and_fast(provisioned_env):
    app_env = provisioned_env.app_env
    assert is_current(app_env, cython=False)
    started = time.monotonic()
    again = install_local(app_env)
    assert again.ok and again.skipped
    assert time.monotonic() - started < 1.5


def test_cython_build_shadows_the_py_module_only_in_cython_mode(provisioned_env):
    if c_compiler() is None:
        pytest.skip("no C compiler on this machine")
    app_env = provisioned_env.app_env
    built = install_local(app_env, cython=True)
    assert built.ok and not built.skipped, built.error
    assert is_current(app_env, cython=True) and is_current(app_env, cython=False)
    code = "import tinyapp.kernel as k; print(k.__file__, k.total(10))"
    compiled, plain = run_in_env(app_env, code, cython=True), run_in_env(app_env, code, cython=False)
    assert compiled.split()[0].endswith(".so") and compiled.split()[1] == "45"
    assert plain.split()[0].endswith("kernel.py") and plain.split()[1] == "45"
    assert install_local(app_env, cython=True).skipped


def test_cython_compile_error_names_the_module(make_app):
    if c_compiler() is None:
        pytest.skip("no C compiler on this machine")
    app_env = make_app("badcy", dependencies=())
    (app_env.app_dir / "badcy" / "kernel.py").write_text("def total(n):\n    cdef int x = n\n    return x\n")
    with pytest.raises(InstallError) as err:
        install_local(app_env, cython=True)
    message = str(err.value)
    assert "'kernel'" in message and "cython bit off" in message
    assert not is_current(app_env, cython=False)  # a failed build never leaves a stamp


def test_app_that_does_not_load_reports_the_error_then_is_repaired(make_app):
    broken = "from switchyard.app import App\nraise RuntimeError('tiny app broken on purpose')\n"
    app_env = make_app("shaky", dependencies=(), init=broken)
    result = install_local(app_env)
    assert not result.ok and "tiny app broken on purpose" in result.error
    assert not is_current(app_env, cython=False)
    with pytest.raises(InstallError, match="broken on purpose"):
        install_local(app_env, check=True)

    app_env = make_app("shaky", dependencies=())  # the operator fixes the app
    fixed = install_local(app_env)
    assert fixed.ok and not fixed.skipped and is_current(app_env, cython=False)

    # A broken environment is rebuilt, whether its python or its .pth files went missing.
    site = next(env_dir(app_env).glob("lib/python*/site-packages"))
    (site / "_switchyard.pth").unlink()
    repaired = install_local(app_env)
    assert repaired.ok and not repaired.skipped
    env_python(app_env).unlink()
    assert not is_current(app_env, cython=False)
    assert install_local(app_env).ok and env_python(app_env).exists()


def test_concurrent_installs_of_one_app_do_not_collide(make_app):
    app_env = make_app("twice", dependencies=())
    results, errors = [], []

    def install():
        try:
            results.append(install_local(app_env))
        except Exception as e:  # pragma: no cover - reported by the assert below
            errors.append(e)

    threads = [threading.Thread(target=install) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(results) == 2 and all(r.ok for r in results)
    assert sorted(r.skipped for r in results) == [False, True]  # the second waited, then found it current
    assert (env_dir(app_env) / LOCK_NAME).exists()
    assert json.loads((env_dir(app_env) / ".stamp.json").read_text())["env"]


def test_worker_environ_sets_what_workers_need(provisioned_env):
    app_env = provisioned_env.app_env
    build = str(env_dir(app_env) / "cython")
    on, off = worker_environ(app_env, cython=True), worker_environ(app_env, cython=False)
    assert on["PYTHONPATH"].split(os.pathsep)[0] == build
    assert build not in off.get("PYTHONPATH", "").split(os.pathsep)
    for environ in (on, off):
        assert environ["PYTHONUNBUFFERED"] == "1"
        assert environ["DASK_DISTRIBUTED__WORKER__DAEMON"] == "False"
        assert environ["DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION"] == "1.0"
        assert environ["SWITCHYARD_HOME"] == str(app_env.home)
