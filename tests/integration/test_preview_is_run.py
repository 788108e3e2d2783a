"""What CHECK DISTRIBUTE shows is what RUN executes, even when the cluster differs from the settings."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import cli, cli_json
from .lifecycle_helpers import store_of

ARGS = ("--arg", "tasks=7", "--arg", "samples_per_task=2000", "--arg", "chunks=1")


def test_a_warm_cluster_with_other_counts_is_planned_on_and_run_with_that_plan(run_home):
    apps, home = run_home
    settings = (apps / "montecarlo" / "app_settings.toml").read_text()
    assert '"127.0.0.1" = 2' in settings  # [cluster].workers says 2
    up = cli_json("cluster", "up", "montecarlo", "--workers", "127.0.0.1:3", "--scheduler", "127.0.0.1:0",
                  home=home, apps=apps)
    try:
        preview = cli_json("distrib", "montecarlo", *ARGS, home=home, apps=apps)
        assert preview["slots"] == ["127.0.0.1-0", "127.0.0.1-1", "127.0.0.1-2"]
        assert preview["workers"] == 3 and preview["workers_from"] == "warm cluster"
        assert preview["note"] and "3 workers of the warm cluster" in preview["note"]
        assert "2 of [cluster].workers" in preview["note"]
        plan = json.loads(Path(preview["path"]).read_text())
        planned = {p["name"]: s["id"] for s in plan["slots"] for p in s["partitions"]}
        assert set(planned.values()) == set(preview["slots"])  # 7 partitions spread over all 3

        text = cli("distrib", "montecarlo", *ARGS, home=home, apps=apps)
        assert text.returncode == 0 and "note: planned on the 3 workers of the warm cluster" in text.stdout

        run = cli_json("run", "montecarlo", "--mode", "4", *ARGS, home=home, apps=apps)
        assert run["status"] == "completed", run
        store = store_of(home)
        o = store.get(run["orchestration_id"])
        assert o.plan_fingerprint == preview["fingerprint"]
        assert o.request["workers"] == {"127.0.0.1": 3} and o.request["workers_from"] == "warm cluster"
        assert {b.name: b.planned_worker for b in store.batches(o.id)} == planned
        log = (Path(o.run_dir) / "run.log").read_text()
        assert "using the saved work plan" in log and "re-planned" not in log
    finally:
        cli("cluster", "down", "montecarlo", home=home, apps=apps)


def test_without_a_cluster_up_the_preview_plans_on_the_settings_and_says_nothing(run_home):
    apps, home = run_home
    preview = cli_json("distrib", "montecarlo", *ARGS, "--scheduler", "127.0.0.1:1", home=home, apps=apps)
    assert preview["slots"] == ["127.0.0.1-0", "127.0.0.1-1"]
    assert preview["workers_from"] == "settings" and preview["note"] is None


def test_a_run_request_given_as_one_object_runs_like_keywords(run_home):
    import asyncio

    from switchyard.agi import AGI, RunRequest
    from switchyard.app import AppEnv

    apps, home = run_home
    env = AppEnv("montecarlo", apps_dir=apps, workspace=home)
    res = asyncio.run(AGI.run(env, on_line=lambda line: None, request=RunRequest(
        mode=0, args={"tasks": 3, "samples_per_task": 1000, "chunks": 1}, max_attempts=2,
        origin={"by": "test"})))
    assert res.status == "completed" and res.batches == 3 and res.mode == 0
    o = store_of(home).get(res.orchestration_id)
    assert o.request["mode"] == 0 and o.request["args"]["tasks"] == 3 and o.request["max_attempts"] == 2
    assert o.request["origin"] == {"by": "test"} and o.attempts_limit == 2
