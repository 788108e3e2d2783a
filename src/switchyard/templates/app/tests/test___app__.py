"""__app__ runs in mode 0 (one process) and mode 4 (a local Dask cluster) to the same output."""

import asyncio
from pathlib import Path

import pandas as pd

from switchyard import AGI, AppEnv

APPS = Path(__file__).resolve().parents[2]


def test___app___mode_0_and_mode_4_give_the_same_output():
    app_env = AppEnv("__app__", apps_dir=APPS)
    assert asyncio.run(AGI.install(app_env, modes_enabled=4)).ok
    outputs = {}
    for mode in (0, 4):
        res = asyncio.run(AGI.run(app_env, mode=mode, workers={"127.0.0.1": 2}, parts=3, numbers=2000))
        assert res.status == "completed", res
        outputs[mode] = pd.read_parquet(res.output)
    assert len(outputs[0]) == 3 * 2
    pd.testing.assert_frame_equal(outputs[0], outputs[4])
