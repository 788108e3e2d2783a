"""A real OpenSSH server on loopback addresses, started by the test suite as the current user.

Each address (127.0.0.2, 127.0.0.3, ...) stands for a separate "host": tests
give each its own install root. One address can be made to refuse the test
key (``refuse``): sshd then looks up a different authorized_keys file for
connections to it, so only that "host" fails authentication.
"""

from __future__ import annotations

import getpass
import shlex
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def _port_free_on(addresses: list[str], port: int) -> bool:
    for address in addresses:
        with socket.socket() as s:
            try:
                s.bind((address, port))
            except OSError:
                return False
    return True


def free_port(addresses: list[str]) -> int:
    """A port that is free on every one of ``addresses``."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((addresses[0], 0))
            port = s.getsockname()[1]
        if _port_free_on(addresses, port):
            return port
    raise RuntimeError(f"no port free on all of {addresses}")


def keygen(path: Path, comment: str) -> Path:
    if path.exists():
        return path
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)
    return path


class SSHServer:
    """``sshd -D`` listening on ``addresses`` at one port, key auth only.

    Attributes:
        client_key: Private key authorized on every address except ``refuse``.
        other_key: A key authorized nowhere but on ``refuse`` (a "wrong" key elsewhere).
        known_hosts: A known_hosts file that trusts this server on every address.
        port: The port every address listens on.
    """

    def __init__(self, root: Path, addresses: list[str], refuse: str | None = None,
                 hide: list[Path] | None = None):
        if not Path(SSHD).exists():
            raise RuntimeError(f"{SSHD} is missing: apt-get install openssh-server")
        self.root = Path(root)
        self.addresses = list(addresses)
        self.refuse = refuse
        self.hide = [Path(p) for p in hide or []]  # folders its sessions see empty (its own mount namespace)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.root.mkdir(parents=True, exist_ok=True)
        self.host_key = keygen(self.root / "host_ed25519", "test-host")
        self.client_key = keygen(self.root / "client_ed25519", "test-client")
        self.other_key = keygen(self.root / "other_ed25519", "other-client")
        self.known_hosts = self.root / "known_hosts"
        self.log = self.root / "sshd.log"

    # Set before start(): every command a client asks to run is appended there (NUL-separated)
    # by a ForceCommand wrapper, then run: what a host's `ps` would have shown.
    record: Path | None = None

    def commands(self) -> list[str]:
        """The commands recorded so far (see ``record``)."""
        if self.record is None or not self.record.exists():
            return []
        return [c for c in self.record.read_text().split("\0") if c]

    def host_public_key(self) -> str:
        return " ".join(Path(f"{self.host_key}.pub").read_text().split()[:2])

    def known_hosts_line(self, address: str) -> str:
        return f"[{address}]:{self.port} {self.host_public_key()}\n"

    def start(self) -> "SSHServer":
        authorized = self.root / "authorized_keys"
        authorized.write_text(Path(f"{self.client_key}.pub").read_text())
        refused = self.root / "authorized_keys_other"
        refused.write_text(Path(f"{self.other_key}.pub").read_text())
        self.port = free_port(self.addresses)
        lines = [f"ListenAddress {a}:{self.port}" for a in self.addresses] + [
            f"HostKey {self.host_key}",
            f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "MaxStartups 100",
            "MaxSessions 100",
            "LogLevel VERBOSE",
            "Subsystem sftp internal-sftp",
        ]
        if self.record is not None:
            wrapper = self.root / "record-command"
            wrapper.write_text(
                "#!/bin/sh\n"
                f"printf '%s\\0' \"$SSH_ORIGINAL_COMMAND\" >> '{self.record}'\n"
                'case "$SSH_ORIGINAL_COMMAND" in sftp|internal-sftp) exec /usr/lib/openssh/sftp-server ;; esac\n'
                'exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n')
            wrapper.chmod(0o755)
            lines.append(f"ForceCommand {wrapper}")
        if self.refuse:
            lines += [f"Match LocalAddress {self.refuse}", f"  AuthorizedKeysFile {refused}"]
        config = self.root / "sshd_config"
        config.write_text("\n".join(lines) + "\n")
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
        check = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"sshd refused its config: {check.stderr.strip()}")
        command = [SSHD, "-D", "-e", "-f", str(config)]
        if self.hide:
            # A host that does not share this file system: sshd and everything started through it
            # live in a mount namespace where each hidden folder is an empty tmpfs.
            for folder in self.hide:
                folder.mkdir(parents=True, exist_ok=True)
            mounts = " && ".join(f"mount -t tmpfs -o size=1m,mode=0700 hidden {shlex.quote(str(f))}"
                                 for f in self.hide)
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", f'{mounts} && exec "$@"',
                       "sh", *command]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.known_hosts.write_text("".join(self.known_hosts_line(a) for a in self.addresses))
        self._wait_listening()
        return self

    def _wait_listening(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        pending = list(self.addresses)
        while pending:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection((pending[0], self.port), timeout=1):
                    pending.pop(0)
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sshd does not listen on {pending[0]}:{self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def __enter__(self) -> "SSHServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def ssh_settings_toml(server: SSHServer, roots: dict[str, Path], key: Path | None = None,
                      known_hosts: Path | None = None, extra_hosts: dict[str, dict] | None = None) -> str:
    """The ``[cluster.ssh]`` and ``[cluster.hosts."<host>"]`` tables for an app_settings.toml."""

    def q(value: object) -> str:
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = ["[cluster.ssh]", f"user = {q(getpass.getuser())}", f"port = {server.port}",
           f"key_path = {q(key or server.client_key)}",
           f"known_hosts = {q(known_hosts or server.known_hosts)}", ""]
    hosts = {h: {"root": str(r)} for h, r in roots.items()}
    for host, values in (extra_hosts or {}).items():
        hosts.setdefault(host, {}).update(values)
    for host, values in hosts.items():
        out.append(f'[cluster.hosts."{host}"]')
        out += [f"{k} = {v if isinstance(v, int) else q(v)}" for k, v in values.items()]
        out.append("")
    return "\n".join(out)


def running(pids: list[int]) -> list[int]:
    """The live (not zombie) processes among ``pids`` and in their process groups."""
    wanted = set(pids)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and (int(entry.name) in wanted or int(fields[2]) in wanted):
            found.append(int(entry.name))
    return found
