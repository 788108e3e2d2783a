"""Dask worker preload of rapids clusters: turns on ``cudf.pandas`` before anything imports pandas.

Given as the first ``--preload`` of a rapids worker, before the app's own preload
(``ClusterSpec.rapids``), so the app's ``import pandas`` gets cuDF's proxy module.
A worker where pandas was imported earlier, or where cuDF is missing, refuses to
start with one line saying so instead of running pandas on the CPU under a rapids label.
"""

import sys

from switchyard import device

device.BOOT["pandas_before"] = "pandas" in sys.modules
if device.BOOT["pandas_before"]:
    raise RuntimeError("rapids worker: pandas was imported before the rapids boot preload, so cudf.pandas "
                       "cannot proxy it: give switchyard.rapids_boot as the first --preload")
try:
    import cudf.pandas
except Exception as e:
    raise RuntimeError(f"rapids worker: cuDF cannot be imported ({type(e).__name__}: {e}): install the app "
                       "with rapids on (switchyard install APP --modes 12), or turn rapids off") from e
cudf.pandas.install()
device.BOOT["cudf_pandas"] = True
