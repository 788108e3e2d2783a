"""The run agent process: ``python -m switchyard.runs.agent --home H --app A [--cython] --mode M``.

Started detached by :func:`switchyard.runs.agent.start_driver` with the app environment's
python and worker environment. It records its identity first (so code changed while
it imports is seen as a change), imports the engine, binds its socket and serves one
JSON request per connection in its main thread:

- ``hello``: version, code fingerprint, env stamp, pid, children, idle seconds;
- ``start`` {oid, module, run_dir, env, owner, expect, deadline}: fork a driver (``fork``
  mode) or run it in a thread (``thread`` mode, with the Dask clients kept connected per
  scheduler address in ``executors.SHARED_CLIENTS``); reply ``{"pid": ...}``;
- ``poll`` {oid}: whether a thread-mode run still runs, and its exit code;
- ``stop``: reply, then exit (forked drivers are sessions of their own and go on).

It starts no thread and no event loop before forking, and refuses to fork when a
thread exists (the caller then starts a process). It reaps its children and logs each
exit code. It exits after ``$SWITCHYARD_AGENT_IDLE`` seconds (default 900) without
children and requests (``hello`` does not count), when its workspace or its socket
is removed, and on SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

from switchyard.runs import agent

WARM_MODULES = ("distributed", "switchyard.runs.driver", "switchyard.runs.executors", "switchyard.runs.task",
                "switchyard.pipeline.driver", "pandas")
# thread mode: the driver class of each driver module (its main() sets signal handlers,
# which only the main thread may do)
DRIVER_CLASSES = {"switchyard.runs.driver": "Driver", "switchyard.pipeline.driver": "PipelineDriver"}
TICK = 0.25  # seconds between reaps and idle checks


def say(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} agent[{os.getpid()}]: {line}", flush=True)


class AgentServer:
    """One agent: its identity, its socket, its children (pid -> oid) and thread-mode runs."""

    def __init__(self, home: Path, app: str, cython: bool, mode: str, idle: float):
        self.target = agent.Target(home, app, cython)
        self.mode, self.idle = mode, idle
        self.identity = agent.identity(home, app, mode, dict(os.environ))
        self.started_at = time.time()
        self.last_active = time.monotonic()
        self.children: dict[int, str] = {}
        self.threads: dict[str, threading.Thread] = {}
        self.codes: dict[str, int] = {}
        self.stopping = False
        self.sock: socket.socket | None = None
        self.inode = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def warm(self) -> None:
        t0 = time.perf_counter()
        for name in WARM_MODULES:
            try:
                importlib.import_module(name)
            except ImportError as e:
                if name != "pandas":
                    raise
                say(f"{name} not imported: {e}")
        say(f"imported the engine in {time.perf_counter() - t0:.2f} s ({threading.active_count()} thread)")

    def bind(self) -> bool:
        path = self.target.socket
        if path.exists():
            if self.target.hello(timeout=1.0) is not None:
                say(f"another agent answers at {path}: exiting")
                return False
            path.unlink()  # left by an agent killed with -9
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o600)
        self.sock.listen(64)
        self.inode = path.stat().st_ino
        agent.atomic_write_json(self.target.record, {
            "key": self.target.key, "app": self.target.app, "cython": self.target.cython, "state": "running",
            "pid": os.getpid(), "created": agent.process_started(os.getpid()), "mode": self.mode,
            "version": self.identity["fingerprint"].split("+")[0],
            **self.identity, "started_at": self.started_at, "socket": str(path), "python": sys.executable,
        })
        say(f"listening at {path} ({self.mode} mode, {self.identity['fingerprint']})")
        self.last_active = time.monotonic()  # idle from now on, not from before the imports
        return True

    def serve(self) -> None:
        try:
            while not self.stopping:
                self.reap()
                if self.should_exit():
                    break
                ready, _, _ = select.select([self.sock], [], [], TICK)
                if ready:
                    conn, _ = self.sock.accept()
                    with conn:
                        self.handle(conn)
        finally:
            self.close()

    def should_exit(self) -> bool:
        busy = self.children or any(t.is_alive() for t in self.threads.values())
        if busy:
            self.last_active = time.monotonic()
        elif time.monotonic() - self.last_active > self.idle:
            say(f"idle for {self.idle:g} s: exiting")
            return True
        try:
            if self.target.socket.stat().st_ino == self.inode and self.target.home.is_dir():
                return False
        except OSError:
            pass
        say("its socket or workspace was removed: exiting")
        return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            try:
                if self.target.socket.stat().st_ino == self.inode:
                    self.target.socket.unlink()
            except OSError:
                pass
        if self.target.read_record().get("pid") == os.getpid():
            self.target.record.unlink(missing_ok=True)
        say(f"stopped ({len(self.children)} drivers still running on their own)")

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            oid = self.children.pop(pid, "?")
            code = os.waitstatus_to_exitcode(status)
            say(f"driver pid {pid} (orchestration {oid}) exited with code {code}")
            self.last_active = time.monotonic()

    # -- requests -----------------------------------------------------------------------------
    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(2.0)
        try:
            data = b""
            while b"\n" not in data and (chunk := conn.recv(65536)):
                data += chunk
            msg = json.loads(data or b"{}")
            op = msg.get("op")
            if op != "hello":  # a status look does not keep an idle agent alive
                self.last_active = time.monotonic()
            if op == "start":
                reply = self.start(msg, conn)
            elif op == "hello":
                reply = self.hello()
            elif op == "poll":
                oid = str(msg.get("oid"))
                thread = self.threads.get(oid)
                reply = {"alive": bool(thread and thread.is_alive()), "code": self.codes.get(oid, -1)}
            elif op == "stop":
                self.stopping = True
                reply = {"stopping": True, "pid": os.getpid()}
                say("stop requested")
            else:
                reply = {"error": f"unknown op {op!r}"}
            conn.sendall(json.dumps(reply).encode())
        except (OSError, ValueError) as e:
            say(f"bad request: {type(e).__name__}: {e}")

    def hello(self) -> dict:
        running = len(self.children) + sum(t.is_alive() for t in self.threads.values())
        idle = 0.0 if running else time.monotonic() - self.last_active
        return {**self.identity, "version": self.identity["fingerprint"].split("+")[0], "pid": os.getpid(),
                "key": self.target.key, "children": running, "idle_seconds": round(idle, 1),
                "started_at": self.started_at}

    def start(self, msg: dict, conn: socket.socket) -> dict:
        expect = msg.get("expect") or {}
        if any(self.identity.get(k) != v for k, v in expect.items()):
            return {"error": "stale", "have": self.identity}
        if time.time() > float(msg.get("deadline") or 0):
            say(f"refused orchestration {msg.get('oid')}: its request came too late (the caller gave up)")
            return {"error": "late"}
        oid, module = str(msg["oid"]), str(msg.get("module") or agent.DRIVER_MODULE)
        if not module.startswith("switchyard.") or "/" in oid or oid.startswith("."):
            return {"error": f"refused: module {module!r}, orchestration {oid!r}"}
        if self.mode == "thread":
            return self.start_thread(oid, module, msg.get("owner"))
        if threading.active_count() != 1:
            names = ", ".join(t.name for t in threading.enumerate())
            say(f"refusing to fork orchestration {oid}: {threading.active_count()} threads ({names})")
            return {"error": f"not fork-safe: {threading.active_count()} threads"}
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self.sock.close()
            conn.close()
            run_child(oid, module, Path(msg["run_dir"]), msg.get("env") or {})  # never returns
        self.children[pid] = oid
        say(f"driver pid {pid} started for orchestration {oid} ({module})")
        return {"pid": pid, "started": agent.process_started(pid)}

    def start_thread(self, oid: str, module: str, owner: str | None) -> dict:
        from switchyard.runs import executors

        if getattr(executors, "SHARED_CLIENTS", False) is None:
            executors.SHARED_CLIENTS = {}  # one Client per scheduler, kept connected across runs
        def body() -> None:
            from switchyard.runs.state import Status

            code = 1
            try:
                cls = getattr(importlib.import_module(module), DRIVER_CLASSES[module])
                status = cls(oid, owner=owner).run()
                code = 0 if status in (Status.COMPLETED, Status.PAUSED, Status.CANCELLED) else 1
            except BaseException:
                for line in traceback.format_exc().splitlines():
                    say(f"{oid}: {line}")
            self.codes[oid] = code
            say(f"driver thread of orchestration {oid} ended with code {code}")

        thread = threading.Thread(target=body, name=f"driver-{oid}", daemon=True)
        self.threads[oid] = thread
        thread.start()
        return {"pid": os.getpid(), "thread": True}


def run_child(oid: str, module: str, run_dir: Path, env: dict) -> None:
    """The forked driver: what ``popen_driver`` gave a new process, then the module's main()."""
    code = 1
    try:
        os.setsid()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        run_dir.mkdir(parents=True, exist_ok=True)
        out = os.open(run_dir / "driver.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.close(null)
        if sys.path and sys.path[0] == os.getcwd():
            sys.path[0] = str(run_dir)  # as `python -m` started in the run folder has it
        os.chdir(run_dir)
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in env.items()})
        import dask

        dask.config.refresh()  # DASK_* variables of this run, not of the agent's start
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()  # a fresh process draws a fresh global seed
        importlib.invalidate_caches()
        sys.argv = [module, oid]
        code = importlib.import_module(module).main([oid])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(int(code or 0))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m switchyard.runs.agent")
    p.add_argument("--home", required=True)
    p.add_argument("--app", required=True)
    p.add_argument("--cython", action="store_true")
    p.add_argument("--mode", choices=("fork", "thread"), default="fork")
    ns = p.parse_args(argv)
    idle = float(os.environ.get(agent.IDLE_ENV) or agent.DEFAULT_IDLE)
    server = AgentServer(Path(ns.home), ns.app, ns.cython, ns.mode, idle)
    stop = lambda signum, frame: setattr(server, "stopping", True)  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    server.warm()
    if not server.bind():
        return 0
    server.serve()
    return 0
