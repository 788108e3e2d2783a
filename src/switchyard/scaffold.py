"""New apps: from the template (``switchyard new APP``) or as a clone of an app (``--from``).

The name becomes a package that batches import by that name on every worker, so it
must be an identifier, free in the apps folder, and not the name of a module the
interpreter can already import (``pandas``, ``json``: the app would shadow it, or it
the app). The app is built in a hidden folder beside its destination and renamed
into place, so a failure leaves nothing half-created.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import keyword
import os
import re
import shutil
import sys
import tempfile
import tokenize
from pathlib import Path

from switchyard.app import discover_apps
from switchyard.exceptions import AppNameError

TEMPLATE = Path(__file__).resolve().parent / "templates" / "app"
PLACEHOLDER_APP, PLACEHOLDER_CLASS = "__app__", "__Class__"
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.c", "build", "*.egg-info", ".venv", ".pytest_cache")


def class_name(name: str) -> str:
    """``my_app`` -> ``MyApp``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or name


def check_name(name: str, apps_dir: Path | str) -> str:
    """Return ``name`` if a new app may take it; raise AppNameError saying why not."""
    apps_dir = Path(apps_dir)
    if not name.isidentifier() or not name.isascii():
        raise AppNameError(name, "not a Python identifier",
                           "use lowercase letters, digits and _ and start with a letter, e.g. 'demo' or 'my_app'")
    if keyword.iskeyword(name) or name.startswith("_"):
        raise AppNameError(name, "a Python keyword or a private name", "pick another name")
    if (apps_dir / name).exists():
        raise AppNameError(name, f"taken: {apps_dir / name} exists", "pick another name or remove that folder")
    if name in sys.stdlib_module_names or name in sys.builtin_module_names or _importable(name):
        raise AppNameError(name, "an importable module of this Python has that name",
                           "batches import the app by its name: pick a name no package uses, e.g. "
                           f"'{name}_app'")
    return name


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return True  # something by that name is there, if broken


def _app_classes(init: Path) -> tuple[str | None, list[str]]:
    """(the App subclass, every class) defined at the top of ``init``."""
    try:
        tree = ast.parse(init.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None, []
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    main = next((c.name for c in classes if any(getattr(b, "id", getattr(b, "attr", "")) == "App"
                                                 for b in c.bases)), None)
    return main, [c.name for c in classes]


def _rename_names(text: str, names: dict[str, str]) -> str:
    """Rename the identifiers in ``names`` in Python source; strings and comments are left alone
    (an app's data, column names and messages stay what they were)."""
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    out, last = [], 0
    for tok in tokens:
        if tok.type == tokenize.NAME and tok.string in names:
            start = offsets[tok.start[0] - 1] + tok.start[1]
            out.append(text[last:start])
            out.append(names[tok.string])
            last = start + len(tok.string)
    out.append(text[last:])
    return "".join(out)


def _rewrite(folder: Path, names: dict[str, str], package: tuple[str, str]) -> None:
    """Python files: identifiers renamed; pyproject.toml and README.md: the package name."""
    old, new = package
    word = re.compile(rf"(?<![\w-]){re.escape(old)}(?![\w])")
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix in (".py", ".pyx"):
            text = path.read_text(encoding="utf-8")
            try:
                updated = _rename_names(text, names)
            except (tokenize.TokenError, SyntaxError):
                continue
        elif path.name in ("pyproject.toml", "README.md") or path.suffix == ".tmpl":
            text = path.read_text(encoding="utf-8")
            updated = word.sub(new, text)
        else:
            continue
        if updated != text:
            path.write_text(updated, encoding="utf-8")


def create_app(name: str, apps_dir: Path | str, source: str | None = None) -> Path:
    """Create app ``name`` in ``apps_dir`` from the template, or as a clone of app ``source``.

    A clone gets the source's files with its package and classes renamed (``MonteCarlo`` ->
    ``<Name>``, ``MonteCarloArgs`` -> ``<Name>Args``) and its settings kept; it refers to
    nothing in the source's folder, so it keeps working when that folder goes.

    Returns:
        The new app's folder.

    Raises:
        AppNameError: the name cannot be used, or ``source`` is not an app of ``apps_dir``.
    """
    apps_dir = Path(apps_dir).expanduser().resolve()
    check_name(name, apps_dir)
    if source is not None:
        known = discover_apps(apps_dir)
        if source not in known:
            raise AppNameError(source, f"no such app in {apps_dir} to clone",
                               f"choose one of {', '.join(known) or '(none)'}")
    apps_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{name}-new-", dir=apps_dir))
    try:
        staged = work / name
        new_class = class_name(name)
        if source is None:
            shutil.copytree(TEMPLATE, staged, ignore=SKIP)
            (staged / PLACEHOLDER_APP).rename(staged / name)
            (staged / "tests" / f"test_{PLACEHOLDER_APP}.py").rename(staged / "tests" / f"test_{name}.py")
            for path in staged.rglob("*"):
                if path.is_file():
                    text = path.read_text(encoding="utf-8")
                    path.write_text(text.replace(PLACEHOLDER_CLASS, new_class).replace(PLACEHOLDER_APP, name),
                                    encoding="utf-8")
        else:
            shutil.copytree(apps_dir / source, staged, ignore=SKIP)
            (staged / source).rename(staged / name)
            main, classes = _app_classes(staged / name / "__init__.py")
            names = {source: name}
            if main:  # MonteCarlo -> Demo, MonteCarloArgs -> DemoArgs
                names.update({c: new_class + c[len(main):] for c in classes if c.startswith(main)})
            _rewrite(staged, names, (source, name))
        os.rename(staged, apps_dir / name)  # atomic: the app appears whole or not at all
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return apps_dir / name
