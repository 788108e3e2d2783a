"""The rapids toggle on the Orchestrate page: the mode hint says what runs where, and the GPU
check next to it runs the real probe (this machine has no GPU, so it names the host and reason)."""

from __future__ import annotations

import pytest

from switchyard import gpu_probe
from switchyard.ui.common import file_mtime

from .conftest import open_page, texts

pytestmark = pytest.mark.timeout(120)


@pytest.mark.skipif(bool(gpu_probe.probe(cupy=False)["gpus"]), reason="this machine has a GPU")
def test_rapids_toggle_shows_the_hint_and_the_gpu_check_of_the_worker_hosts(flight):
    at = open_page()
    v = f"flight-{file_mtime(flight.settings_path)}"
    at.toggle(key=f"set-rapids-{v}").set_value(True).run()  # flight's settings have dask on: mode 12
    info = texts(at.info)
    assert "mode 12 (rd\\_\\_)" in info and "one worker process per GPU" in info
    assert "through cudf.pandas" in info
    assert "nvidia-smi" in texts(at.warning) and "(this machine)" in texts(at.warning)
    assert "GPU check of the worker hosts 127.0.0.1" in texts(at.caption)
    [check] = [b for b in at.button if b.label == "Check GPUs"]
    check.click().run()
    errors = texts(at.error)
    assert "host '127.0.0.1' (this machine): nvidia-smi" in errors and "turn rapids off" in errors
    assert not at.exception
