"""The Orchestrate page's sections and states in AppTest (no browser): real settings files, real
run store, real subprocesses for install; no mocks."""

from __future__ import annotations

import json
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tomlkit

from switchyard import ui_jobs
from switchyard.runs import bench, submit
from switchyard.actions import snippet_call
from switchyard.app import AppEnv
from switchyard.runs.store import RunStore
from switchyard.ui.common import file_mtime

from .conftest import open_page, texts

pytestmark = pytest.mark.timeout(120)
SECTIONS = ["System settings", "Install", "Cluster", "App args", "Distribute", "Run", "Load data", "Export",
            "Service mode (persistent workers)"]


def button(at, label):
    found = [b for b in at.button if b.label == label]
    assert found, f"no button {label!r} in {[b.label for b in at.button]}"
    return found[0]


def wait_job(app_env, kind, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = ui_jobs.job_state(app_env, kind)
        if state is not None and not state.is_running:
            return state
        time.sleep(0.1)
    raise AssertionError(f"{kind} job still running after {timeout} s")


def test_fresh_app_shows_every_section_with_snippets_and_run_locked(flight):
    at = open_page()
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader] == SECTIONS
    assert "mode 4 (\\_d\\_\\_): the partitions over 2 Dask workers on 1 host." in texts(at.info)
    run_snippet = next(c.value for c in at.code if "AGI.run(" in c.value)
    name, kwargs = snippet_call(run_snippet)
    assert name == "run" and kwargs["mode"] == 4 and kwargs["files"] == 8
    assert button(at, "RUN").disabled  # nothing installed yet
    assert "INSTALL it to enable RUN" in texts(at.caption)
    assert "No work plan yet" in texts(at.info)
    assert "LOAD DATA first" in texts(at.info)


def test_mode_hint_follows_the_toggles_and_save_keeps_comments(flight):
    at = open_page()
    v = f"flight-{file_mtime(flight.settings_path)}"
    at.toggle(key=f"set-pool-{v}").set_value(True).run()
    assert "mode 5 (\\_d\\_p)" in texts(at.info) and "pool of 2 processes" in texts(at.info)
    assert "unsaved changes: pool" in texts(at.caption)
    assert "pool = false" in flight.settings_path.read_text()  # nothing written before Save
    button(at, "Save settings").click().run()
    text = flight.settings_path.read_text()
    assert "pool = true" in text and "# mode bit 1: a worker runs" in text
    assert "Saved pool" in texts(at.success)
    v = f"flight-{file_mtime(flight.settings_path)}"
    assert at.toggle(key=f"set-pool-{v}").value is True  # the rerun shows the file


def test_a_bad_workers_table_is_refused_and_nothing_is_written(flight):
    at = open_page()
    before = flight.settings_path.read_text()
    key = f"set-workers-flight-{file_mtime(flight.settings_path)}"
    at.session_state[key] = {"edited_rows": {}, "added_rows": [{"host": "127.0.0.1", "count": 1}],
                             "deleted_rows": []}
    at.run()
    assert "host '127.0.0.1' is listed twice: give each host once" in texts(at.error)
    button(at, "Save settings").click().run()
    assert flight.settings_path.read_text() == before
    assert not at.exception


def test_a_bad_scheduler_address_is_refused(flight):
    at = open_page()
    before = flight.settings_path.read_text()
    at.text_input(key=f"set-scheduler-flight-{file_mtime(flight.settings_path)}").set_value("nowhere").run()
    button(at, "Save settings").click().run()
    assert "'nowhere' is not a scheduler address" in texts(at.error)
    assert flight.settings_path.read_text() == before


def test_invalid_settings_file_shows_the_key_and_the_fix_not_a_traceback(flight):
    text = flight.settings_path.read_text().replace("dask = true", 'dask = "yes"')
    flight.settings_path.write_text(text)
    at = open_page()
    assert not at.exception
    message = texts(at.error)
    assert "settings error" in message and "cluster.dask: 'yes' is not true/false" in message
    assert "Fix app_settings.toml" in message
    assert [s.value for s in at.subheader] == []


def test_failed_install_shows_the_error_and_next_step_and_keeps_run_locked(apps_home):
    apps, home = apps_home
    (apps / "flight" / "pyproject.toml").write_text("[project\nname = 'flight'\n")
    at = open_page()
    button(at, "INSTALL").click().run()
    state = wait_job(AppEnv("flight", apps_dir=apps), "install")
    assert state.status == "failed" and state.category == "cluster"
    at.run()
    message = texts(at.error)
    assert "cluster error" in message and "pyproject.toml: not valid TOML" in message
    assert "then INSTALL again" in message
    log = next(c.value for c in at.code if "=== " in c.value)
    assert "failed" in log and "Traceback" not in message
    assert button(at, "RUN").disabled
    saved = home / "snippets" / "flight" / "AGI_install.py"
    assert saved.is_file() and "AGI.install(" in saved.read_text()  # INSTALL ran that file


def test_args_form_validates_per_field_then_writes_only_changes(flight):
    at = open_page()
    form = f"args-form-flight-{file_mtime(flight.settings_path)}"
    at.number_input(key=f"{form}-files").set_value(0)
    button(at, "Save args").click().run()
    assert "files: 0: Input should be greater than or equal to 1" in texts(at.error)
    assert "files = 8 " in flight.settings_path.read_text()
    at.number_input(key=f"{form}-files").set_value(5)
    button(at, "Save args").click().run()
    assert "[args] saved: files" in texts(at.success)
    doc = tomlkit.parse(flight.settings_path.read_text())
    assert doc["args"]["files"] == 5 and "# telemetry CSV files" in flight.settings_path.read_text()


def test_the_apps_own_args_form_can_be_used_instead(flight):
    at = open_page()
    at.toggle(key="args-custom-flight").set_value(True).run()
    assert not at.exception
    at.slider[0].set_value(11)
    button(at, "Save args").click().run()
    assert tomlkit.parse(flight.settings_path.read_text())["args"]["files"] == 11


def test_distribute_edit_save_and_reset_the_plan(flight):
    at = open_page()
    button(at, "CHECK DISTRIBUTE").click().run()
    assert not at.exception and not at.error
    assert "Planned 8 partitions over 2 workers" in texts(at.success)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Partitions"] == "8" and metrics["Unsaved moves"] == "0"
    plan = submit.saved_plan(flight)
    name, source = "flight_0003", plan.assignment()["flight_0003"]
    target = next(s.id for s in plan.slots if s.id != source)
    at.multiselect(key="plan-move-names-flight").set_value([name])
    at.selectbox(key="plan-move-target-flight").set_value(target)
    button(at, "Move").click().run()
    assert {m.label: m.value for m in at.metric}["Unsaved moves"] == "1"
    assert submit.saved_plan(flight).assignment()[name] == source  # not saved yet
    button(at, "Save plan").click().run()
    saved = submit.saved_plan(flight)
    assert saved.edited and saved.assignment()[name] == target
    assert "Saved 1 move(s)" in texts(at.success)
    button(at, "Reset (re-plan)").click().run()
    assert not submit.saved_plan(flight).edited


def test_a_plan_for_other_args_says_run_will_replan(flight):
    at = open_page()
    button(at, "CHECK DISTRIBUTE").click().run()
    text = flight.settings_path.read_text().replace("files = 8 ", "files = 9 ")
    flight.settings_path.write_text(text)
    at.run()
    assert "made for other args or workers: RUN will re-plan" in texts(at.warning)


FAILING_APP = '''
from switchyard.app import App, Args, Partition


class BoomArgs(Args):
    n: int = 2
    fail_in: str = "work"


class Boom(App):
    Args = BoomArgs

    def partitions(self):
        if self.args.fail_in == "partitions":
            raise RuntimeError("cannot list partitions")
        return [Partition(name=f"p{i}", weight=1.0, items=(i,)) for i in range(self.args.n)]

    def work_item(self, item):
        raise ValueError(f"item {item} is bad data")

    def reduce(self, results, output_dir):
        raise AssertionError("never reached")
'''


def test_app_code_failure_in_distribute_shows_its_traceback(apps_home):
    from tests.conftest import make_tiny_app

    apps, _ = apps_home
    make_tiny_app(apps, "boom", init=FAILING_APP)
    settings = apps / "boom" / "app_settings.toml"
    settings.write_text('[args]\nn = 2\nfail_in = "partitions"\n\n[cluster]\ndask = false\n')
    at = open_page("boom")
    button(at, "CHECK DISTRIBUTE").click().run()
    assert not at.exception
    assert "app error" in texts(at.error) and "RuntimeError: cannot list partitions" in texts(at.error)
    assert any('raise RuntimeError("cannot list partitions")' in c.value for c in at.code)


def test_failed_run_shows_status_error_and_the_apps_traceback_in_run_logs(apps_home):
    from switchyard.cluster.env import install_local
    from tests.conftest import make_tiny_app

    apps, home = apps_home
    make_tiny_app(apps, "boom", init=FAILING_APP)
    (apps / "boom" / "app_settings.toml").write_text('[args]\nn = 1\n\n[cluster]\ndask = false\n')
    app_env = AppEnv("boom", apps_dir=apps)
    assert install_local(app_env, on_line=lambda s: None).ok
    at = open_page("boom")
    assert not button(at, "RUN").disabled
    button(at, "RUN").click().run()
    state = wait_job(app_env, "run", timeout=90)
    assert state.status == "succeeded"  # the call returned; the run itself failed
    at.run()
    orch = RunStore(home / "switchyard.db").list(app="boom")[0]
    assert orch.status.value == "failed"
    assert "run " + orch.id + " failed" in texts(at.error) and "item 0 is bad data" in texts(at.error)
    log = next(c.value for c in at.code if "driver:" in c.value)
    assert "ValueError: item 0 is bad data" in log and 'raise ValueError(f"item {item} is bad data")' in log


def test_a_reloaded_page_reattaches_to_a_running_orchestration_and_can_cancel_it(flight):
    store = RunStore(flight.home / "switchyard.db")
    run_dir = flight.home / "runs" / "r1"
    run_dir.mkdir(parents=True)
    oid = store.create_orchestration(kind="app", app="flight", mode=4, args={}, workers={"127.0.0.1": 2},
                                     scheduler=None, plan_fingerprint=None, run_dir=str(run_dir),
                                     batches=[{"name": f"p{i}"} for i in range(4)])
    store.command(oid, "start")
    (run_dir / "run.log").write_text("driver: orchestration started\nbatch 1/4 p0 completed on w0\n")
    at = open_page()  # a new session: as after a reload or in a second tab
    assert oid in texts(at.caption)
    assert any("batch 1/4 p0 completed" in c.value for c in at.code)
    assert button(at, "RUN").disabled
    assert at.get("progress")[0].proto.value == 0
    button(at, "Cancel").click().run()
    assert store.get(oid).status.value == "cancelling"


def completed_output(home, app: str) -> str:
    store = RunStore(home / "switchyard.db")
    out = home / "runs" / "done" / "output" / "segments.parquet"
    out.parent.mkdir(parents=True)
    frame = pd.DataFrame({"aircraft": ["A", "B", "C"], "latitude": [1.0, 2.0, 3.0],
                          "longitude": [4.0, 5.0, 6.0], "speed_kmh": [100.0, 200.0, 300.0]})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out)
    oid = store.create_orchestration(kind="app", app=app, mode=4, args={}, workers={}, scheduler=None,
                                     plan_fingerprint=None, run_dir=str(out.parent.parent),
                                     batches=[{"name": "p0"}])
    store.command(oid, "start")
    store.set_output(oid, str(out), 2.0)
    store.command(oid, "complete")
    return oid


def test_load_data_preview_survives_reruns_and_export_writes_the_chosen_columns(flight):
    oid = completed_output(flight.home, "flight")
    at = open_page()
    assert oid in texts(at.caption)  # the Run section shows the completed run
    assert "batches in 2.00 s. Output:" in texts(at.success)
    button(at, "LOAD DATA").click().run()
    assert {m.label: m.value for m in at.metric}["Rows"] == "3"
    at.run()  # an unrelated rerun keeps the preview
    assert {m.label: m.value for m in at.metric}["Rows"] == "3"
    key = f"export-columns-flight-{flight.home / 'runs/done/output/segments.parquet'}"
    button(at, "Select all").click().run()
    assert at.multiselect(key=key).value == ["aircraft", "latitude", "longitude", "speed_kmh"]
    at.multiselect(key=key).set_value(["speed_kmh", "aircraft"]).run()
    button(at, "EXPORT").click().run()
    out = flight.home / "export" / "flight" / "export.csv"
    assert out.read_text().splitlines()[0] == "speed_kmh,aircraft"
    assert str(out) in texts(at.success)


def test_load_data_without_a_run_says_run_first(flight):
    at = open_page()
    button(at, "LOAD DATA").click().run()
    assert "export error" in texts(at.error) and "has no completed run with an output yet" in texts(at.error)
    assert not at.exception


def test_benchmark_toggle_shows_its_snippet_and_the_results_with_the_fastest_mode(flight):
    path = bench.benchmark_path(flight)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"app": "flight", "args": {}, "workers": {"127.0.0.1": 2}, "created_at": 1e9,
                                "fastest": 4, "results": [
        {"mode": 0, "mode_string": "____", "status": "completed", "seconds": 9.5, "execution_seconds": 9.0},
        {"mode": 4, "mode_string": "_d__", "status": "completed", "seconds": 3.25, "execution_seconds": 2.0},
        {"mode": 8, "mode_string": "r___", "status": "skipped", "seconds": None, "reason": "no cudf"}]}))
    at = open_page()
    at.toggle(key="run-bench-flight").set_value(True).run()
    snippet = next(c.value for c in at.code if "AGI.benchmark(" in c.value)
    assert snippet_call(snippet) == ("benchmark", {"modes_enabled": 4, "scheduler": "127.0.0.1:8786",
                                                   "workers": {"127.0.0.1": 2}, "files": 8, "rows_per_file": 2000,
                                                   "aircraft": 4, "seed": 42, "chunk_rows": 50000})
    assert [b.label for b in at.button if b.key == "run-go-flight"] == ["RUN BENCHMARK"]
    assert "fastest is mode 4" in texts(at.markdown)
    table = at.dataframe[-1].value
    assert table["mode"].tolist() == [0, 4, 8] and table["status"].tolist()[-1] == "skipped"
    from tests.ui.test_widget_helpers import bars

    chart = next(m.value for m in at.markdown if 'aria-label="Seconds per mode' in m.value)
    drawn = {b["x"]: b for b in bars(chart)}  # the completed modes only, the fastest in orange
    assert list(drawn) == ["0 (____)", "4 (_d__)"] and drawn["4 (_d__)"]["fill"] == "#e07b39" != drawn["0 (____)"]["fill"]
    assert drawn["0 (____)"]["height"] / drawn["4 (_d__)"]["height"] == pytest.approx(9.5 / 3.25, rel=1e-3)


def test_cluster_section_starts_and_stops_a_warm_cluster(flight):
    from switchyard.cluster import warm

    at = open_page()
    assert "Cluster: down" in texts(at.info)
    button(at, "Start cluster").click()
    at.run()
    up = wait_job(flight, "cluster", timeout=90)
    assert up.status == "succeeded", up.error
    status = warm.status(flight)
    assert status["state"] == "up" and status["workers"] == 2
    at.run()
    assert "Cluster: up" in texts(at.success) and f"at `{status['address']}`" in texts(at.success)
    assert status["address"].startswith("tls://") and "Traffic: tls: mutual TLS, certificate expires" in texts(at.caption)
    button(at, "Stop cluster").click()
    at.run()
    down = wait_job(flight, "cluster", timeout=60)
    assert down.status == "succeeded", down.error
    assert warm.status(flight)["state"] == "down"
