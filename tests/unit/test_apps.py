"""The shipped example apps (flight, montecarlo) run end to end, the same in every mode."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import tomlkit

from switchyard.app import AppEnv, Partition, data_dir, load_app, validate_args
from switchyard.exceptions import ArgsError

APPS_DIR = Path(__file__).resolve().parents[2] / "apps"
FLIGHT_ARGS = {"files": 5, "rows_per_file": 700, "aircraft": 2, "seed": 3, "chunk_rows": 200}
MONTECARLO_ARGS = {"tasks": 3, "samples_per_task": 20_000, "chunks": 3, "seed": 11}


def app_class(name: str, tmp_path: Path):
    return load_app(AppEnv(name, apps_dir=str(APPS_DIR), workspace=str(tmp_path)))


def make_app(name: str, tmp_path: Path, **args):
    cls = app_class(name, tmp_path)
    env = AppEnv(name, apps_dir=str(APPS_DIR), workspace=str(tmp_path))
    return cls(validate_args(cls, args), data_dir(env))


def run(app, output_dir: Path, map_items=map) -> tuple[list[Partition], Path]:
    """The runner's sequence: manager prepare/partitions, worker start/work, manager reduce."""
    app.prepare()
    parts = app.partitions()
    worker_app = type(app)(app.args, app.data_dir)
    worker_app.start()
    results = [worker_app.work(p, map_items) for p in parts]
    worker_app.stop()
    return parts, app.reduce(results, output_dir)


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    # The children must import the apps' packages: load both apps first (that
    # puts their folders on sys.path), then spawn, which hands each child this
    # process's sys.path. (A forkserver would keep the sys.path it had when
    # another test first started it.)
    for name in ("flight", "montecarlo"):
        app_class(name, tmp_path_factory.mktemp(name))
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=spawn) as executor:
        yield executor


# flight ---------------------------------------------------------------------------------------

def test_flight_pool_and_chunking_give_identical_outputs(tmp_path, pool):
    app = make_app("flight", tmp_path, **FLIGHT_ARGS)
    parts, seq = run(app, tmp_path / "seq")
    assert any(len(p.items) > 1 for p in parts)  # the chunk borders are exercised
    _, pooled = run(app, tmp_path / "pool", pool.map)
    whole = make_app("flight", tmp_path, **{**FLIGHT_ARGS, "chunk_rows": 100_000})
    whole_parts, whole_out = run(whole, tmp_path / "whole")
    assert all(len(p.items) == 1 for p in whole_parts)

    assert seq.name == "segments.parquet"
    for name in ("segments.parquet", "flights.parquet"):
        reference = (seq.parent / name).read_bytes()
        assert (pooled.parent / name).read_bytes() == reference, name
        assert (whole_out.parent / name).read_bytes() == reference, name

    # work_item over the items, then combine, is the same as work.
    p = parts[0]
    assert app.combine(p, [app.work_item(i) for i in p.items]).equals(app.work(p))


def test_flight_outputs_are_plausible(tmp_path):
    app = make_app("flight", tmp_path, **FLIGHT_ARGS)
    parts, out = run(app, tmp_path / "out")
    points = pd.read_parquet(out)
    flights = pd.read_parquet(out.parent / "flights.parquet")
    assert list(points.columns) == ["aircraft", "flight_id", "timestamp", "latitude", "longitude",
                                    "altitude_m", "segment_km", "speed_kmh"]
    assert list(flights.columns) == [
        "aircraft", "flight_id", "points", "distance_km", "duration_s", "mean_speed_kmh",
        "max_speed_kmh", "start_latitude", "start_longitude", "end_latitude", "end_longitude",
    ]
    rows = sum(pd.read_csv(app.file_path(i)).shape[0] for i in range(FLIGHT_ARGS["files"]))
    assert len(points) == rows == flights["points"].sum()
    # Exactly one point per flight (its first) has no incoming segment.
    assert points["segment_km"].isna().sum() == len(flights) == points["flight_id"].nunique()
    # 200-260 m/s, up to the rounding of the stored coordinates.
    assert points["speed_kmh"].dropna().between(700, 960).all()
    assert points["latitude"].abs().max() <= 80 and points["longitude"].abs().max() <= 180
    assert str(points["timestamp"].dtype).startswith("datetime64")
    assert set(points["aircraft"]) == {"AC0001", "AC0002"}
    per_flight = points.groupby("flight_id", sort=False)["segment_km"].sum()
    assert np.allclose(per_flight.to_numpy(), flights["distance_km"].to_numpy())
    assert (flights["mean_speed_kmh"].between(700, 960)).all()


def test_flight_partitions_follow_the_files(tmp_path):
    app = make_app("flight", tmp_path, **FLIGHT_ARGS)
    app.prepare()
    parts = app.partitions()
    assert [p.name for p in parts] == [f"flight_{i:04d}" for i in range(FLIGHT_ARGS["files"])]
    sizes = [app.file_path(i).stat().st_size for i in range(FLIGHT_ARGS["files"])]
    assert [p.weight for p in parts] == sizes
    assert len(set(sizes)) == len(sizes)  # different sizes: plans have something to balance
    for i, p in enumerate(parts):
        rows = len(pd.read_csv(app.file_path(i)))
        ranges = [(start, stop) for _, start, stop in p.items]
        assert ranges[0][0] == 0 and ranges[-1][1] == rows
        assert all(b[0] == a[1] - 1 for a, b in zip(ranges, ranges[1:]))  # one row of overlap
        assert Partition.from_dict(json.loads(json.dumps(p.to_dict()))).items  # JSON-able plan


def test_flight_worker_regenerates_identical_missing_input(tmp_path):
    app = make_app("flight", tmp_path, **FLIGHT_ARGS)
    app.prepare()
    target = app.file_path(2)
    original = target.read_bytes()
    first_mtime = app.file_path(0).stat().st_mtime_ns
    app.prepare()  # idempotent: files of the right size are kept
    assert app.file_path(0).stat().st_mtime_ns == first_mtime

    parts = app.partitions()
    expected = app.work(parts[2])
    target.unlink()
    worker_app = type(app)(app.args, app.data_dir)  # a worker that does not share the files
    worker_app.start()
    assert worker_app.work(parts[2]).equals(expected)
    assert target.read_bytes() == original

    target.write_bytes(original[: len(original) // 2])  # a torn copy is replaced too
    app.prepare()
    assert target.read_bytes() == original


def test_flight_datasets_differ_by_args(tmp_path):
    a = make_app("flight", tmp_path, **FLIGHT_ARGS)
    b = make_app("flight", tmp_path, **{**FLIGHT_ARGS, "seed": 4})
    assert a.dataset != b.dataset
    a.prepare()
    b.prepare()
    assert a.file_path(0).read_bytes() != b.file_path(0).read_bytes()


def test_haversine_known_distances(tmp_path):
    app_class("flight", tmp_path)
    from flight.worker import EARTH_RADIUS_KM, haversine_km

    paris, london = (48.8566, 2.3522), (51.5074, -0.1278)
    assert haversine_km(*paris, *london) == pytest.approx(343.56, abs=0.05)
    assert haversine_km(*london, *paris) == pytest.approx(haversine_km(*paris, *london))
    assert haversine_km(10.0, 20.0, 10.0, 20.0) == 0.0
    assert haversine_km(0.0, 0.0, 0.0, 180.0) == pytest.approx(np.pi * EARTH_RADIUS_KM)
    # Across the antimeridian: short, not around the world.
    assert haversine_km(0.0, 179.5, 0.0, -179.5) == pytest.approx(111.19, abs=0.01)


# montecarlo -----------------------------------------------------------------------------------

def test_montecarlo_pool_equals_in_process(tmp_path, pool):
    app = make_app("montecarlo", tmp_path, **MONTECARLO_ARGS)
    parts, seq = run(app, tmp_path / "seq")
    _, pooled = run(app, tmp_path / "pool", pool.map)
    assert [p.name for p in parts] == ["task-0000", "task-0001", "task-0002"]
    assert [p.weight for p in parts] == [20_000.0] * 3
    assert [len(p.items) for p in parts] == [3, 3, 3]
    assert sum(n for _, _, n, _ in parts[0].items) == 20_000
    assert seq.name == "result.parquet"
    assert pooled.read_bytes() == seq.read_bytes()
    summary_bytes = (seq.parent / "summary.json").read_bytes()
    assert (pooled.parent / "summary.json").read_bytes() == summary_bytes

    result = pd.read_parquet(seq)
    assert list(result.columns[:4]) == ["task", "samples", "inside", "estimate"]
    assert result["samples"].tolist() == [20_000] * 3
    assert len(set(result["inside"])) == 3  # each task has its own random stream
    summary = json.loads((seq.parent / "summary.json").read_text())
    assert summary["samples"] == 60_000
    assert summary["estimate"] == pytest.approx(np.pi, abs=0.03)
    assert summary["integral_estimate"] == pytest.approx(np.pi, abs=0.01)


def test_montecarlo_result_does_not_depend_on_chunking_order(tmp_path):
    app = make_app("montecarlo", tmp_path, **MONTECARLO_ARGS)
    part = app.partitions()[1]
    forward = app.work(part)
    backward = app.combine(part, [app.work_item(i) for i in reversed(part.items)])
    assert backward == forward
    other_seed = make_app("montecarlo", tmp_path, **{**MONTECARLO_ARGS, "seed": 12})
    assert other_seed.work(other_seed.partitions()[1]) != forward


def test_montecarlo_more_chunks_than_samples(tmp_path):
    app = make_app("montecarlo", tmp_path, tasks=1, samples_per_task=2, chunks=5)
    (part,) = app.partitions()
    assert [n for _, _, n, _ in part.items] == [1, 1]
    assert app.work(part)["samples"] == 2


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
def test_montecarlo_cython_build_gives_identical_results(tmp_path):
    app_class("montecarlo", tmp_path)
    from montecarlo import worker as plain

    build = tmp_path / "build"
    build.mkdir()
    shutil.copy(Path(plain.__file__), build / "worker.py")
    subprocess.run([sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-3", "worker.py"],
                   cwd=build, check=True, capture_output=True)
    (so_path,) = build.glob("worker*.so")
    spec = importlib.util.spec_from_file_location("worker", so_path)
    compiled = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compiled)
    assert not compiled.__file__.endswith(".py")
    for item in [(0, 0, 5_000, 7), (3, 2, 1_234, 0), (1, 9, 777, 2**63 - 1)]:
        assert compiled.run_chunk(item) == plain.run_chunk(item)


# args and settings ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, raw, field", [
    ("flight", {"files": "many"}, "files"),
    ("flight", {"rows_per_file": 1}, "rows_per_file"),
    ("flight", {"chunk_rows": 1.5}, "chunk_rows"),
    ("flight", {"aircraft": 0}, "aircraft"),
    ("flight", {"speed": 3}, "speed"),
    ("montecarlo", {"tasks": 0}, "tasks"),
    ("montecarlo", {"samples_per_task": "lots"}, "samples_per_task"),
    ("montecarlo", {"chunks": -1}, "chunks"),
])
def test_bad_args_name_the_field(tmp_path, name, raw, field):
    cls = app_class(name, tmp_path)
    with pytest.raises(ArgsError) as info:
        validate_args(cls, raw)
    assert info.value.field == field
    assert f"'{field}'" in str(info.value) and name in str(info.value)


@pytest.mark.parametrize("name", ["flight", "montecarlo"])
def test_settings_and_project_files(tmp_path, name):
    cls = app_class(name, tmp_path)
    text = (APPS_DIR / name / "app_settings.toml").read_text()
    doc = tomlkit.parse(text)
    assert tomlkit.dumps(doc) == text  # comments and layout survive a round trip
    doc["args"]["seed"] = 5
    assert "# same seed" in tomlkit.dumps(doc)
    args = validate_args(cls, doc.unwrap()["args"])
    assert args.model_dump(exclude={"seed"}) == cls.Args().model_dump(exclude={"seed"})
    cluster = tomllib.loads(text)["cluster"]
    modes = (cluster["pool"], cluster["cython"], cluster["dask"], cluster["rapids"])
    assert modes == (False, False, True, False)
    assert cluster["workers"] == {"127.0.0.1": 2} and cluster["scheduler"] == "127.0.0.1:8786"
    assert cluster["service_health"] == {
        "allow_idle": False, "max_unhealthy": 0, "max_restart_rate": 0.25,
    }
    project = tomllib.loads((APPS_DIR / name / "pyproject.toml").read_text())["project"]
    assert project["name"] == f"{name}-app" and project["dependencies"]
    assert cls.compiled_modules == ("worker",)
    assert all(f.description for f in cls.Args.model_fields.values())


def test_flight_segments_stream_in_row_groups(tmp_path, monkeypatch):
    app = make_app("flight", tmp_path, **FLIGHT_ARGS)
    _, whole = run(app, tmp_path / "whole")
    flight_module = sys.modules[type(app).__module__]
    monkeypatch.setattr(flight_module, "ROW_GROUP_ROWS", 1000)  # the files have 210..1190 rows
    _, grouped = run(app, tmp_path / "grouped")
    groups = pq.ParquetFile(grouped).num_row_groups
    assert 1 < groups < FLIGHT_ARGS["files"]
    assert pd.read_parquet(grouped).equals(pd.read_parquet(whole))


def test_flight_inputs_give_the_same_points_as_the_generated_files(tmp_path):
    generated = make_app("flight", tmp_path, **FLIGHT_ARGS)
    generated.prepare()
    inbox = generated.data_dir / "inbox"
    inbox.mkdir(parents=True)
    for i in (1, 3):  # an operator drops two of the generated files into the inbox
        shutil.copy(generated.file_path(i), inbox / f"day{i}.csv")
    given = make_app("flight", tmp_path, **FLIGHT_ARGS, inputs="inbox/day1.csv, inbox/day3.csv")
    assert given.args.inputs == ["inbox/day1.csv", "inbox/day3.csv"]  # comma text decoded
    parts, out = run(given, tmp_path / "out-inputs")
    assert [p.name for p in parts] == ["day1", "day3"]
    assert [p.weight for p in parts] == [float(generated.file_path(i).stat().st_size) for i in (1, 3)]
    want = pd.concat([generated.work(p) for p in generated.partitions() if p.name in ("flight_0001", "flight_0003")],
                     ignore_index=True)
    got = pq.read_table(out).to_pandas()
    assert len(got) == len(want) and np.allclose(got["segment_km"].to_numpy(), want["segment_km"].to_numpy(),
                                                 equal_nan=True)


def test_flight_refuses_an_input_of_another_shape_naming_the_file(tmp_path):
    app = make_app("flight", tmp_path, **FLIGHT_ARGS, inputs=["inbox/notes.csv"])
    (app.data_dir / "inbox").mkdir(parents=True)
    (app.data_dir / "inbox" / "notes.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ArgsError, match=r"arg 'inputs': .*notes.csv: its first line is not the header"):
        app.prepare()
    json_list = validate_args(type(app), {"inputs": '["a.csv", "b.csv"]'})
    assert json_list.inputs == ["a.csv", "b.csv"]
