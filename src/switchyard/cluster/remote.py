"""INSTALL on remote hosts: the app's worker environment under ``<root>/envs/<app>/`` on each host.

This machine prepares one *bundle* (wheels of switchyard and of the app built with
``uv build``, the engine and app requirements pinned to the driver's versions);
each host then, in parallel and over its own SSH connection: finds a Python of the
driver's minor version, gets uv (the local binary is uploaded when the platform
matches), receives the wheels by SFTP, gets a venv, the pinned requirements and the
wheels, compiles the app with Cython when asked, and must pass a readiness check
that imports the app in that venv. A stamp on the host records what was installed,
so a second INSTALL with nothing changed only checks readiness; a host whose stamp
matches but whose venv no longer works is rebuilt from scratch.

Every output line goes to ``<workspace>/envs/<app>/install.log`` with ``[host]`` in
front. A failing host never hides the others: each gets a :class:`HostInstall`
with ``ok`` and a ``reason`` (see :mod:`switchyard.cluster.ssh`).
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import platform
import shutil
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path

import switchyard
from switchyard.app import AppEnv
from switchyard.cluster import ssh
from switchyard.cluster.env import (
    InstallResult,
    app_requirements,
    engine_requirements,
    env_dir,
    install_local,
    installed_versions,
    uv_bin,
)
from switchyard.cluster.addresses import is_local_host
from switchyard.cluster.ssh import HostAccess, Remote
from switchyard.exceptions import HostError, InstallError
from switchyard.logs import LineSink, last_lines, stream_process
from switchyard.settings import ClusterSettings

STAMP_SCHEMA = 1
_MARK = "SWITCHYARD-JSON "
# Left out of wheels and their digests; app_settings.toml is the manager's (editing it changes no host).
_SKIP = ("__pycache__", "build", "dist", "*.egg-info", "*.so", "*.c", "*.pyc", ".venv", ".git",
         "app_settings.toml")

# What a host has: its python, the absolute install folder, uv, the stamp of the app's env.
_PROBE = r"""
import json, os, platform, shutil, sys
root = os.path.abspath(os.path.expanduser(sys.argv[1]))
env = os.path.join(root, "envs", sys.argv[2])
try:
    with open(os.path.join(env, ".stamp.json")) as f:
        stamp = json.load(f)
except Exception:
    stamp = None
uv = os.path.join(root, "bin", "uv")
print("SWITCHYARD-JSON " + json.dumps({
    "version": list(sys.version_info[:3]), "executable": sys.executable, "system": platform.system(),
    "machine": platform.machine(), "root": root, "env": env, "stamp": stamp,
    "uv": uv if os.access(uv, os.X_OK) else None, "uv_on_path": shutil.which("uv"),
    "env_python": os.path.exists(os.path.join(env, "bin", "python"))}))
"""

# Runs in the worker venv: load the app as a worker would, check the engine versions.
_READY = r"""
import importlib, json, sys, traceback
app, want = sys.argv[1], json.loads(sys.argv[2])
try:
    import importlib.metadata as md
    import switchyard
    from switchyard.app import app_class_of
    cls = app_class_of(importlib.import_module(app), app, None)
    wrong = {n: md.version(n) for n, v in want["versions"].items() if md.version(n) != v}
    if wrong:
        raise RuntimeError("versions differ from the driver's: " + ", ".join(
            f"{n} {v} (driver {want['versions'][n]})" for n, v in wrong.items()))
    files = {m: importlib.import_module(app + "." + m).__file__ for m in cls.compiled_modules}
    if want["cython"]:
        py = [m for m, f in files.items() if not f.endswith(".so")]
        if py:
            raise RuntimeError("not compiled: " + ", ".join(py))
    info = {"python": sys.executable, "app_class": cls.__module__ + "." + cls.__qualname__, "files": files}
except BaseException as e:
    traceback.print_exc()
    print("SWITCHYARD-ERROR " + (type(e).__name__ + ": " + str(e)).replace("\n", " "), flush=True)
    sys.exit(1)
print("SWITCHYARD-JSON " + json.dumps(info), flush=True)
"""

# Copies the installed app package to <build>/<app> and compiles its compiled_modules in place.
_CYTHON = r"""
import importlib, os, shutil, subprocess, sys
app, build = sys.argv[1], sys.argv[2]
from switchyard.app import app_class_of
module = importlib.import_module(app)
cls = app_class_of(module, app, None)
target = os.path.join(build, app)
shutil.rmtree(target, ignore_errors=True)
shutil.copytree(os.path.dirname(module.__file__), target,
                ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c", "*.pyc"))
for name in cls.compiled_modules:
    base = os.path.join(target, *name.split("."))
    source = next((base + s for s in (".pyx", ".py") if os.path.isfile(base + s)), None)
    if source is None:
        print(f"SWITCHYARD-ERROR compiled module '{name}' not found in {target}", flush=True)
        sys.exit(1)
    print(f"cython: compiling '{name}'", flush=True)
    code = subprocess.call([sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-3", source], cwd=build)
    if code:
        print(f"SWITCHYARD-ERROR compiling '{name}' failed (exit {code})", flush=True)
        sys.exit(1)
"""

_WRITE = r"""
import os, sys
path, text = sys.argv[1], sys.argv[2]
tmp = path + ".tmp"
with open(tmp, "w") as f:
    f.write(text)
os.replace(tmp, path)
"""

_RMTREE = "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)"


@dataclass
class Bundle:
    """What every host installs, prepared once on this machine."""

    app: str
    digest: str
    wheels: list[Path]
    requirements: list[str]
    constraints: str
    versions: dict[str, str]  # engine package -> the driver's version (checked on the host)
    python: tuple[int, int]
    cython: bool
    uv: str
    platform: tuple[str, str]


@dataclass
class HostInstall:
    """The outcome of INSTALL on one host (``reason`` is None when ``ok``)."""

    host: str
    ok: bool
    reason: str | None = None
    message: str | None = None
    skipped: bool = False
    seconds: float = 0.0
    env_dir: str | None = None
    python: str | None = None
    root: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class InstallReport:
    """INSTALL on every host: per host ok/failed with the reason, and the driver's own environment."""

    app: str
    hosts: dict[str, HostInstall]
    local: InstallResult | None
    seconds: float
    log_path: Path
    remote_hosts: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts.values()) and (self.local is None or self.local.ok)

    @property
    def skipped(self) -> bool:
        return all(h.skipped for h in self.hosts.values())

    @property
    def env_dir(self) -> Path | None:
        return self.local.env_dir if self.local else None

    @property
    def failed(self) -> list[HostInstall]:
        return [h for h in self.hosts.values() if not h.ok]

    def to_dict(self) -> dict:
        return {"app": self.app, "ok": self.ok, "skipped": self.skipped, "seconds": self.seconds,
                "log": str(self.log_path), "env_dir": str(self.env_dir) if self.env_dir else None,
                "hosts": {h: r.to_dict() for h, r in self.hosts.items()}}

    def summary(self) -> str:
        parts = [f"{h}: ok{' (up to date)' if r.skipped else ''}" if r.ok else f"{h}: FAILED ({r.message})"
                 for h, r in self.hosts.items()]
        return f"install of '{self.app}' in {self.seconds:.1f} s: " + "; ".join(parts)


# the bundle ---------------------------------------------------------------------------------

def _skipped(name: str) -> bool:
    return any(Path(name).match(p) for p in _SKIP)


def source_digest(folder: Path) -> str:
    """A digest of every file under ``folder`` that goes into its wheel."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _skipped(d))
        for name in sorted(filenames):
            if _skipped(name):
                continue
            path = Path(dirpath) / name
            h.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _switchyard_stage(stage: Path) -> Path:
    package = Path(switchyard.__file__).resolve().parent
    shutil.copytree(package, stage / "switchyard", ignore=shutil.ignore_patterns(*_SKIP))
    # Only the package: the worker venv gets its dependencies from the pinned requirements.
    (stage / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n\n'
        f'[project]\nname = "switchyard"\nversion = "{switchyard.__version__}"\n\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["switchyard"]\n'
    )
    return stage


def _app_stage(app_env: AppEnv, stage: Path) -> Path:
    # A copy, so the build backend's leftovers (build/, *.egg-info) never land in the app folder.
    shutil.copytree(app_env.app_dir, stage, ignore=shutil.ignore_patterns(*_SKIP))
    return stage


def build_wheel(name: str, source: Path, stage_of, cache: Path, sink: LineSink) -> Path:
    """The wheel of ``source`` from the cache, built with ``uv build`` when its sources changed."""
    out = cache / f"{name}-{source_digest(source)[:16]}"
    found = sorted(out.glob("*.whl"))
    if found:
        return found[0]
    stage = cache / f".stage-{name}-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.parent.mkdir(parents=True, exist_ok=True)
    try:
        stage_of(stage)
        tmp_out = cache / f".out-{name}-{os.getpid()}"
        shutil.rmtree(tmp_out, ignore_errors=True)
        keep: list[str] = []
        environ = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        environ["UV_NO_PROGRESS"] = "1"
        sink(f"building the wheel of {name}")
        code = stream_process([uv_bin(), "build", "--wheel", "--out-dir", str(tmp_out), str(stage)],
                              env=environ, on_line=lambda s: (keep.append(s), sink(s)), prefix="[uv build] ")
        wheels = sorted(tmp_out.glob("*.whl"))
        if code != 0 or not wheels:
            raise InstallError(f"building the wheel of {name} from {source} failed: {last_lines(keep, 2)}: "
                               f"fix its pyproject.toml (it needs [project] name and version)")
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp_out, out)  # the cache entry appears whole or not at all
        return out / wheels[0].name
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def prepare_bundle(app_env: AppEnv, cython: bool, sink: LineSink) -> Bundle:
    """Build (or take from the cache) the wheels and pin the requirements for ``app_env``."""
    cache = app_env.home / "wheels"
    sy_source = Path(switchyard.__file__).resolve().parent
    sy_wheel = build_wheel("switchyard", sy_source, _switchyard_stage, cache, sink)
    app_wheel = build_wheel(app_env.app, app_env.app_dir, lambda s: _app_stage(app_env, s), cache, sink)
    versions = installed_versions()
    requirements = engine_requirements(versions) + app_requirements(app_env)
    constraints = "".join(f"{n}=={v}\n" for n, v in versions.items())
    engine = {r.split("==")[0]: r.split("==")[1] for r in engine_requirements(versions) if "==" in r}
    python = sys.version_info[:2]
    digest = hashlib.sha256(json.dumps({
        "schema": STAMP_SCHEMA, "python": python, "wheels": [w.parent.name for w in (sy_wheel, app_wheel)],
        "requirements": requirements, "constraints": constraints, "cython": cython,
    }, sort_keys=True).encode()).hexdigest()
    return Bundle(app=app_env.app, digest=digest, wheels=[sy_wheel, app_wheel], requirements=requirements,
                  constraints=constraints, versions=engine, python=python, cython=cython, uv=uv_bin(),
                  platform=(platform.system(), platform.machine()))


# one host -----------------------------------------------------------------------------------

def _json_of(lines: list[str]) -> dict | None:
    found = [s.split(_MARK, 1)[1] for s in lines if _MARK in s]
    return json.loads(found[-1]) if found else None


def _error_of(lines: list[str]) -> str | None:
    found = [s.split("SWITCHYARD-ERROR ", 1)[1] for s in lines if "SWITCHYARD-ERROR " in s]
    return found[-1] if found else None


def python_candidates(access: HostAccess) -> list[str]:
    """Interpreters tried on a host: the configured one only, else the local path, python3.X, python3."""
    if access.python:
        return [access.python]
    local = os.path.realpath(sys.executable)
    return list(dict.fromkeys([local, f"python{sys.version_info[0]}.{sys.version_info[1]}", "python3"]))


async def _probe(remote: Remote, access: HostAccess, app: str, say) -> dict:
    want = sys.version_info[:2]
    tried = []
    for python in python_candidates(access):
        done = await remote.run([python, "-c", _PROBE, access.root, app], timeout=60)
        info = _json_of(done.lines) if done.code == 0 else None
        if info is None:
            tried.append(f"{python}: {last_lines(done.lines, 1) or f'exit {done.code}'}")
            continue
        if tuple(info["version"][:2]) != want:
            tried.append(f"{python} is {'.'.join(map(str, info['version']))}")
            continue
        info["python"] = python
        version = ".".join(map(str, info["version"]))
        say(f"python {version} at {info['executable']}; install folder {info['root']}")
        return info
    where = f'[cluster.hosts."{access.host}"].python'
    raise HostError(access.host, ssh.PYTHON_MISSING,
                    f"no python {want[0]}.{want[1]} (the driver's version) found: {'; '.join(tried)}",
                    f"install Python {want[0]}.{want[1]} there or set {where}")


async def _step(remote: Remote, argv: list, say, reason: str, what: str, fix: str,
                timeout: float = 1800, stdin: str | None = None) -> list[str]:
    done = await remote.run(argv, on_line=say, timeout=timeout, stdin=stdin)
    if done.code != 0:
        detail = _error_of(done.lines) or last_lines(done.lines, 2) or f"exit code {done.code}"
        raise HostError(remote.host, reason, f"{what} failed: {detail}", fix)
    return done.lines


async def _readiness(remote: Remote, env_python: str, bundle: Bundle, env: str, say) -> str | None:
    argv = [env_python, "-c", _READY, bundle.app, json.dumps({"versions": bundle.versions,
                                                               "cython": bundle.cython})]
    if bundle.cython:
        argv = ["env", f"PYTHONPATH={env}/cython", *argv]
    done = await remote.run(argv, on_line=say, timeout=300)
    info = _json_of(done.lines) if done.code == 0 else None
    if info is None:
        return _error_of(done.lines) or last_lines(done.lines, 2) or f"exit code {done.code}"
    say(f"ready: {info['app_class']} loads with {info['python']}")
    return None


async def _ensure_uv(remote: Remote, info: dict, bundle: Bundle, say) -> str:
    if info["uv"]:
        return info["uv"]
    target = f"{info['root']}/bin/uv"
    if (info["system"], info["machine"]) == bundle.platform:
        say(f"uv is not installed in {info['root']}: uploading this machine's uv")
        await remote.put(bundle.uv, target, mode=0o755)
        info["uv"] = target
        return target
    if info["uv_on_path"]:
        return info["uv_on_path"]
    say("uv is not installed and this machine's uv does not fit the host: installing it with pip")
    tools = f"{info['root']}/tools"
    await _step(remote, [info["python"], "-m", "pip", "install", "--quiet", "--target", tools, "uv"], say,
                ssh.DEPENDENCY_FAILED, "installing uv", "install uv on the host (pip install uv)")
    return f"{tools}/bin/uv"


async def install_host(access: HostAccess, bundle: Bundle, sink: LineSink, force: bool = False,
                       quick: bool = False) -> HostInstall:
    """INSTALL ``bundle`` on one host; never raises for the host's own problems (see HostInstall).

    With ``quick``, a host whose stamp matches is taken as ready without importing the app
    (cluster start: a broken env then shows up as a worker that does not join).
    """
    started = time.monotonic()
    prefix = f"[{access.host}] "

    def say(line: str) -> None:
        sink(prefix + line)

    result = HostInstall(access.host, ok=False)
    try:
        say(f"=== install '{bundle.app}' (cython={bundle.cython}, force={force}) on {access.where}")
        remote = await ssh.connect(access)
        async with remote:
            info = await _probe(remote, access, bundle.app, say)
            env, python = info["env"], info["python"]
            env_python = f"{env}/bin/python"
            result.env_dir, result.python, result.root = env, info["executable"], info["root"]
            stamp = info["stamp"] or {}
            fresh = force
            if not force and stamp.get("digest") == bundle.digest and info["env_python"]:
                if quick:
                    result.ok = result.skipped = True
                    return result
                say("environment is up to date: checking that the app loads")
                error = await _readiness(remote, env_python, bundle, env, say)
                if error is None:
                    result.ok = result.skipped = True
                    return result
                say(f"environment is broken ({error}): rebuilding it")
                fresh = True
            fresh = fresh or stamp.get("python") != info["executable"]
            await _build(remote, info, bundle, say, fresh)
            error = await _readiness(remote, env_python, bundle, env, say)
            if error is not None and not fresh:
                say(f"the app does not load after the update ({error}): rebuilding the environment")
                await _build(remote, info, bundle, say, True)
                error = await _readiness(remote, env_python, bundle, env, say)
            if error is not None:
                raise HostError(access.host, ssh.NOT_READY, f"the app does not load in {env}: {error}",
                                "fix the app's imports or its dependencies and install again")
            await _step(remote, [python, "-c", _WRITE, f"{env}/.stamp.json", json.dumps(
                {"schema": STAMP_SCHEMA, "digest": bundle.digest, "python": info["executable"],
                 "written": time.time()})], say, ssh.NOT_READY, "writing the stamp", "check the disk")
            result.ok = True
    except HostError as e:
        result.reason, result.message = e.reason, str(e)
        say(f"=== FAILED: {e}")
    except Exception as e:  # a bug or an unforeseen error must not hide the other hosts
        result.reason, result.message = ssh.NOT_READY, f"host '{access.host}': {type(e).__name__}: {e}"
        say(f"=== FAILED: {result.message}")
    finally:
        result.seconds = time.monotonic() - started
        if result.ok:
            say(f"=== ready in {result.seconds:.2f} s" + (" (nothing changed)" if result.skipped else ""))
    return result


async def _build(remote: Remote, info: dict, bundle: Bundle, say, fresh: bool) -> None:
    root, env, python = info["root"], info["env"], info["python"]
    env_python = f"{env}/bin/python"
    uv = await _ensure_uv(remote, info, bundle, say)
    wheel_dir = f"{root}/wheels/{bundle.digest[:16]}"
    for wheel in bundle.wheels:
        await remote.put(wheel, f"{wheel_dir}/{wheel.name}")
    constraints = f"{wheel_dir}/constraints.txt"
    await _step(remote, [python, "-c", _WRITE, constraints, bundle.constraints], say, ssh.DEPENDENCY_FAILED,
                "writing the constraints", "check the disk")
    uv_env = [python, "-c", WITH_ENV]  # its settings (an index URL may hold a password) come on stdin
    uv_in = json.dumps(uv_environ()) + "\n"
    if fresh or not info["env_python"]:
        say(f"creating the environment {env}")
        await _step(remote, [python, "-c", _RMTREE, env], say, ssh.DEPENDENCY_FAILED, "removing the old env",
                    f"remove {env} by hand")
        await _step(remote, [*uv_env, uv, "venv", "--python", python, env], say, ssh.DEPENDENCY_FAILED,
                    "creating the venv", f"check that {python} runs on the host", stdin=uv_in)
    fix = "make the app's [project].dependencies accept the driver's versions (see constraints.txt)"
    await _step(remote, [*uv_env, uv, "pip", "install", "--python", env_python, "-c", constraints,
                         *bundle.requirements], say, ssh.DEPENDENCY_FAILED, "installing the requirements",
                fix, stdin=uv_in)
    # As "name @ file:///..." URLs: a bare path with ";" or spaces would read as a requirement with markers.
    wheels = [f"{w.name.split('-')[0]} @ file://{urllib.parse.quote(f'{wheel_dir}/{w.name}')}"
              for w in bundle.wheels]
    await _step(remote, [*uv_env, uv, "pip", "install", "--python", env_python, "--no-deps", "--reinstall",
                         *wheels], say, ssh.DEPENDENCY_FAILED,
                "installing the wheels", "install again with --force", stdin=uv_in)
    if bundle.cython:
        await _step(remote, [env_python, "-c", _CYTHON, bundle.app, f"{env}/cython"], say, ssh.BUILD_FAILED,
                    "the Cython build", "install a C compiler on the host (apt-get install gcc) or turn "
                    "the cython bit off")


# The driver's package index settings go along; certificates come from the host's own store
# (UV_NATIVE_TLS is the name older uv releases read).
FORWARDED_UV = ("UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_DEFAULT_INDEX", "UV_INDEX", "UV_HTTP_TIMEOUT",
                "UV_OFFLINE", "UV_INDEX_STRATEGY")


def uv_environ() -> dict:
    """The environment changes of every remote uv command, for :data:`WITH_ENV` (``"-"``: the
    names to remove). Sent on stdin, never on the command line: an index URL may carry
    ``user:password@`` and a host's command lines are visible to all its users in ``ps``."""
    forwarded = {k: os.environ[k] for k in FORWARDED_UV if os.environ.get(k)}
    return {"-": ["VIRTUAL_ENV"], "UV_NO_PROGRESS": "1", "UV_SYSTEM_CERTS": "1", "UV_NATIVE_TLS": "1",
            **forwarded}


# Runs argv[1:] with environment changes read from the first line of stdin (a JSON object;
# "-" lists names to remove); the program itself gets an empty stdin.
WITH_ENV = r"""
import json, os, sys
env = json.loads(sys.stdin.readline() or "{}")
for name in env.pop("-", []):
    os.environ.pop(name, None)
os.environ.update(env)
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
os.execvp(sys.argv[1], sys.argv[1:])
"""


# every host -----------------------------------------------------------------------------------

def _lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a")
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return handle


async def install_hosts(app_env: AppEnv, accesses: list[HostAccess], *, cython: bool, force: bool,
                        sink: LineSink) -> dict[str, HostInstall]:
    """INSTALL on every host of ``accesses`` in parallel (the bundle is prepared first)."""
    bundle = await asyncio.to_thread(prepare_bundle, app_env, cython, sink)
    results = await asyncio.gather(*(install_host(a, bundle, sink, force) for a in accesses))
    return {r.host: r for r in results}


def install_everywhere(app_env: AppEnv, cluster: ClusterSettings, hosts: list[str], *, cython: bool,
                       force: bool = False, on_line=None) -> InstallReport:
    """INSTALL the driver's environment here and the worker environment on every remote host.

    Args:
        app_env: The app.
        cluster: The app's ``[cluster]`` settings (SSH access of each host).
        hosts: Every host that runs workers (or the scheduler); local ones share the driver's env.
        cython: Also compile the app with Cython on each host.
        force: Rebuild even when nothing changed.
        on_line: Receives every line of the install log.
    """
    started = time.monotonic()
    log_path = env_dir(app_env) / "install.log"
    remote_hosts = [h for h in hosts if not is_local_host(h)]
    accesses = [ssh.access_for(cluster, h) for h in remote_hosts]

    async def everywhere():
        # This machine (the driver's env) installs alongside the hosts.
        return await asyncio.gather(
            asyncio.to_thread(install_local, app_env, cython=cython, on_line=on_line, force=force),
            install_hosts(app_env, accesses, cython=cython, force=force, sink=sink), return_exceptions=True)

    handle = _lock(app_env.home / "envs" / f".{app_env.app}.remote-install.lock")
    try:
        with LineSink(log_path, on_line) as sink:
            local, results = asyncio.run(everywhere())
    finally:
        handle.close()
    for outcome in (local, results):
        if isinstance(outcome, BaseException):
            raise outcome
    hosts_out: dict[str, HostInstall] = {}
    for h in hosts:
        if h in results:
            hosts_out[h] = results[h]
        else:
            hosts_out[h] = HostInstall(h, ok=local.ok, reason=None if local.ok else ssh.NOT_READY,
                                       message=local.error, skipped=local.skipped, seconds=local.seconds,
                                       env_dir=str(local.env_dir), python=str(local.python))
    return InstallReport(app=app_env.app, hosts=hosts_out, local=local, seconds=time.monotonic() - started,
                         log_path=log_path, remote_hosts=remote_hosts)


def remote_env(root: str, app: str, cython: bool) -> tuple[str, dict[str, str], list[str]]:
    """(env python, variables to set, variables to unset) of a worker process on a host."""
    env = f"{root}/envs/{app}"
    values = {"SWITCHYARD_HOME": root, "VIRTUAL_ENV": env, "PYTHONUNBUFFERED": "1",
              "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
              "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"}
    unset = ["PYTHONHOME"]
    if cython:
        values["PYTHONPATH"] = f"{env}/cython"
    else:
        unset.append("PYTHONPATH")
    return f"{env}/bin/python", values, unset
