"""Guards with real processes (issue 14): the API reads its token from a file and never shows
it in `ps`; its documentation routes need the token; the workbench binds beyond loopback only
with --expose."""

from __future__ import annotations

import os
import signal
import subprocess

import httpx

from .conftest import SWITCHYARD
from .test_api import serve, stop, wait_serving

TOKEN = "file-token-5d0e9b"


def test_api_token_from_a_file_never_in_ps_and_docs_guarded(run_home, tmp_path):
    apps, home = run_home
    token_file = tmp_path / "api.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    proc, port = serve(home, apps, "--host", "0.0.0.0", "--token-file", str(token_file))
    try:
        wait_serving(proc, port)
        ps = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
        mine = [line for line in ps.splitlines() if str(port) in line and "api" in line]
        assert mine and TOKEN not in ps, mine  # the API process is listed, its token is not
        cmdline = open(f"/proc/{proc.pid}/cmdline", "rb").read().decode()
        assert str(token_file) in cmdline and TOKEN not in cmdline
        base = f"http://127.0.0.1:{port}"
        for path in ("/docs", "/redoc", "/openapi.json", "/orchestrations"):
            assert httpx.get(base + path, timeout=5).status_code == 401, path
        ok = httpx.get(base + "/openapi.json", timeout=5, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and "/orchestrations" in ok.json()["paths"]
    finally:
        assert TOKEN not in stop(proc)


def test_workbench_beyond_loopback_only_with_expose(run_home):
    apps, home = run_home
    env = dict(os.environ, SWITCHYARD_HOME=str(home), SWITCHYARD_APPS=str(apps))
    refused = subprocess.run([str(SWITCHYARD), "ui", "--address", "0.0.0.0", "--port", "1"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "refusing to serve the workbench on 0.0.0.0" in refused.stderr
    assert "arbitrary code" in refused.stderr and "reverse proxy with authentication" in refused.stderr
    # With --expose it goes ahead: the first line is the address it serves.
    proc = subprocess.Popen([str(SWITCHYARD), "ui", "--address", "0.0.0.0", "--expose", "--port", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "switchyard: workbench on http://0.0.0.0:1"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # streamlit too
        proc.communicate(timeout=30)
