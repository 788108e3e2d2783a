"""Where batches execute: in the driver process, or on a Dask cluster.

Both executors offer the same three calls (``submit``, ``wait``, ``cancel``) so
the driver loop does not care which one it drives.
"""

from __future__ import annotations

import concurrent.futures as cf
from typing import Any, Callable, Iterable

from switchyard.runs.task import BatchOutcome, BatchSpec, Partition, run_batch


class LocalExecutor:
    """Batches one after another in a thread of the driver process (modes without the dask bit)."""

    def __init__(self) -> None:
        self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")
        self.slots: list[str] = ["driver"]

    def submit(self, spec: BatchSpec, idx: int, partition: Partition, slot: str | None, key: str) -> Any:
        return self._pool.submit(run_batch, spec, idx, partition)

    def wait(self, futures: Iterable[Any], timeout: float) -> list[Any]:
        done, _ = cf.wait(list(futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return list(done)

    def outcome(self, future: Any) -> BatchOutcome:
        return future.result()

    def cancel(self, futures: Iterable[Any]) -> None:
        for f in futures:
            f.cancel()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        from switchyard.runs import task

        task.shutdown()


class DaskExecutor:
    """Batches on a Dask cluster; each goes to its planned worker slot when that worker exists."""

    def __init__(self, address: str, on_line: Callable[[str], None], slot_names: list[str]):
        from distributed import Client

        self.client = Client(address, timeout=30)
        self.on_line = on_line
        info = self.client.scheduler_info()["workers"]
        by_name = {str(w.get("name")): addr for addr, w in info.items()}
        addrs = sorted(info)
        self.slot_to_address: dict[str, str] = {}
        for i, slot in enumerate(slot_names):
            if slot in by_name:
                self.slot_to_address[slot] = by_name[slot]
            elif addrs:  # an existing cluster with other worker names: spread the slots over it
                self.slot_to_address[slot] = addrs[i % len(addrs)]
        self.slots = list(by_name) or addrs

    def submit(self, spec: BatchSpec, idx: int, partition: Partition, slot: str | None, key: str) -> Any:
        address = self.slot_to_address.get(slot or "")
        return self.client.submit(
            run_batch, spec, idx, partition, key=key, pure=False,
            workers=[address] if address else None, allow_other_workers=True,
        )

    def wait(self, futures: Iterable[Any], timeout: float) -> list[Any]:
        from distributed import wait
        from distributed.utils import TimeoutError as DaskTimeout

        futures = list(futures)
        if not futures:
            return []
        try:
            done, _ = wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")
        except (DaskTimeout, TimeoutError):
            return [f for f in futures if f.done()]
        return list(done)

    def outcome(self, future: Any) -> BatchOutcome:
        return future.result()

    def cancel(self, futures: Iterable[Any]) -> None:
        futures = list(futures)
        if futures:
            self.client.cancel(futures, force=True)

    def close(self) -> None:
        self.client.close(timeout=10)
