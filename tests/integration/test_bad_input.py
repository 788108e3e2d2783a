"""Bad input: one clear line on stderr, exit status 2, and no file changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from .conftest import cli, copy_apps


def snapshot(*roots: Path) -> dict[str, str]:
    out = {}
    for root in roots:
        if root.exists():
            for p in sorted(root.rglob("*")):
                # (bytecode caches are Python's, not the CLI's: they appear wherever an import
                # may write them, i.e. unless PYTHONDONTWRITEBYTECODE is set)
                if p.is_file() and "__pycache__" not in p.parts:
                    out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def sandbox(tmp_path):
    apps = copy_apps(tmp_path / "apps")
    home = tmp_path / "home"
    return apps, home


CASES = {
    "unknown app": (["run", "nope"], "unknown app 'nope'"),
    "bad workers": (["run", "flight", "--workers", "127.0.0.1"], "host:count"),
    "bad worker count": (["run", "flight", "--workers", "127.0.0.1:0"], ">= 1"),
    "wrong arg type": (["run", "flight", "--arg", "files=many"], "arg 'files'"),
    "unknown arg": (["run", "flight", "--arg", "flies=3"], "arg 'flies'"),
    "unknown mode": (["run", "flight", "--mode", "19"], "mode"),
    "bad mode string": (["run", "flight", "--mode", "xyz"], "'xyz'"),
    "bad scheduler": (["run", "flight", "--scheduler", "nowhere"], "scheduler"),
    "rapids without cudf": (["run", "flight", "--mode", "12"], "cudf"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_cli_input(sandbox, case):
    apps, home = sandbox
    argv, expected = CASES[case]
    before = snapshot(apps, home)
    proc = cli(*argv, home=home, apps=apps, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("switchyard: error:") and expected in lines[0], lines[0]
    assert snapshot(apps, home) == before


def test_malformed_settings(sandbox):
    apps, home = sandbox
    settings = apps / "flight" / "app_settings.toml"
    settings.write_text(settings.read_text().replace("\n[cluster]\n", "\n[cluster\n", 1))
    before = snapshot(apps, home)
    proc = cli("run", "flight", home=home, apps=apps, timeout=60)
    assert proc.returncode == 2
    line = proc.stderr.strip()
    assert "\n" not in line and str(settings) in line and "line" in line
    assert snapshot(apps, home) == before


def test_bad_workers_in_settings_names_the_key(sandbox):
    apps, home = sandbox
    settings = apps / "flight" / "app_settings.toml"
    text = settings.read_text()
    settings.write_text(text.replace('"127.0.0.1" = 2', '"127.0.0.1" = -1'))
    proc = cli("distrib", "flight", home=home, apps=apps, timeout=60)
    assert proc.returncode == 2
    assert "cluster.workers" in proc.stderr and str(settings) in proc.stderr
