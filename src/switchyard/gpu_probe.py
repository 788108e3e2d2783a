"""What GPUs a host has, asked of the host itself: ``nvidia-smi`` and CuPy's device query.

Standard library only at import, so the same source runs on a remote host as
``python -c <this file> probe`` over SSH (the last line it prints is the JSON
after :data:`MARK`) and in a worker process to name the device a batch ran on.
"""

import json
import os
import platform
import re
import shutil
import subprocess
import sys

MARK = "@@switchyard-gpu@@"
QUERY = "index,name,memory.total,driver_version"
SMI_TIMEOUT = 20.0


def _smi(args, timeout):
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None, "nvidia-smi not found on PATH (no NVIDIA driver installed)"
    try:
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"nvidia-smi did not run: {type(e).__name__}: {e}"
    if done.returncode != 0:
        last = (done.stdout + done.stderr).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        return None, f"nvidia-smi failed: {last[0]}"
    return done.stdout, None


def _cupy():
    """CuPy's view: its version, the CUDA runtime it was built for, the devices it sees."""
    try:
        import cupy
    except Exception as e:  # not installed, or a broken CUDA install
        return {"available": False, "error": f"{type(e).__name__}: {e}".strip()}
    out = {"available": True, "version": cupy.__version__}
    try:
        runtime = cupy.cuda.runtime
        out["runtime_version"] = int(runtime.runtimeGetVersion())
        out["devices"] = [runtime.getDeviceProperties(i)["name"].decode(errors="replace")
                          for i in range(runtime.getDeviceCount())]
    except Exception as e:  # CuPy imports but no device answers
        out["devices"] = []
        out["error"] = f"{type(e).__name__}: {e}".strip()
    return out


def probe(timeout=SMI_TIMEOUT, cupy=True):
    """This host's GPUs as a JSON-able dict.

    Keys: ``host``, ``gpus`` (index, name, memory_mib, driver), ``driver``, ``cuda``
    (the driver's CUDA version "13.0"), ``cuda_major``, ``reason`` (why none is usable, or
    None), ``cupy`` (when asked), ``cudf`` (importable here), ``visible`` (CUDA_VISIBLE_DEVICES).
    """
    out = {"host": platform.node(), "gpus": [], "driver": None, "cuda": None, "cuda_major": None,
           "reason": None, "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}
    text, reason = _smi(["--query-gpu=" + QUERY, "--format=csv,noheader,nounits"], timeout)
    if text is not None:
        for line in text.strip().splitlines():
            cells = [c.strip() for c in line.split(",")]
            if len(cells) < 4:
                continue
            try:
                memory = int(float(cells[2]))
            except ValueError:
                memory = None
            out["gpus"].append({"index": cells[0], "name": cells[1], "memory_mib": memory,
                                "driver": cells[3]})
        if out["gpus"]:
            out["driver"] = out["gpus"][0]["driver"]
            banner, _ = _smi([], timeout)
            found = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", banner or "")
            if found:
                out["cuda"] = f"{found.group(1)}.{found.group(2)}"
                out["cuda_major"] = int(found.group(1))
        else:
            reason = "nvidia-smi lists no GPU (driver installed, no device visible)"
    out["reason"] = reason
    if cupy:
        out["cupy"] = _cupy()
    try:
        import importlib.util

        out["cudf"] = importlib.util.find_spec("cudf") is not None
    except (ImportError, ValueError):
        out["cudf"] = False
    return out


def main(argv):
    if argv[1:2] != ["probe"]:
        print("usage: gpu_probe.py probe", file=sys.stderr)
        return 2
    print(MARK + json.dumps(probe()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
