"""docs/apps.md: its Python code blocks, run in order in one namespace, work as written."""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "apps.md"


def test_the_walk_through_runs_in_order(capsys):
    blocks = re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 4
    namespace: dict = {}
    try:
        for i, block in enumerate(blocks):
            exec(compile(block, f"{DOC}:block{i + 1}", "exec"), namespace)
    finally:
        sys.modules.pop("demo", None)
        if namespace.get("app_dir"):
            sys.path[:] = [p for p in sys.path if p != str(namespace["app_dir"])]
    out = capsys.readouterr().out
    assert "demo/__init__.py" in out and "tests/test_demo.py" in out
    assert "['part-0000', 'part-0001', 'part-0002']" in out
    assert namespace["changed"]["mean_sq"].between(0.4, 0.7).all()
