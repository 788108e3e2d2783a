"""Where batches execute: in the driver process, or on a Dask cluster.

Both executors offer the same calls (``submit``, ``wait``, ``outcome``,
``running``, ``cancel``, ``stop``, ``busy_keys``, ``close``) so the driver loop does not
care which one it drives. ``running`` tells which submitted batches have really started
(a Dask worker holds many queued tasks but executes one per thread): the driver
shows only those as running, and on pause cancels the others. ``stop`` is cancel for
good: it returns once nothing of the given keys executes any more (a running Python
function cannot be interrupted, so on a cluster Switchyard started the worker
processes still executing one are killed and their nannies start new ones), or says
which may still execute (a scheduler Switchyard does not control).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Collection, Iterable

from switchyard.runs.task import BatchOutcome, BatchSpec, Partition, run_batch

# How long the driver waits for the workers to say what they execute before
# assuming nothing (a dying worker must not stall a pause).
RUNNING_QUERY_TIMEOUT = 3.0
STOP_GRACE = 0.5  # a cancelled batch that ends by itself within this is not worth a worker restart
STOP_TIMEOUT = 60.0  # how long ``stop`` makes sure before it says what may still execute


class ExecutingUnknown(Exception):
    """The workers could not be asked what they execute (a dead worker, a gone scheduler)."""


class Completions:
    """Futures in the order they finish, fed by their done-callbacks.

    Waiting costs nothing per future still in flight (``distributed.wait`` would watch
    every one of them again on each call: quadratic with thousands of tiny batches).
    """

    def __init__(self) -> None:
        self._done: queue.Queue = queue.Queue()

    def watch(self, future: Any) -> Any:
        future.add_done_callback(self._done.put)
        return future

    def wait(self, futures: Collection, timeout: float, linger: float = 0.0) -> list[Any]:
        """Futures of ``futures`` that finished, waiting up to ``timeout`` s for the first one,
        then up to ``linger`` s more for others to finish with it (unless all of ``futures``
        did): one gather and one store commit for several batches instead of one each.
        Finished futures not in ``futures`` (cancelled, forgotten) are dropped."""
        try:
            got = [f for f in (self._done.get(timeout=timeout),) if f in futures]
        except queue.Empty:
            return []
        until = time.monotonic() + linger
        while True:
            try:
                f = self._done.get_nowait()
            except queue.Empty:
                left = until - time.monotonic()
                if left <= 0 or len(got) >= len(futures):
                    return got
                try:
                    f = self._done.get(timeout=left)
                except queue.Empty:
                    return got
            if f in futures:
                got.append(f)


def _one_by_one(futures: list[Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for f in futures:
        try:
            out[f] = f.result()
        except BaseException as e:
            out[f] = e
    return out


class LocalExecutor:
    """Batches one after another in a thread of the driver process (modes without the dask bit)."""

    def __init__(self) -> None:
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")
        self.slots: list[str] = ["driver"]
        self._keys: dict[Any, str] = {}
        self._completions = Completions()

    def submit(self, spec: BatchSpec, idx: int, partition: Partition, slot: str | None, key: str) -> Any:
        fut = self._pool.submit(run_batch, spec, idx, partition)
        self._keys[fut] = key
        fut.add_done_callback(lambda f: self._keys.pop(f, None))
        return self._completions.watch(fut)

    def submit_many(self, spec: BatchSpec, batches: list[tuple[int, Partition, str | None, str]]) -> list[Any]:
        """Submit (idx, partition, slot, key) batches; their futures in the same order."""
        return [self.submit(spec, idx, part, slot, key) for idx, part, slot, key in batches]

    def wait(self, futures: Collection, timeout: float, linger: float = 0.0) -> list[Any]:
        """The futures of ``futures`` that finished, waiting up to ``timeout`` s for one (and
        ``linger`` s for more: :meth:`Completions.wait`)."""
        return self._completions.wait(futures, timeout, linger)

    def outcome(self, future: Any) -> BatchOutcome:
        return future.result()

    def outcomes(self, futures: list[Any]) -> dict[Any, BatchOutcome | BaseException]:
        """Finished future -> its outcome, or the exception it ended with."""
        return _one_by_one(futures)

    def running(self, futures: Iterable[Any], strict: bool = False) -> dict[Any, str]:
        return {f: "driver" for f in futures if f.running()}

    def busy_keys(self, strict: bool = False) -> set[str]:
        return {key for f, key in list(self._keys.items()) if f.running()}

    def cancel(self, futures: Iterable[Any]) -> list[Any]:
        """Cancel the futures; return those that could not be (already executing)."""
        return [f for f in futures if not f.cancel() and not f.done()]

    def stop(self, futures: Iterable[Any], prefix: str, timeout: float = STOP_TIMEOUT) -> dict[str, str]:
        """Cancel for good; the batch executing in the driver's thread cannot be interrupted:
        wait up to ``timeout`` s for it. Returns key -> "driver" of the one still executing."""
        self.cancel(futures)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = {k: "driver" for k in self.busy_keys() if k.startswith(prefix)}
            if not left:
                return {}
            time.sleep(0.1)
        return left

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        from switchyard.runs import task

        task.shutdown()


def _executing_keys(dask_worker) -> list[str]:
    """Run on each worker: keys of the tasks its threads are executing right now.

    A cancelled task whose thread still runs counts too: it occupies the worker until
    it returns, even though its result will be dropped.
    """
    keys = []
    for ts in list(dask_worker.state.tasks.values()):
        if ts.state in ("executing", "long-running") or (
            ts.state in ("cancelled", "resumed") and ts.previous in ("executing", "long-running")
        ):
            keys.append(str(ts.key))
    return keys


def _kill_self(dask_worker) -> int:
    """Run on a worker: SIGKILL its process tree a moment after answering (the batch's thread
    cannot be interrupted); its nanny starts a new worker process."""
    import psutil

    me = psutil.Process()
    tree = me.children(recursive=True)

    def kill() -> None:
        for p in tree:
            try:
                p.kill()
            except psutil.Error:
                pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Timer(0.05, kill).start()
    return os.getpid()


def _cancel_prefix(prefix: str, dask_scheduler=None) -> int:
    """Run on the scheduler: forget every task whose key starts with ``prefix``, for whichever
    client holds it, finished ones too (their results are checkpointed already; kept in a
    worker's memory, a restart of that worker would have them computed again)."""
    s = dask_scheduler
    by_client: dict[str, list] = {}
    for key, ts in list(s.tasks.items()):
        if str(key).startswith(prefix):
            for cs in ts.who_wants or ():
                by_client.setdefault(cs.client_key, []).append(key)
    for client, keys in by_client.items():
        s.stimulus_cancel(keys, client, force=True, reason="cancelled by Switchyard",
                          msg="its orchestration was cancelled")
    return sum(map(len, by_client.values()))


def _requeue_stranded(dask_scheduler) -> int:
    """Run on the scheduler: tasks whose preferred (allowed-other) worker was restarted wait in
    ``no-worker`` for a worker of that old address, and a worker that joins later does not
    pick them up (Dask checks only strict restrictions then): send them to the running ones."""
    s = dask_scheduler
    if not s.running:
        return 0
    recs = {ts.key: "processing" for ts in list(s.unrunnable) if ts.loose_restrictions}
    if recs:
        s.transitions(recs, stimulus_id=f"switchyard-requeue-{time.time()}")
    return len(recs)


def recorded_schedulers(home: Path | str) -> set[str]:
    """Scheduler addresses of the warm clusters recorded in the workspace ``home``."""
    out = set()
    for path in Path(home, "clusters").glob("*.json"):
        try:
            out.add(str(json.loads(path.read_text())["address"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


def _bare(address: str) -> str:
    return address.split("://", 1)[-1]


# Set to a dict by a resident process that runs drivers in threads (the run agent's
# ``thread`` design): clients stay connected per scheduler address across runs.
SHARED_CLIENTS: dict[str, Any] | None = None


class DaskExecutor:
    """Batches on a Dask cluster; each goes to its planned worker slot when that worker exists."""

    def __init__(self, address: str, on_line: Callable[[str], None], slot_names: list[str],
                 controlled: bool | None = None):
        """``controlled``: whether Switchyard started this cluster (so ``stop`` may kill
        worker processes); None: when a warm-cluster record of the workspace names it."""
        from switchyard.cluster.connect import connect

        self._shared = SHARED_CLIENTS is not None
        if self._shared:
            client = SHARED_CLIENTS.get(address)
            if client is None or client.status != "running":
                client = SHARED_CLIENTS[address] = connect(address)
            self.client = client
        else:
            self.client = connect(address, set_as_default=True)
        self.on_line = on_line
        info = self.client.scheduler_info()["workers"]
        by_name = {str(w.get("name")): addr for addr, w in info.items()}
        self.names = {addr: name for name, addr in by_name.items()}
        addrs = sorted(info)
        self.slot_to_address: dict[str, str] = {}
        for i, slot in enumerate(slot_names):
            if slot in by_name:
                self.slot_to_address[slot] = by_name[slot]
            elif addrs:  # an existing cluster with other worker names: spread the slots over it
                self.slot_to_address[slot] = addrs[i % len(addrs)]
        self.slots = list(by_name) or addrs
        self._completions = Completions()
        if controlled is None:
            from switchyard import workspace

            controlled = _bare(address) in {_bare(a) for a in recorded_schedulers(workspace.home())}
        self.controlled = controlled
        self.address = address

    def submit(self, spec: BatchSpec, idx: int, partition: Partition, slot: str | None, key: str) -> Any:
        address = self.slot_to_address.get(slot or "")
        # allow_other_workers: the planned worker is a preference; if it dies (or restarts
        # under a new address) its batches run elsewhere.
        return self._completions.watch(self.client.submit(
            run_batch, spec, idx, partition, key=key, pure=False,
            workers=[address] if address else None, allow_other_workers=True,
        ))

    def submit_many(self, spec: BatchSpec, batches: list[tuple[int, Partition, str | None, str]]) -> list[Any]:
        """Submit (idx, partition, slot, key) batches with one ``Client.map`` per planned worker
        (one task each, no fusing); their futures in the same order."""
        groups: dict[str | None, list[int]] = {}
        for pos, (_, _, slot, _) in enumerate(batches):
            groups.setdefault(self.slot_to_address.get(slot or ""), []).append(pos)
        out: list[Any] = [None] * len(batches)
        for address, positions in groups.items():
            chosen = [batches[p] for p in positions]
            futs = self.client.map(
                run_batch, [spec] * len(chosen), [b[0] for b in chosen], [b[1] for b in chosen],
                key=[b[3] for b in chosen], pure=False, workers=[address] if address else None,
                allow_other_workers=bool(address))
            for p, fut in zip(positions, futs):
                out[p] = self._completions.watch(fut)
        return out

    def submit_backup(self, spec: BatchSpec, idx: int, partition: Partition, worker: str, key: str) -> Any:
        """Submit a backup copy of a batch to the worker named ``worker`` only (no stealing
        moves it: it is there because that worker is free)."""
        address = next((a for a, n in self.names.items() if n == worker), None)
        return self._completions.watch(self.client.submit(
            run_batch, spec, idx, partition, key=key, pure=False,
            workers=[address] if address else None, allow_other_workers=address is None))

    def observe(self, futures: Iterable[Any]) -> tuple[dict[Any, str], dict[str, int]]:
        """One look at the cluster: future -> worker name of those of ``futures`` executing, and
        worker name -> threads executing nothing (of any run). ({}, {}) when the workers cannot
        be asked: never "all free" on a failed query."""
        try:
            executing = self._executing(strict=True)
            info = self.client.scheduler_info()["workers"]
        except Exception:  # ExecutingUnknown, or the scheduler went away
            return {}, {}
        free: dict[str, int] = {}
        for addr, w in info.items():
            name = self.names[addr] = str(w.get("name"))
            free[name] = int(w.get("nthreads") or 1)
        for worker in executing.values():
            if worker in free:
                free[worker] -= 1
        by_key = {f.key: f for f in futures}
        running = {by_key[k]: w for k, w in executing.items() if k in by_key}
        return running, {w: n for w, n in free.items() if n > 0}

    def wait(self, futures: Collection, timeout: float, linger: float = 0.0) -> list[Any]:
        """The futures of ``futures`` that finished, waiting up to ``timeout`` s for one (and
        ``linger`` s for more: :meth:`Completions.wait`)."""
        return self._completions.wait(futures, timeout, linger)

    def outcome(self, future: Any) -> BatchOutcome:
        return future.result()

    def outcomes(self, futures: list[Any]) -> dict[Any, BatchOutcome | BaseException]:
        """Finished future -> its outcome, or the exception it ended with: one ``gather`` for
        all (a ``result()`` each would be a round trip to the workers each); when one of
        them failed (a lost worker, a cancelled task), each is asked on its own."""
        if not futures:
            return {}
        try:
            out = dict(zip(futures, self.client.gather(list(futures), errors="raise")))
        except BaseException:
            out = _one_by_one(futures)
        # Gathered: the cluster need not keep them. Held, a finished batch whose worker is then
        # restarted (to stop a losing backup copy, or a cancelled batch) is executed again.
        for f in futures:
            f.release()
        return out

    def _executing(self, strict: bool = False) -> dict[str, str]:
        """Key -> worker name of every task executing on the cluster ({} if the workers do
        not answer in time, or with ``strict`` ExecutingUnknown)."""
        return {k: self.names.get(a) or self._name_of(a) for k, a in self._executing_at(strict).items()}

    def _executing_at(self, strict: bool) -> dict[str, str]:
        """Key -> worker address of every task executing on the cluster."""
        try:
            got = self.client.sync(self.client._run, _executing_keys, on_error="return",
                                   callback_timeout=RUNNING_QUERY_TIMEOUT)
        except Exception as e:  # a worker died mid-call, the scheduler is gone, timeout
            self.on_line(f"driver: could not ask the workers what they execute: {type(e).__name__}: {e}")
            if strict:
                raise ExecutingUnknown(f"{type(e).__name__}: {e}") from e
            return {}
        out = {}
        for addr, keys in (got or {}).items():
            if isinstance(keys, BaseException):
                if strict:
                    raise ExecutingUnknown(f"worker {addr} did not answer: {type(keys).__name__}: {keys}")
                continue
            for key in keys:
                out[key] = addr
        return out

    def _name_of(self, addr: str) -> str:
        # A restarted worker comes back under a new address with its old name.
        try:
            info = self.client.scheduler_info()["workers"]
            self.names.update({a: str(w.get("name")) for a, w in info.items()})
        except Exception:
            pass
        return self.names.get(addr, addr)

    def running(self, futures: Iterable[Any], strict: bool = False) -> dict[Any, str]:
        """Future -> worker name of those executing; ``strict``: ExecutingUnknown when the
        workers cannot be asked (instead of "none")."""
        by_key = {f.key: f for f in futures}
        if not by_key:
            return {}
        return {by_key[k]: w for k, w in self._executing(strict).items() if k in by_key}

    def busy_keys(self, strict: bool = False) -> set[str]:
        return set(self._executing(strict))

    def cancel(self, futures: Iterable[Any]) -> list[Any]:
        """Cancel the futures on the cluster (queued ones never start); return []: a task
        already executing finishes in its thread but its result is dropped."""
        futures = list(futures)
        if futures:
            self.client.cancel(futures, force=True)
        return []

    def stop(self, futures: Iterable[Any], prefix: str, timeout: float = STOP_TIMEOUT) -> dict[str, str]:
        """Cancel the futures and return once no task whose key starts with ``prefix``
        executes on any worker (asked of the workers themselves).

        A task still executing after :data:`STOP_GRACE` cannot be interrupted: on a cluster
        Switchyard controls, the worker process executing it is killed and its nanny starts a
        new one (tasks of other runs it held go back to the scheduler, which runs them
        elsewhere: no attempt of theirs is used). Returns key -> worker of the tasks that may
        still execute: on a scheduler Switchyard does not control, or when a worker could not
        be asked or would not die within ``timeout`` s.
        """
        self.cancel(futures)
        try:
            self.client.run_on_scheduler(_cancel_prefix, prefix)
        except Exception as e:  # the scheduler is gone: nothing of it executes there any more
            self.on_line(f"driver: could not cancel on the scheduler: {type(e).__name__}: {e}")
        deadline = time.monotonic() + timeout
        grace_until = time.monotonic() + STOP_GRACE
        killed: set[str] = set()
        left: dict[str, str] = {}
        workers = len(self.client.scheduler_info().get("workers", {}))
        while time.monotonic() < deadline:
            try:
                left = {k: a for k, a in self._executing_at(strict=True).items() if k.startswith(prefix)}
            except ExecutingUnknown as e:
                left = {"?": str(e)}
                time.sleep(0.2)
                continue
            if not left:
                if killed:
                    self._after_restarts(workers, deadline)
                return {}
            if not self.controlled:
                break
            if time.monotonic() >= grace_until:
                for addr in sorted(set(left.values()) - killed):
                    self._restart(addr, [k for k, a in left.items() if a == addr])
                    killed.add(addr)
            time.sleep(0.1)
        out = {k: (self.names.get(a) or a) for k, a in left.items()}
        if out and not self.controlled:
            self.on_line(f"driver: the scheduler at {self.address} is not one Switchyard started, so its "
                         f"workers are not restarted: {len(out)} cancelled batches may still execute "
                         f"({', '.join(f'{k} on {w}' for k, w in sorted(out.items()))}); their results "
                         "are dropped")
        elif out:
            self.on_line(f"driver: {len(out)} cancelled batches still execute after {timeout:g} s "
                         f"({', '.join(f'{k} on {w}' for k, w in sorted(out.items()))})")
        return out

    def _after_restarts(self, workers: int, deadline: float) -> None:
        """Wait for the restarted workers to join again, then hand them the other runs' tasks
        that waited for the old ones (none of their attempts is used)."""
        try:
            while (len(self.client.scheduler_info().get("workers", {})) < workers
                   and time.monotonic() < deadline):
                time.sleep(0.1)
            moved = self.client.run_on_scheduler(_requeue_stranded)
        except Exception as e:  # the scheduler went away meanwhile: nothing is left to move
            self.on_line(f"driver: after the restarts: {type(e).__name__}: {e}")
            return
        if moved:
            self.on_line(f"driver: {moved} batches of other runs that waited for a restarted worker "
                         "go to the running workers")

    def _restart(self, addr: str, keys: list[str]) -> None:
        """Kill the worker process at ``addr`` (its nanny starts a new one)."""
        name = self.names.get(addr) or addr
        nanny = (self.client.scheduler_info().get("workers", {}).get(addr) or {}).get("nanny")
        if not nanny:
            self.on_line(f"driver: worker {name} has no nanny to restart it: its cancelled batches "
                         f"{', '.join(keys)} run to their end")
            return
        self.on_line(f"driver: restarting worker {name}: it still executes cancelled batches "
                     f"{', '.join(keys)}")
        try:
            self.client.run(_kill_self, workers=[addr], on_error="return")
        except Exception as e:  # it died on its own meanwhile
            self.on_line(f"driver: restarting worker {name}: {type(e).__name__}: {e}")

    def close(self) -> None:
        if not self._shared:
            self.client.close(timeout=10)
