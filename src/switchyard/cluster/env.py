"""Worker environments: one uv virtualenv per app under ``<workspace>/envs/<app>/``.

An environment holds the engine packages pinned to the versions of the running
interpreter (so the driver's Dask client and the workers speak the same
protocol) plus the app's own ``[project].dependencies``. Switchyard and the app
are made importable through ``.pth`` files, without building wheels. With the
cython bit, the app package is copied to ``envs/<app>/cython/<app>/`` and the
modules named in ``App.compiled_modules`` are compiled in place there; the copy
is only on ``PYTHONPATH`` in cython mode (see :func:`worker_environ`).

Errors: a build step that fails (uv, Cython, no C compiler) raises
:class:`InstallError`. A readiness check that fails (the app does not load in
the environment) returns ``InstallResult(ok=False, error=...)``, or raises
:class:`InstallError` when ``install_local(..., check=True)``.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import sys
import sysconfig
import time
import tomllib
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import switchyard
from switchyard import workspace
from switchyard.app import AppEnv
from switchyard.exceptions import InstallError
from switchyard.logs import LineSink, last_lines, stream_process

#: What every worker needs besides the app's own dependencies (setuptools: Cython's build step).
ENGINE_PACKAGES = (
    "distributed", "dask", "pandas", "numpy", "pyarrow", "pydantic", "tomlkit",
    "cloudpickle", "cython", "setuptools",
)
STAMP_SCHEMA = 1
LOCK_NAME = ".switchyard-install.lock"
_READY_MARK = "SWITCHYARD-READY "
_ERROR_MARK = "SWITCHYARD-ERROR "

# Runs inside the environment: load the app as a worker would and report what was imported.
_READINESS_SCRIPT = r"""
import importlib, json, sys, traceback
app, apps_dir, home, want_files = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
try:
    import switchyard
    from switchyard.app import AppEnv, load_app
    cls = load_app(AppEnv(app, apps_dir, home))
    info = {"python": sys.executable, "switchyard": switchyard.__file__,
            "app_class": cls.__module__ + "." + cls.__qualname__,
            "compiled_modules": list(cls.compiled_modules), "files": {}}
    if want_files:
        for name in cls.compiled_modules:
            info["files"][name] = importlib.import_module(app + "." + name).__file__
except BaseException as e:
    traceback.print_exc()
    print("SWITCHYARD-ERROR " + (type(e).__name__ + ": " + str(e)).replace("\n", " "), flush=True)
    sys.exit(1)
print("SWITCHYARD-READY " + json.dumps(info), flush=True)
"""


@dataclass
class InstallResult:
    """What ``install_local`` did.

    Attributes:
        ok: The environment passed its readiness check.
        app: The app's name.
        env_dir: The environment folder.
        python: The environment's python.
        skipped: Nothing had changed: only the readiness check ran.
        seconds: Wall time of the whole install.
        log_path: ``env_dir/install.log`` (every output line of every install).
        error: Why the readiness check failed (None when ok).
        cython: Whether the compiled build was made and checked.
    """

    ok: bool
    app: str
    env_dir: Path
    python: Path
    skipped: bool
    seconds: float
    log_path: Path
    error: str | None = None
    cython: bool = False


def env_dir(app_env: AppEnv) -> Path:
    """The app's worker environment folder: ``<workspace>/envs/<app>``."""
    return app_env.home / "envs" / app_env.app


def env_python(app_env: AppEnv) -> Path:
    """The python of the app's worker environment."""
    return env_dir(app_env) / "bin" / "python"


def cython_dir(app_env: AppEnv) -> Path:
    """The folder put first on PYTHONPATH in cython mode (holds the compiled app package)."""
    return env_dir(app_env) / "cython"


def worker_environ(app_env: AppEnv, cython: bool) -> dict[str, str]:
    """Environment variables of any process that runs app code in the app's environment.

    The allow-list of :func:`switchyard.environ.child_environ` over ``os.environ`` (plus
    the names the app declares in ``[environment].pass``; never the workbench's secrets) with:
    ``PYTHONPATH`` starting with the compiled build
    in cython mode (so compiled modules shadow the ``.py`` ones) and without it
    otherwise; the env's ``bin`` first on ``PATH``; ``SWITCHYARD_HOME`` and
    ``SWITCHYARD_APPS`` so workers see the same workspace and apps; unbuffered
    output; non-daemonic Dask workers (the pool bit starts a process pool inside a
    worker); a worker saturation of 1.0.
    """
    from switchyard.environ import child_environ, declared_names

    environ = child_environ(os.environ, declared_names(app_env.settings_path))
    build = str(cython_dir(app_env))
    kept = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != build]
    environ["PYTHONPATH"] = os.pathsep.join(([build] if cython else []) + kept)
    if not environ["PYTHONPATH"]:
        del environ["PYTHONPATH"]
    bin_dir = str(env_dir(app_env) / "bin")
    path = [p for p in environ.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    environ["PATH"] = os.pathsep.join([bin_dir] + path)
    environ["VIRTUAL_ENV"] = str(env_dir(app_env))
    environ.pop("PYTHONHOME", None)
    environ["SWITCHYARD_HOME"] = str(app_env.home)
    environ["SWITCHYARD_APPS"] = str(app_env.apps_path)
    environ["PYTHONUNBUFFERED"] = "1"
    environ["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    environ["DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION"] = "1.0"
    return environ


def uv_bin() -> str:
    """The uv executable: the one shipped by the ``uv`` package, else uv on PATH."""
    try:
        import uv

        found = uv.find_uv_bin()
        if found and Path(found).is_file():
            return str(found)
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if not found:
        raise InstallError("uv was not found: install it into the driver's environment (pip install uv)")
    return found


# inputs -----------------------------------------------------------------------

def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_versions_seen: tuple[tuple, dict[str, str]] | None = None


def installed_versions() -> dict[str, str]:
    """Canonical name -> version of every distribution in the running interpreter.

    Reading every distribution's metadata costs tens of milliseconds; the answer is kept
    while no folder of ``sys.path`` changed (installing or removing a distribution adds or
    removes its ``.dist-info`` folder, which changes the folder's mtime), so the check
    before each run costs a few ``stat`` calls.
    """
    global _versions_seen
    key = tuple((p, _mtime_ns(p)) for p in sys.path if p)
    if _versions_seen is not None and _versions_seen[0] == key:
        return dict(_versions_seen[1])
    versions = _scan_versions()
    _versions_seen = (key, versions)
    return dict(versions)


def _mtime_ns(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _scan_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions.setdefault(_canonical(name), dist.version)
    versions.pop("switchyard", None)  # made importable by a .pth file, never installed
    return dict(sorted(versions.items()))


def engine_requirements(versions: dict[str, str]) -> list[str]:
    """The engine packages, each pinned to the running interpreter's version when installed there."""
    return [f"{name}=={versions[name]}" if name in versions else name for name in ENGINE_PACKAGES]


def app_requirements(app_env: AppEnv) -> list[str]:
    """``[project].dependencies`` of the app's pyproject.toml ([] when there is no such file)."""
    path = app_env.app_dir / "pyproject.toml"
    if not path.is_file():
        return []
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InstallError(f"{path}: not valid TOML ({e}): fix the file") from e
    deps = doc.get("project", {}).get("dependencies", [])
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise InstallError(
            f"{path}: [project].dependencies must be a list of requirement strings: "
            'e.g. dependencies = ["requests>=2"]'
        )
    return [d.strip() for d in deps if d.strip()]


def switchyard_root() -> Path:
    """The folder that contains the running ``switchyard`` package."""
    return Path(switchyard.__file__).resolve().parent.parent


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _env_digest(app_env: AppEnv, versions: dict[str, str]) -> str:
    pyproject = app_env.app_dir / "pyproject.toml"
    return _digest({
        "schema": STAMP_SCHEMA,
        "python": sys.version,
        "base": sys.base_prefix,
        "pins": versions,
        "pyproject": pyproject.read_bytes().hex() if pyproject.is_file() else None,
        "switchyard": str(switchyard_root()),
        "app_dir": str(app_env.app_dir),
    })


def _package_files(app_env: AppEnv) -> list[Path]:
    package = app_env.app_dir / app_env.app
    return sorted(
        p for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix in (".py", ".pyx", ".pxd")
    )


def _cython_digest(app_env: AppEnv, env_digest: str) -> str:
    # The whole package is copied for the compiled build, so every source counts.
    package = app_env.app_dir / app_env.app
    sources = {str(p.relative_to(package)): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in _package_files(app_env)}
    return _digest({"env": env_digest, "sources": sources})


def _read_stamp(directory: Path) -> dict:
    try:
        stamp = json.loads((directory / ".stamp.json").read_text())
        return stamp if isinstance(stamp, dict) else {}
    except (OSError, ValueError):
        return {}


def is_current(app_env: AppEnv, cython: bool) -> bool:
    """True when the environment was built from the current inputs (no subprocess is run)."""
    directory = env_dir(app_env)
    if not env_python(app_env).exists():
        return False
    stamp = _read_stamp(directory)
    versions = installed_versions()
    if stamp.get("rapids") is not None:  # a rapids env stays one until INSTALL says otherwise
        versions = _with_rapids(versions, int(stamp["rapids"]))
    env_digest = _env_digest(app_env, versions)
    if stamp.get("env") != env_digest:
        return False
    return not cython or stamp.get("cython") == _cython_digest(app_env, env_digest)


# install ------------------------------------------------------------------------

@contextmanager
def _env_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    # Not ".lock": uv itself flocks <venv>/.lock while installing into the environment.
    with open(directory / LOCK_NAME, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def install_local(
    app_env: AppEnv,
    *,
    cython: bool = False,
    on_line: Callable[[str], None] | None = None,
    force: bool = False,
    check: bool = False,
    rapids_cuda: int | None = None,
) -> InstallResult:
    """Create or update the app's worker environment on this machine.

    Quick when nothing changed (the stamp matches): only the readiness check runs.
    A broken environment (python missing, imports failing) is rebuilt. Concurrent
    installs of one app are serialised by a lock file in the environment folder.

    Args:
        app_env: The app to install.
        cython: Also build the compiled variant of ``App.compiled_modules``.
        on_line: Called with every output line (uv, Cython, compiler) as it is printed.
        force: Rebuild from scratch even if the environment is current.
        check: Raise InstallError instead of returning ``ok=False``.
        rapids_cuda: The host's CUDA major for the rapids bit: CuPy and cuDF for it are added
            and pandas is pinned to what cuDF supports (:func:`rapids_pins`).

    Returns:
        An InstallResult; ``ok`` is False when the app does not load in the environment.

    Raises:
        AppNotFound: The app is not in the apps folder.
        InstallError: uv or the Cython build failed (or the readiness check, with ``check``).
    """
    started = time.monotonic()
    app_env.check()
    directory = env_dir(app_env)
    python = env_python(app_env)
    log_path = directory / "install.log"
    with _env_lock(directory), LineSink(log_path, on_line) as sink:
        stamp_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        sink(f"=== {stamp_at} install '{app_env.app}' (cython={cython}, force={force}) "
             f"into {directory} with {sys.executable}")
        versions = installed_versions()
        if rapids_cuda is not None:
            sink(rapids_pins(versions, rapids_cuda)[2])
            versions = _with_rapids(versions, rapids_cuda)
        env_digest = _env_digest(app_env, versions)
        cython_digest = _cython_digest(app_env, env_digest) if cython else None
        stamp = _read_stamp(directory)
        env_ok = python.exists() and stamp.get("env") == env_digest
        cython_ok = not cython or stamp.get("cython") == cython_digest

        def result(ok: bool, skipped: bool, error: str | None = None) -> InstallResult:
            seconds = time.monotonic() - started
            sink(f"=== {'ready' if ok else 'NOT ready'} in {seconds:.2f} s"
                 + (f": {error}" if error else ""))
            if not ok and check:
                raise InstallError(f"app '{app_env.app}': the environment {directory} is not ready: "
                                   f"{error}: fix the app and install again (log: {log_path})")
            return InstallResult(ok, app_env.app, directory, python, skipped, seconds,
                                 log_path, error, cython)

        if env_ok and cython_ok and not force:
            sink("environment is up to date: checking that the app loads")
            error = _readiness(app_env, cython, sink)
            if error is None:
                return result(True, skipped=True)
            sink(f"environment is broken ({error}): rebuilding it")
            force = True

        # Until the new build is checked, the old stamp must not vouch for it.
        (directory / ".stamp.json").unlink(missing_ok=True)
        try:
            if force or not env_ok:
                _build_env(app_env, versions, sink, fresh=force)
            if cython:
                _build_cython(app_env, sink)
        except InstallError as e:
            sink(f"=== failed: {e}")
            raise
        error = _readiness(app_env, cython, sink)
        if error is None:
            keep_cython = stamp.get("cython") if (env_ok and not force) else None
            workspace.atomic_write_json(directory / ".stamp.json", {
                "schema": STAMP_SCHEMA,
                "env": env_digest,
                "cython": cython_digest if cython else keep_cython,
                "rapids": rapids_cuda,
                "python": sys.version,
                "written": stamp_at,
            })
        return result(error is None, skipped=False, error=error)


def _uv_environ() -> dict[str, str]:
    environ = dict(os.environ)
    environ.pop("VIRTUAL_ENV", None)  # --python says which environment; this would only confuse uv
    environ["UV_NO_PROGRESS"] = "1"
    return environ


def _run(cmd: list, sink: LineSink, prefix: str, cwd: Path | None = None,
         env: dict | None = None, shown: str | None = None) -> tuple[int, deque]:
    keep: deque = deque(maxlen=200)
    sink("$ " + (shown or " ".join(str(c) for c in cmd)))
    code = stream_process([str(c) for c in cmd], env=env or _uv_environ(), cwd=cwd,
                          on_line=sink, prefix=prefix, keep=keep)
    return code, keep


def _venv_matches(directory: Path) -> bool:
    cfg = directory / "pyvenv.cfg"
    if not (directory / "bin" / "python").exists() or not cfg.is_file():
        return False
    want = ".".join(str(x) for x in sys.version_info[:3])
    text = cfg.read_text(errors="replace")
    return re.search(rf"^version(_info)?\s*=\s*{re.escape(want)}\b", text, re.M) is not None


def _wipe(directory: Path) -> None:
    for child in directory.iterdir():
        if child.name in (LOCK_NAME, "install.log"):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _site_packages(directory: Path) -> Path:
    return directory / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def rapids_pins(versions: dict[str, str], cuda_major: int) -> tuple[dict[str, str], list[str], str]:
    """(pins without pandas, the rapids packages, what to say) for a rapids env on CUDA ``cuda_major``."""
    from switchyard.device import rapids_requirements

    extra, note = rapids_requirements(cuda_major, versions.get("pandas"))
    return {k: v for k, v in versions.items() if k != "pandas"}, extra, note


def _with_rapids(versions: dict[str, str], cuda_major: int) -> dict[str, str]:
    """The pins of a rapids env, its packages under ``+rapids`` (so they are in its digest)."""
    pins, extra, _ = rapids_pins(versions, cuda_major)
    return {**pins, "+rapids": " ".join(extra)}


def _build_env(app_env: AppEnv, versions: dict[str, str], sink: LineSink, fresh: bool) -> None:
    versions = dict(versions)
    extra = versions.pop("+rapids", "").split()  # the rapids packages (rapids_pins), not a pin
    directory = env_dir(app_env)
    uv = uv_bin()
    if fresh or not _venv_matches(directory):
        _wipe(directory)
        code, keep = _run([uv, "venv", "--allow-existing", "--python", sys.executable, directory],
                          sink, "[uv] ")
        if code != 0:
            raise InstallError(f"app '{app_env.app}': creating the environment {directory} failed: "
                               f"{last_lines(keep, 2)}: check that {sys.executable} runs")
    constraints = directory / "constraints.txt"
    workspace.atomic_write_text(
        constraints,
        "# versions of the driver's interpreter: workers must match them\n"
        + "".join(f"{name}=={version}\n" for name, version in versions.items()),
    )
    requirements = engine_requirements(versions) + app_requirements(app_env) + extra
    code, keep = _run([uv, "pip", "install", "--python", directory / "bin" / "python",
                       "-c", constraints, *requirements], sink, "[uv] ")
    if code != 0:
        raise InstallError(
            f"app '{app_env.app}': installing the worker requirements failed: {last_lines(keep, 2)}: "
            f"fix [project].dependencies in {app_env.app_dir / 'pyproject.toml'} (they must accept "
            f"the driver's pinned versions, see {constraints})"
        )
    site = _site_packages(directory)
    if not site.is_dir():
        raise InstallError(f"app '{app_env.app}': {site} is missing after uv venv: "
                           "install again with force=True")
    root = switchyard_root()
    if root.name in ("site-packages", "dist-packages"):
        # switchyard itself is installed as a wheel: copy it rather than expose that whole folder.
        root = directory / "switchyard-src"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(Path(switchyard.__file__).resolve().parent, root / "switchyard",
                        ignore=shutil.ignore_patterns("__pycache__"))
    workspace.atomic_write_text(site / "_switchyard.pth", f"{root}\n")
    workspace.atomic_write_text(site / "_switchyard_app.pth", f"{app_env.app_dir}\n")
    sink(f"made importable: switchyard from {root}, '{app_env.app}' from {app_env.app_dir}")


def c_compiler() -> str | None:
    """The C compiler Python extensions are built with, if it is on PATH."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(cc.split()[0])


def _build_cython(app_env: AppEnv, sink: LineSink) -> None:
    app = app_env.app
    modules = _probe_compiled_modules(app_env, sink)
    build = cython_dir(app_env)
    target = build / app
    shutil.rmtree(target, ignore_errors=True)
    build.mkdir(parents=True, exist_ok=True)
    shutil.copytree(app_env.app_dir / app, target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c", "build", "*.pyc"))
    if not modules:
        sink(f"cython: '{app}' lists no compiled_modules: nothing to compile")
        return
    if c_compiler() is None:
        cc = sysconfig.get_config_var("CC") or "cc"
        raise InstallError(
            f"app '{app}': cannot compile module '{modules[0]}' with Cython: no C compiler "
            f"('{cc.split()[0]}' is not on PATH): install one (apt-get install gcc) or turn the cython bit off"
        )
    python = env_python(app_env)
    environ = worker_environ(app_env, cython=False)
    for name in modules:
        rel = Path(*name.split("."))
        source = next((target / rel.with_suffix(s) for s in (".pyx", ".py")
                       if (target / rel.with_suffix(s)).is_file()), None)
        if source is None:
            raise InstallError(
                f"app '{app}': compiled module '{name}' not found ({app_env.app_dir / app / rel}.py): "
                "fix App.compiled_modules"
            )
        started = time.monotonic()
        code, keep = _run([python, "-m", "Cython.Build.Cythonize", "-i", "-3", source], sink,
                          f"[cython {name}] ", cwd=build, env=environ)
        if code != 0:
            first = next((s for s in keep if re.search(r"error", s, re.I)), None) or last_lines(keep, 1)
            raise InstallError(
                f"app '{app}': compiling module '{name}' with Cython failed: {first.strip()}: fix "
                f"{app_env.app_dir / app / rel.with_suffix(source.suffix)} or turn the cython bit off"
            )
        sink(f"cython: compiled '{name}' in {time.monotonic() - started:.1f} s")


def _probe_compiled_modules(app_env: AppEnv, sink: LineSink) -> list[str]:
    info, error = _load_in_env(app_env, cython=False, sink=sink, want_files=False)
    if info is None:
        raise InstallError(f"app '{app_env.app}': cannot read App.compiled_modules: {error}: "
                           "fix the app so that it imports")
    return list(info.get("compiled_modules", []))


def _load_in_env(app_env: AppEnv, cython: bool, sink: LineSink,
                 want_files: bool) -> tuple[dict | None, str | None]:
    python = env_python(app_env)
    if not python.exists():
        return None, f"{python} does not exist"
    cmd = [python, "-c", _READINESS_SCRIPT, app_env.app, app_env.apps_path, app_env.home,
           "1" if want_files else "0"]
    try:
        code, keep = _run(cmd, sink, "[check] ", env=worker_environ(app_env, cython),
                          shown=f"{python} -c <load app '{app_env.app}'> (cython={cython})")
    except OSError as e:  # e.g. a venv python whose base interpreter vanished
        return None, f"{python} cannot run: {e}"
    info = next((json.loads(s.split(_READY_MARK, 1)[1]) for s in keep if _READY_MARK in s), None)
    if code == 0 and info is not None:
        return info, None
    error = next((s.split(_ERROR_MARK, 1)[1] for s in keep if _ERROR_MARK in s), None)
    return None, error or f"{python} exited with code {code}: {last_lines(keep, 2)}"


def _readiness(app_env: AppEnv, cython: bool, sink: LineSink) -> str | None:
    """None when the app loads in its environment as a worker would load it, else why not."""
    info, error = _load_in_env(app_env, cython, sink, want_files=cython)
    if info is None:
        return error
    if Path(info["python"]).parent.resolve() != (env_dir(app_env) / "bin").resolve():
        return f"the app loaded with {info['python']}, not with the environment's python"
    if cython:
        not_compiled = [m for m, f in info["files"].items() if not str(f).endswith(".so")]
        if not_compiled:
            return (f"module(s) {', '.join(not_compiled)} were imported from .py files, not from the "
                    "compiled build: install again with force=True")
    sink(f"ready: {info['app_class']} loads with {info['python']}")
    return None

