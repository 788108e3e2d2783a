"""Run metrics: the JSON document, `switchyard metrics APP --json`, and the Prometheus text format."""

from __future__ import annotations

import json
import re

import pytest

from switchyard import cli
from switchyard.analysis.metrics import prometheus_text, run_metrics
from switchyard.runs.store import RunStore

from .test_analysis_runs import T0, TIMES, two_worker_run

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? '
                    r'(-?[0-9.e+-]+|\+Inf|-Inf|NaN)$')


def parse(text: str) -> dict[str, list[tuple[dict, float]]]:
    """A strict reading of the exposition format: HELP/TYPE before samples, one sample per line."""
    assert text.endswith("\n")
    families, current, samples = {}, None, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            current = line.split()[2]
            continue
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert name == current and kind in ("gauge", "counter", "histogram")
            families[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name = m.group(1)
        assert name == current or name.startswith(current + "_"), f"{name} outside its family {current}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples.setdefault(name, []).append((labels, float(m.group(3))))
    return samples


@pytest.fixture
def store(workspace):
    with RunStore(workspace / "switchyard.db") as s:
        yield s


def test_run_metrics_has_status_mode_workers_seconds_and_batch_timings(store):
    oid = two_worker_run(store)
    doc = run_metrics(store, app="flight")
    assert [r["id"] for r in doc["runs"]] == [oid]
    run = doc["runs"][0]
    assert (run["status"], run["mode"], run["mode_string"], run["worker_count"]) == ("completed", 4, "_d__", 2)
    assert run["seconds"] == 7.5 and run["batch_counts"]["completed"] == 5
    assert run["batch_seconds"]["max"] == pytest.approx(3.9)
    first = run["batches"][0]
    assert (first["worker"], first["started_at"], first["ended_at"]) == ("127.0.0.1-0", T0 + 1.0, T0 + 3.5)
    assert run_metrics(store, app="other") == {"runs": []}
    assert "batches" not in run_metrics(store, with_batches=False)["runs"][0]


def test_cli_metrics_json_prints_the_same_document(store, capsys):
    oid = two_worker_run(store)
    assert cli.main(["metrics", "flight", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == json.loads(json.dumps(run_metrics(store, app="flight")))
    assert out["runs"][0]["id"] == oid
    assert cli.main(["metrics", "flight"]) == 0
    assert f"{oid}  completed" in capsys.readouterr().out


def test_cli_metrics_refuses_an_unknown_app_in_one_line(store, capsys):
    assert cli.main(["metrics", "no_such_app", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("switchyard: error: unknown app 'no_such_app'") and err.count("\n") == 1


def test_prometheus_text_counts_runs_batches_durations_and_workers(store, capsys):
    two_worker_run(store)
    two_worker_run(store, now=T0 + 50)
    running = store.create_orchestration(kind="app", app='we"ird', mode=0, args={}, workers={"h": 3},
                                         scheduler=None, plan_fingerprint=None, run_dir=None,
                                         batches=[{"name": "b"}], now=T0 + 60)
    store.command(running, "start", now=T0 + 61)
    text = prometheus_text(store, now=T0 + 100)
    samples = parse(text)
    runs = {(l["app"], l["status"]): v for l, v in samples["switchyard_orchestrations"]}
    assert runs[("flight", "completed")] == 2 and runs[("flight", "failed")] == 0
    assert runs[('we\\"ird', "running")] == 1  # label values are escaped
    batches = {(l["app"], l["status"]): v for l, v in samples["switchyard_batches"]}
    assert batches[("flight", "completed")] == 10 and batches[('we\\"ird', "pending")] == 1
    buckets = [(l["le"], v) for l, v in samples["switchyard_batch_duration_seconds_bucket"] if l["app"] == "flight"]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and buckets[-1] == ("+Inf", 10)
    durations = sorted(e - s for _, s, e in TIMES) * 2
    assert dict(buckets)["1.0"] == sum(1 for d in durations if d <= 1.0) == 6
    total = [v for l, v in samples["switchyard_batch_duration_seconds_sum"] if l["app"] == "flight"][0]
    assert total == pytest.approx(sum(durations))
    workers = {l["app"]: v for l, v in samples["switchyard_active_workers"]}
    assert workers == {"flight": 0, 'we\\"ird': 3}
    last = samples["switchyard_last_run_seconds"]
    assert len(last) == 1 and last[0][0]["app"] == "flight" and last[0][1] == 7.5
    assert cli.main(["metrics", "flight", "--prometheus"]) == 0
    assert parse(capsys.readouterr().out)["switchyard_metrics_runs_considered"][0][1] == 3
