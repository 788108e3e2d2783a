"""The processes of one :class:`~switchyard.cluster.spec.ClusterSpec` on its hosts: the
thin I/O around :func:`~switchyard.cluster.spec.reconcile`.

:meth:`Deployment.launch` looks at what runs (the recorded processes, the workers the
scheduler has), asks reconcile what to do, stops and starts accordingly;
:meth:`Deployment.wait` waits until every started worker joined, naming the ones that
exited or are late. :meth:`Deployment.apply` is both, undoing what it started when
they fail. Both front doors use it: the run's local cluster (captured processes here)
and the warm cluster (detached processes, here or over SSH, recorded between commands).
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from switchyard.cluster import tls
from switchyard.cluster.addresses import answers, port_is_free, split_address
from switchyard.cluster.hosts import Hosts
from switchyard.cluster.procs import Process, close_all, start_all, states_of
from switchyard.cluster.spec import (SCHEDULER, ClusterSpec, Instructions, Running, reconcile, scheduler_argv,
                                     worker_argv, worker_env)
from switchyard.exceptions import ClusterError
from switchyard.logs import last_lines

Line = Callable[[str], None]
SCHEDULER_TIMEOUT = 30.0  # seconds a scheduler has to write its address file, at least


def scheduler_info(source, timeout: float = 10, processing: bool = False) -> dict:
    """The scheduler's identity with every worker, from a ``distributed.Client`` or an address.

    With ``processing``, ``info["processing"]`` is worker address -> number of tasks on it.
    """
    if isinstance(source, str):
        from switchyard.cluster.connect import connect

        with connect(source, timeout=timeout) as client:
            return scheduler_info(client, processing=processing)
    try:
        info = source.scheduler_info(n_workers=-1)
    except TypeError:  # distributed before n_workers= listed every worker anyway
        info = source.scheduler_info()
    if processing:
        info["processing"] = {k: len(v) for k, v in source.processing().items()}
    return info


def names_of(info: dict) -> dict[str, str]:
    """Worker name -> address, from :func:`scheduler_info`."""
    return {str(w.get("name")): addr for addr, w in info.get("workers", {}).items()}


class Deployment:
    """A spec made real: its scheduler and worker processes, what this call started.

    Args:
        spec: What should run.
        hosts: The connections of the current action.
        say: Receives one line per step (``scheduler at ...``, ``host h: started ...``).
        capture: Capture the processes' output into this callback (this machine only);
            None starts them detached, with a log file each.
        scheduler, workers, address: What a record says runs already (a warm cluster).
        scheduler_timeout: Seconds a new scheduler has to listen (at least 30).
        home: The workspace whose certificates this process's clients of the cluster present.
    """

    def __init__(self, spec: ClusterSpec, hosts: Hosts, say: Line, *, capture: Line | None = None,
                 scheduler: Process | None = None, workers: list[Process] | None = None,
                 address: str | None = None, dashboard: str | None = None,
                 scheduler_timeout: float = SCHEDULER_TIMEOUT, home=None):
        self.spec = spec
        self.hosts = hosts
        self.say = say
        self.capture = capture
        self.scheduler = scheduler
        self.workers: dict[str, Process] = {p.name: p for p in workers or []}
        self.address = address
        self.dashboard = dashboard
        self.scheduler_timeout = max(SCHEDULER_TIMEOUT, scheduler_timeout)
        self.home = home
        if address:
            tls.remember_home(address, home)
        self.begun: list[Process] = []  # started by this call, not yet joined

    @property
    def processes(self) -> list[Process]:
        return ([self.scheduler] if self.scheduler else []) + list(self.workers.values())

    # ------------------------------------------------------------------------- steps
    async def observe(self) -> Running:
        """What runs: the recorded processes, whether the scheduler answers, who joined it."""
        up = bool(self.address) and answers(self.address)
        joined: frozenset[str] = frozenset()
        if up:
            try:
                joined = frozenset(names_of(await asyncio.to_thread(scheduler_info, self.address)))
            except (OSError, TimeoutError) as e:
                raise ClusterError(f"cannot reach the scheduler at {self.address}: {e}: see its log") from e
        return Running(scheduler=self.scheduler is not None, answers=up, address=self.address,
                       workers={name: p.host for name, p in self.workers.items()}, joined=joined)

    async def launch(self) -> Instructions:
        """Reconcile once: stop what is not wanted, start what is missing (without waiting)."""
        todo = reconcile(self.spec, await self.observe())
        for note in todo.notes:
            self.say(note)
        stopping = [self.workers.pop(name) for name in todo.stop if name in self.workers]
        if stopping:
            await close_all(stopping)
        if SCHEDULER in todo.stop and self.scheduler is not None:
            await close_all([self.scheduler])
            self.scheduler, self.address, self.dashboard = None, None, None
        if todo.start_scheduler:
            await self._start_scheduler()
        if todo.start:
            await self._start_workers(list(todo.start))
        return todo

    async def wait(self, timeout: float) -> dict[str, str]:
        """Wait until every worker this call started joined; name -> address of each.

        Raises:
            ClusterError: Workers exited before joining or did not join in time (named,
                with their last output lines and their hosts).
        """
        new = [p for p in self.begun if p.name != SCHEDULER]
        if not new:
            return {}
        from switchyard.cluster.connect import connect

        started = time.monotonic()
        deadline = started + timeout
        try:
            client = await asyncio.to_thread(connect, self.address, timeout=max(timeout, 10))
        except (OSError, TimeoutError) as e:
            raise ClusterError(f"cannot connect to the scheduler at {self.address}: {e}: "
                               "see the scheduler's log") from e
        try:
            looked = time.monotonic()
            while True:
                joined = names_of(await asyncio.to_thread(scheduler_info, client))
                waiting = [p for p in new if p.name not in joined]
                if not waiting:
                    self.say(f"{len(new)} worker(s) joined in {time.monotonic() - started:.1f} s")
                    return {p.name: joined[p.name] for p in new}
                dead = [p for p in waiting if p.exited()]
                detached = [p for p in waiting if not p.captured]
                if detached and time.monotonic() - looked > 2:
                    looked = time.monotonic()
                    seen = await states_of(detached)
                    dead += [p for p in detached if seen.get(p.name) != "ours"]
                if dead or time.monotonic() > deadline:
                    raise await self._join_error(dead or waiting, bool(dead), timeout)
                await asyncio.sleep(0.1)
        finally:
            await asyncio.to_thread(client.close)

    async def apply(self, join_timeout: float) -> None:
        """:meth:`launch` then :meth:`wait`; on failure, what this call started is stopped again."""
        try:
            await self.launch()
            await self.wait(join_timeout)
        except BaseException:
            await self.undo()
            raise
        self.begun = []

    async def undo(self) -> None:
        """Stop what this call started (workers, then the scheduler); what ran before stays."""
        begun, self.begun = self.begun, []
        if not begun:
            return
        self.say(f"stopping what this start began: {', '.join(p.name for p in begun)}")
        try:
            await close_all([p for p in begun if p.name != SCHEDULER])
            await close_all([p for p in begun if p.name == SCHEDULER])
        except Exception as e:  # the original error matters more
            self.say(f"cleanup failed: {e}")
        for p in begun:
            self.workers.pop(p.name, None)
        if self.scheduler in begun:
            self.scheduler, self.address, self.dashboard = None, None, None

    async def close(self, timeout: float = 10) -> dict[str, str]:
        """Stop every process: workers first (so they do not spend their death timeout
        reconnecting), then the scheduler. name -> outcome (see :func:`close_all`)."""
        result = await close_all(list(self.workers.values()), timeout)
        if self.scheduler is not None:
            result.update(await close_all([self.scheduler], timeout))
        return result

    # ------------------------------------------------------------------------- starting
    def _launch(self, host: str, argv: list[str], name: str) -> dict:
        where = self.spec.hosts[host]
        env = dict(where.env) if name == SCHEDULER else worker_env(self.spec, host, name)
        return {"argv": argv, "cwd": where.folder, "log": f"{where.folder}/{name}.log", "env": env,
                "unset": list(where.unset), "inherit": where.inherit_env,
                "path_first": where.python.rsplit("/", 1)[0] if "/" in where.python else ""}

    def _process(self, name: str, host: str, argv: list[str]) -> Process:
        return Process(name, host, self.hosts, self._launch(host, argv, name), python=self.spec.hosts[host].python,
                       on_line=self.capture)

    async def _start_scheduler(self) -> None:
        spec = self.spec
        name = spec.scheduler_host
        where = spec.hosts[name]
        host = await self.hosts.get(name, where.python)
        port = split_address(spec.scheduler)[1]
        if port and host.local and not port_is_free(where.bind, port):
            self.say(f"port {port} on {where.bind} is busy: the scheduler takes a free port instead")
            port = 0
        dashboard = spec.dashboard
        if dashboard is None:
            dashboard = await host.call("has_module", python=where.python, module="bokeh")
        proc = self._process(SCHEDULER, name, scheduler_argv(spec, port, dashboard))
        started = time.monotonic()
        self.begun.append(proc)
        self.scheduler = proc
        await proc.start()
        limit = self.scheduler_timeout
        found = await host.call("wait_for_file", limit=limit + 30, path=f"{where.folder}/scheduler.json",
                                timeout=limit, proc=proc.recorded.ident())
        info = found["doc"]
        if info is None or not info.get("address"):
            lines = last_lines(await proc.tail(5), 3) or "no output"
            where_log = f": see {proc.recorded.log} on {name}" if proc.recorded.log else ""
            if not found["alive"]:
                raise ClusterError(f"the scheduler on {name} exited before listening: {lines}: check that "
                                   f"{where.python} has distributed{where_log}")
            raise ClusterError(f"the scheduler on {name} did not start within {limit:.0f} s: {lines}{where_log}")
        self.address = info["address"]
        tls.remember_home(self.address, self.home)
        dash = (info.get("services") or {}).get("dashboard")
        self.dashboard = f"http://{where.bind}:{dash}/status" if dash else None
        self.say(f"scheduler at {self.address} on {name} in {time.monotonic() - started:.1f} s (pid {proc.pid})")

    async def _start_workers(self, targets: list[tuple[str, str]]) -> None:
        assert self.address is not None
        procs = [self._process(name, host, worker_argv(self.spec, host, name, self.address))
                 for host, name in targets]
        self.begun += procs
        try:
            await start_all(procs)
        finally:
            for p in procs:
                if p.recorded is not None:
                    self.workers[p.name] = p
            for host in dict.fromkeys(p.host for p in procs):
                mine = [p for p in procs if p.host == host and p.recorded is not None]
                if mine:
                    self.say(f"host {host}: started {', '.join(f'{p.name} (pid {p.pid})' for p in mine)}")

    async def _join_error(self, culprits: list[Process], exited: bool, timeout: float) -> ClusterError:
        details = []
        for p in culprits[:3]:
            text = " | ".join(s.strip() for s in await p.tail(4) if s.strip())[-300:]
            details.append(f"{p.name}: {text or 'no output'}")
        hosts = ", ".join(dict.fromkeys(p.host for p in culprits))
        why = "exited before joining" if exited else f"did not join within {timeout:g} s"
        python = self.spec.hosts[culprits[0].host].python
        return ClusterError(f"worker(s) {', '.join(p.name for p in culprits)} on host {hosts} {why}: "
                            f"{'; '.join(details)}: check that {hosts} can reach the scheduler at "
                            f"{self.address} and that {python} runs the app")
