"""A real single-node SLURM on this machine, started by the test suite (Debian's slurm-wlm + munge).

``munged`` with its own key and socket, ``slurmctld`` and one ``slurmd`` (node ``sy-node``,
NodeAddr 127.0.0.1) on free ports, everything in one folder: slurm.conf, state, spool,
logs. In a container without cgroups: ``ProctrackType=proctrack/linuxproc`` and
``TaskPlugin=task/none``. Clients (sbatch, squeue, scancel) find it through ``SLURM_CONF``
(:attr:`SlurmCluster.env`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")
NODE = "sy-node"


def missing() -> str | None:
    """Why this machine cannot run the fixture (a reason for skip), or None."""
    gone = [b for b in BINARIES if not shutil.which(b, path=os.environ.get("PATH", "") + ":/usr/sbin")]
    if gone:
        return f"SLURM is not installed ({', '.join(gone)} missing): apt-get install slurm-wlm munge"
    return None


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


class SlurmCluster:
    """munged + slurmctld + slurmd, with ``cpus`` CPUs declared on the node (overriding what the
    hardware says, so that several one-CPU jobs fit on a 2-core machine)."""

    def __init__(self, root: Path, cpus: int = 8, partition: str = "debug"):
        self.root = Path(root)
        self.cpus = cpus
        self.partition = partition
        self.procs: list[subprocess.Popen] = []
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs over its environment (sbatch etc. on PATH, SLURM_CONF)."""
        path = os.environ.get("PATH", "")
        return {"SLURM_CONF": str(self.conf), "PATH": path if "/usr/sbin" in path else f"{path}:/usr/sbin"}

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(list(argv), env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=30, check=check)

    def start(self, timeout: float = 60) -> "SlurmCluster":
        for d in ("munge", "state", "spool", "log"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        ctld_port, d_port = _free_ports(2)
        host = socket.gethostname().split(".")[0]
        r = self.root
        self.conf.write_text("\n".join([
            "ClusterName=sytest", f"SlurmctldHost={host}(127.0.0.1)", f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={d_port}", "SlurmUser=root", "SlurmdUser=root",
            "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={r}/state", f"SlurmdSpoolDir={r}/spool/%n",
            f"SlurmctldPidFile={r}/slurmctld.pid", f"SlurmdPidFile={r}/slurmd-%n.pid",
            f"SlurmctldLogFile={r}/log/slurmctld.log", f"SlurmdLogFile={r}/log/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SwitchType=switch/none",
            "MpiDefault=none", "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none", "JobCompType=jobcomp/none",
            "SchedulerType=sched/builtin", "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
            "SlurmdParameters=config_overrides", "ReturnToService=2", "KillWait=2", "MinJobAge=5",
            "SlurmctldTimeout=30", "SlurmdTimeout=30", "InactiveLimit=0", "Waittime=0",
            "SlurmctldDebug=info", "SlurmdDebug=info",
            f"NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={host} CPUs={self.cpus} RealMemory=16000 State=UNKNOWN",
            f"PartitionName={self.partition} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))
        env = {**os.environ, **self.env}
        self._spawn(["munged", "-F", f"--key-file={key}", f"--socket={self.munge_socket}",
                     f"--pid-file={r}/munge/munged.pid", f"--log-file={r}/log/munged.log",
                     f"--seed-file={r}/munge/munge.seed", "--force"], env)
        self._wait(lambda: self.munge_socket.exists(), timeout, "munged")
        self._spawn(["slurmctld", "-D", "-i", "-f", str(self.conf)], env)
        self._wait(lambda: self.run("sinfo", "-h", check=False).returncode == 0, timeout, "slurmctld")
        self._spawn(["slurmd", "-D", "-N", NODE, "-f", str(self.conf)], env)
        self._wait(lambda: self.run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
                   in ("idle", "mixed", "allocated"), timeout, "slurmd")
        return self

    def _spawn(self, argv: list[str], env: dict) -> None:
        name = Path(argv[0]).name
        out = open(self.root / "log" / f"{name}.out", "ab")
        self.procs.append(subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, start_new_session=True))
        out.close()

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                break
            time.sleep(0.2)
        logs = "\n".join(f"--- {p.name}\n" + p.read_text()[-2000:] for p in sorted((self.root / "log").glob("*"))
                         if p.is_file())
        self.stop()
        raise RuntimeError(f"{what} did not come up in {timeout:g} s:\n{logs}")

    def jobs(self, name: str | None = None) -> list[dict]:
        """The jobs squeue lists (id, name, state, node), all of them or those named ``name``."""
        argv = ["squeue", "-h", "-o", "%i|%j|%T|%N"] + (["--name", name] if name else [])
        out = self.run(*argv).stdout
        return [dict(zip(("id", "name", "state", "node"), line.split("|"))) for line in out.splitlines() if line]

    def stop(self) -> None:
        if any(p.poll() is None for p in self.procs):
            self.run("scancel", "--user", str(os.getuid()), check=False)
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5)
        self.procs.clear()
