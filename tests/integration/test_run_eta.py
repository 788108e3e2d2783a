"""The run ETA as the operator reads it: `switchyard run`'s batch lines and the Orchestrate page's
progress caption (AppTest), at 25, 50 and 75 % of one real 2-worker Dask run of equal batches
(the engine benchmark app: every batch sleeps the same time), each within 50 % of the time that
really remained until the last batch completed. In the same workspace (its engine environment
built), benchmark.json keeps the history of two real `switchyard bench` runs with other args."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from switchyard.runs.store import RunStore

from .conftest import REPO, SWITCHYARD, cli_json

pytestmark = pytest.mark.timeout(300)
PAGE = REPO / "pages" / "orchestrate.py"
N, WORK_MS = 8, 2000
CHECKS = (2, 4, 6)  # completed batches at 25, 50 and 75 %


def eta_value(text: str) -> float:
    m = re.search(r"ETA (?:(\d+) min )?(\d+) s", text)
    assert m, f"no ETA in {text!r}"
    return int(m.group(1) or 0) * 60 + int(m.group(2))


def test_cli_and_page_eta_are_within_half_the_real_remaining_time(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    apps, home = tmp_path / "apps", tmp_path / "home"
    shutil.copytree(REPO / "benchmarks" / "apps" / "engine", apps / "engine",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("SWITCHYARD_HOME", str(home))
    monkeypatch.setenv("SWITCHYARD_APPS", str(apps))
    proc = subprocess.Popen([str(SWITCHYARD), "run", "engine", "--mode", "4", "--workers", "127.0.0.1:2",
                             "--arg", f"n={N}", "--arg", f"work_ms={WORK_MS}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    lines: list[tuple[float, str]] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append((time.monotonic(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    page = AppTest.from_file(str(PAGE), default_timeout=60)
    page.query_params["app"] = "engine"
    page.run()
    store = None
    shown: dict[int, tuple[float, str]] = {}
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline and len(shown) < len(CHECKS):
            if store is None and (home / "switchyard.db").is_file():
                store = RunStore(home / "switchyard.db")
            runs = store.list(app="engine", limit=1) if store is not None else []
            k = runs[0].completed_batches if runs else 0
            if k in CHECKS and k not in shown:
                t0 = time.monotonic()
                page.run()
                t1 = time.monotonic()
                assert not page.exception
                shown[k] = ((t0 + t1) / 2, "\n".join(c.value for c in page.caption if "ETA" in c.value))
            time.sleep(0.05)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(timeout=10)
    out = "\n".join(line for _, line in lines)
    assert proc.returncode == 0, out[-3000:]
    done = [(t, line) for t, line in lines if re.match(r"batch \d+/\d+ \S+ completed on ", line)]
    assert len(done) == N, out[-3000:]
    t_end = done[-1][0]
    assert "ETA" not in done[-1][1]  # nothing left to estimate
    for k in CHECKS:
        t, line = done[k - 1]
        real = t_end - t
        assert abs(eta_value(line) - real) <= 0.5 * real, (k, line, real)
    assert sorted(shown) == list(CHECKS), (shown, out[-2000:])
    for k, (t, caption) in shown.items():
        real = t_end - t
        assert abs(eta_value(caption) - real) <= 0.5 * real, (k, caption, real)

    # benchmark.json: one history entry per benchmark run, each with its args and modes
    for n in (2, 3):
        cli_json("bench", "engine", "--mode", "0", "--arg", f"n={n}", home=home, apps=apps)
    doc = json.loads((home / "benchmark" / "engine" / "benchmark.json").read_text())
    assert doc["args"]["n"] == 3 and [h["args"]["n"] for h in doc["history"]] == [2, 3]
    assert all([r["mode"] for r in h["results"]] == [0] and h["fastest"] == 0 for h in doc["history"])
