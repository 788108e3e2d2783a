"""The run request: one resolved record, kept in the store and read back by the driver."""

from __future__ import annotations

import dataclasses
import json

import pytest

from switchyard.app import RESERVED_ARG_NAMES
from switchyard.exceptions import SwitchyardError
from switchyard.modes import Mode
from switchyard.runs.request import SCHEMA_VERSION, RunRequest


def test_a_request_survives_json_and_back_unchanged():
    req = RunRequest(app="flight", apps_dir="/apps", mode=5, scheduler="127.0.0.1:8786",
                     workers={"127.0.0.1": 2, "::1": 1}, args={"files": 3, "tags": ["a"]}, cluster="local",
                     workers_from="warm cluster", note="planned on 3", max_attempts=4, max_inflight=9,
                     origin={"by": "schedule", "schedule": "s-1"}, options={"costs": "measured"})
    doc = json.loads(json.dumps(req.to_dict()))
    assert doc["schema_version"] == SCHEMA_VERSION
    assert RunRequest.from_dict(doc) == req
    assert RunRequest.from_dict(doc).modes == Mode.POOL | Mode.DASK


def test_a_request_of_another_schema_version_is_refused_with_the_fix():
    doc = RunRequest(app="a", mode=0).to_dict()
    doc["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(SwitchyardError, match=r"schema version 2 is not 1: .*start it again"):
        RunRequest.from_dict(doc)


def test_a_request_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        RunRequest(app="a").mode = 4  # type: ignore[misc]


def test_every_engine_option_is_reserved_against_app_arg_names():
    engine = {f.name for f in dataclasses.fields(RunRequest)} - {"args", "app"}  # the app is app_env
    assert engine - RESERVED_ARG_NAMES == set()


def test_mode_says_what_it_uses_by_name():
    m = Mode(5)
    assert (m.uses_pool, m.uses_cython, m.uses_dask, m.uses_rapids) == (True, False, True, False)
    assert not Mode(0).uses_dask and Mode(8).uses_rapids and Mode(2).uses_cython
