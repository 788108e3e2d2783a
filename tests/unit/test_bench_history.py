"""benchmark.json keeps one entry per benchmark run; a file in the earlier format still loads."""

from __future__ import annotations

import json

from switchyard.runs.bench import HISTORY_KEEP, history_rows, load_benchmark, record_benchmark


def doc(at: float, args: dict, seconds: dict[int, float]) -> dict:
    return {"app": "flight", "args": args, "workers": {"127.0.0.1": 2}, "created_at": at, "fastest": min(seconds),
            "results": [{"mode": m, "mode_string": f"m{m}", "status": "completed", "seconds": s,
                         "devices": {"CPU (x)": 4}} for m, s in seconds.items()]
            + [{"mode": 8, "mode_string": "r___", "status": "skipped", "seconds": None, "reason": "no GPU"}]}


def test_history_survives_two_runs_with_different_args_and_the_old_format_loads(tmp_path):
    path = tmp_path / "benchmark.json"
    assert load_benchmark(path) is None
    path.write_text(json.dumps(doc(100.0, {"files": 4}, {0: 3.0, 4: 2.0})))  # today's format: no history
    old = load_benchmark(path)
    assert len(old["history"]) == 1 and old["history"][0]["args"] == {"files": 4}
    record_benchmark(path, doc(200.0, {"files": 8}, {0: 6.0, 4: 3.5}))
    record_benchmark(path, doc(300.0, {"files": 16}, {0: 12.0, 4: 5.0}))
    now = load_benchmark(path)
    assert [h["args"]["files"] for h in now["history"]] == [4, 8, 16]
    assert now["args"] == {"files": 16} and now["fastest"] == 0  # the top level is still the latest run
    rows = history_rows(now)
    assert len(rows) == 6  # completed modes only
    assert [(r["created_at"], r["mode"], r["seconds"]) for r in rows if r["mode"] == 4] == [
        (100.0, 4, 2.0), (200.0, 4, 3.5), (300.0, 4, 5.0)]
    assert rows[0]["args"] == "files=4" and rows[0]["workers"] == 2 and rows[0]["device"] == "CPU (x)"
    for i in range(HISTORY_KEEP + 5):
        record_benchmark(path, doc(400.0 + i, {"files": 1}, {0: 1.0}))
    assert len(load_benchmark(path)["history"]) == HISTORY_KEEP


def test_the_run_section_charts_the_history(tmp_path):
    from streamlit.testing.v1 import AppTest

    path = tmp_path / "benchmark.json"
    record_benchmark(path, doc(200.0, {"files": 8}, {0: 6.0, 4: 3.5}))
    record_benchmark(path, doc(300.0, {"files": 16}, {0: 12.0, 4: 5.0}))

    def page(path: str) -> None:
        from pathlib import Path

        from switchyard.ui.analysis import benchmark_history

        benchmark_history(Path(path), key="bench-history")

    at = AppTest.from_function(page, args=(str(path),), default_timeout=30).run()
    assert not at.exception
    assert "Benchmark history** (2 runs)" in at.markdown[0].value
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sorted(t["name"] for t in chart["data"]) == ["mode 0 (m0)", "mode 4 (m4)"]
    assert [len(t["y"]) for t in chart["data"]] == [2, 2]
