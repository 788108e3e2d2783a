"""System settings: mode toggles with a live mode hint, scheduler, workers table; saved with tomlkit."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import streamlit as st

from switchyard.app import AppEnv
from switchyard.exceptions import SwitchyardError, WorkersError
from switchyard.modes import mode_from_flags, mode_hint, mode_string, unsupported_reason
from switchyard.settings import MODE_KEYS, AppSettings, check_scheduler, check_workers, update_cluster
from switchyard.ui.common import file_mtime, show_error

TOGGLE_HELP = {
    "pool": "mode bit 1: a worker runs a partition's items in a process pool",
    "cython": "mode bit 2: compile the app's worker module with Cython",
    "dask": "mode bit 4: run partitions on Dask workers (otherwise one after another in one process)",
    "rapids": "mode bit 8: arrays on the GPU with CuPy; on Dask workers (one per GPU) pandas through "
              "cudf.pandas; needs an NVIDIA GPU on every host that runs batches",
}


def workers_from_rows(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Host -> count from the workers table rows; blank rows are skipped, anything else is checked.

    Raises:
        WorkersError: a blank host with a count, a duplicate host, a count that is not a whole
            number >= 1, or no host at all.
    """
    out: dict[str, int] = {}
    for i, row in enumerate(rows, start=1):
        host = row.get("host")
        count = row.get("count")
        host = "" if host is None or (isinstance(host, float) and math.isnan(host)) else str(host).strip()
        if isinstance(count, float):
            if math.isnan(count):
                count = None
            elif count.is_integer():
                count = int(count)
        if not host and count is None:
            continue
        if not host:
            raise WorkersError(f"workers table row {i}: the host is empty: give a host name or address")
        if host in out:
            raise WorkersError(f"workers table: host '{host}' is listed twice: give each host once")
        if count is None:
            raise WorkersError(f"workers table: host '{host}' has no count: give a whole number >= 1")
        if hasattr(count, "item"):
            count = count.item()  # numpy scalars from the data editor
        out[host] = count
    return check_workers(out, "workers table")


def _gpu_check(app_env: AppEnv, mode: int, workers: dict[str, int], cluster) -> None:
    """Next to the rapids toggle: the GPU probe of each host that runs batches, on request
    (remote hosts are asked over SSH, which takes a moment)."""
    from switchyard.cluster.gpus import problems, probe_hosts

    on_workers = bool(mode & 4)
    hosts = list(workers) if on_workers else ["127.0.0.1"]
    with st.container(key="rapids-check"):
        left, right = st.columns([1, 4], vertical_alignment="center")
        right.caption("GPU check of " + (f"the worker hosts {', '.join(hosts)}" if on_workers
                                         else "this machine (modes 8-11 run in the driver)")
                      + ": the same probe INSTALL and RUN run (nvidia-smi, CuPy's device query)")
        if left.button("Check GPUs", key=f"gpu-check-{app_env.app}"):
            probes = probe_hosts(app_env, hosts, cluster)
            found = problems(probes, workers if on_workers else {}, on_workers, need_packages=True)
            for line in found:
                st.error(line)
            for host, p in probes.items():
                if p.get("gpus"):
                    st.success(f"host '{host}': " + ", ".join(f"GPU {g['index']}: {g['name']}" for g in p["gpus"])
                               + f" (driver {p.get('driver')}, CUDA {p.get('cuda')})")


def _rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    return df.to_dict("records") if len(df) else []


def render(app_env: AppEnv, settings: AppSettings, partitions: int | None) -> None:
    """The System settings section."""
    c = settings.cluster
    # Keyed by the file's mtime: after a save (or an edit elsewhere) the widgets show the file.
    v = f"{app_env.app}-{file_mtime(settings.path)}"
    cols = st.columns(4)
    flags = {}
    for col, name in zip(cols, ("pool", "cython", "dask", "rapids")):
        flags[name] = col.toggle(name, value=getattr(c, name), key=f"set-{name}-{v}", help=TOGGLE_HELP[name])
    scheduler = st.text_input("Scheduler address (host:port)", value=c.scheduler, key=f"set-scheduler-{v}")
    st.caption("Workers per host: one row per host (name, IPv4 or IPv6 address) with its number of "
               "Dask worker processes.")
    table = st.data_editor(
        pd.DataFrame({"host": list(c.workers), "count": list(c.workers.values())}),
        num_rows="dynamic", hide_index=True, key=f"set-workers-{v}",
        column_config={
            "host": st.column_config.TextColumn("host", required=True),
            "count": st.column_config.NumberColumn("count", min_value=1, step=1, format="%d", required=True),
        },
    )
    mode = mode_from_flags(**flags)
    try:
        workers = workers_from_rows(_rows(table))
        workers_problem = None
    except WorkersError as e:
        workers, workers_problem = c.workers, e
    with st.container(key="mode-hint"):
        hint = mode_hint(int(mode), partitions=partitions, workers=workers, pool_size=c.pool_size)
        st.info(hint.replace("_", "\\_"))  # the rdcp string's underscores are not markdown
    reason = unsupported_reason(int(mode))
    if reason:
        st.warning(f"Mode {int(mode)} (`{mode_string(int(mode))}`) cannot run on this machine: {reason}")
    if flags["rapids"]:
        _gpu_check(app_env, int(mode), workers, c)
    if workers_problem is not None:
        show_error(workers_problem, "Correct the workers table; nothing was saved.")
    changes = {name: flags[name] for name in MODE_KEYS if flags[name] != getattr(c, name)}
    if scheduler.strip() != c.scheduler:
        changes["scheduler"] = scheduler.strip()
    if workers_problem is None and workers != c.workers:
        changes["workers"] = workers
    left, right = st.columns([1, 4], vertical_alignment="center")
    save = left.button("Save settings", key=f"set-save-{app_env.app}", type="primary",
                       disabled=not changes and workers_problem is None)
    if changes:
        right.caption(f"unsaved changes: {', '.join(changes)} (the snippets below use the saved file)")
    if save:
        try:
            if workers_problem is not None:
                raise workers_problem
            if "scheduler" in changes:
                changes["scheduler"] = check_scheduler(changes["scheduler"], "scheduler address")
            update_cluster(settings.path, **changes)
        except SwitchyardError as e:
            show_error(e, "Nothing was saved: correct the value and save again.")
            return
        st.session_state[f"settings-saved-{app_env.app}"] = sorted(changes)
        st.rerun()
    saved = st.session_state.pop(f"settings-saved-{app_env.app}", None)
    if saved:
        st.success(f"Saved {', '.join(saved)} to {settings.path}")
