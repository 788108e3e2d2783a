"""Which engine lines reach run.log (people) and which stay in engine.log only."""

from __future__ import annotations

from switchyard.logs import EngineSplit, count_lines, engine_record

# Lines as a dask-mode run of flight captures them (scheduler and worker streams interleaved).
CAPTURED = """\
[scheduler] 2026-12-01 12:46:39,637 - distributed.scheduler - INFO - -----------------------------------------------
[scheduler] 2026-12-01 12:46:39,686 - distributed.http.proxy - INFO - To route to workers diagnostics web server please install jupyter-server-proxy: python -m pip install jupyter-server-proxy
[scheduler] /env/lib/python3.11/site-packages/distributed/node.py:195: UserWarning: Port 8787 is already in use.
[scheduler]   warnings.warn(
[cluster] scheduler at tls://127.0.0.1:34621 on 127.0.0.1 in 5.0 s (pid 2976)
[127.0.0.1-0] 2026-12-01 12:46:52,702 - distributed.preloading - INFO - Import preload module: flight
[127.0.0.1-0] 2026-12-01 12:46:53,074 - distributed.worker - INFO -       Start worker at:      tls://127.0.0.1:45775
[127.0.0.1-0]     indented continuation of an INFO record
[127.0.0.1-1] hello from the app
[127.0.0.1-0] 2026-12-01 12:47:53,074 - distributed.worker - WARNING - Compute Failed
[127.0.0.1-0]   Traceback (most recent call last):
[127.0.0.1-0] 2026-12-01 12:47:54,000 - distributed.core - INFO - Run out-of-band function 'who_has'
[127.0.0.1-0] 2026-12-01 12:47:55,000 - flight - INFO - the app's own logger is the app's output
[scheduler] 2026-12-01 12:46:54,724 - distributed.scheduler - INFO - Remove client Client-442a9719
[scheduler] 2026-12-01 12:46:55,000 - distributed.scheduler - ERROR - Couldn't gather keys
""".splitlines()


def test_people_see_warnings_app_output_and_tracebacks_not_info_records():
    split = EngineSplit()
    shown = [line for line in CAPTURED if split.for_people(line)]
    assert shown == [
        "[scheduler] /env/lib/python3.11/site-packages/distributed/node.py:195: UserWarning: Port 8787 is already in use.",
        "[scheduler]   warnings.warn(",
        "[cluster] scheduler at tls://127.0.0.1:34621 on 127.0.0.1 in 5.0 s (pid 2976)",
        "[127.0.0.1-1] hello from the app",
        "[127.0.0.1-0] 2026-12-01 12:47:53,074 - distributed.worker - WARNING - Compute Failed",
        "[127.0.0.1-0]   Traceback (most recent call last):",
        "[127.0.0.1-0] 2026-12-01 12:47:55,000 - flight - INFO - the app's own logger is the app's output",
        "[scheduler] 2026-12-01 12:46:55,000 - distributed.scheduler - ERROR - Couldn't gather keys",
    ]
    assert engine_record(CAPTURED[0]) == ("distributed.scheduler", "INFO")
    assert engine_record("2026-12-01 12:46:39,637 - dask.config - DEBUG - x") == ("dask.config", "DEBUG")
    assert engine_record("[127.0.0.1-1] hello from the app") is None


def test_count_lines(tmp_path):
    path = tmp_path / "engine.log"
    assert count_lines(path) == 0
    path.write_text("\n".join(CAPTURED) + "\n")
    assert count_lines(path) == len(CAPTURED)
