"""SSH to worker hosts with asyncssh: connect, run quoted commands line by line, upload files.

Host keys are always checked against a known_hosts file. An unknown key is refused
with a message showing its fingerprint and how to accept it: :func:`trust_host`
(``switchyard cluster trust APP HOST --fingerprint SHA256:...``) records the key the host
presents only when its fingerprint is the one the operator confirmed.
Passwords are asked for by the caller and kept in this process's memory only
(:func:`remember_password`); they are never written to a file or a log.

Every command is an argument list joined with :func:`shlex.join`, so host names,
paths and arguments reach the remote side as data, never as shell syntax.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import shlex
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import asyncssh

from switchyard import workspace
from switchyard.exceptions import GuardError, HostError
from switchyard.settings import ClusterSettings

DEFAULT_ROOT = "~/.switchyard-worker"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
CONNECT_TIMEOUT = 10.0

# The reasons a host fails, in the operator's words (HostError.reason).
UNREACHABLE = "unreachable"
AUTH_FAILED = "auth failed"
HOST_KEY_UNKNOWN = "host key unknown"
PYTHON_MISSING = "python missing"
DEPENDENCY_FAILED = "dependency failed"
BUILD_FAILED = "build failed"
NOT_READY = "not ready"

Line = Callable[[str], None]

# (user, host, port) -> password; this dict is the only place a password lives.
_passwords: dict[tuple[str, str, int], str] = {}


@dataclass(frozen=True)
class HostAccess:
    """How to reach one host: ``[cluster.ssh]`` merged with ``[cluster.hosts."<host>"]``.

    Attributes:
        host: The host name or address, as written in ``[cluster.workers]``.
        user: The login name.
        port: The SSH port.
        key_path: A private key file; None means ``~/.ssh/id_*`` and the ssh-agent.
        known_hosts: The known_hosts file host keys are checked against.
        root: The install folder on the host (``~`` is the remote home).
        python: The interpreter to build the environment from; None means the same
            path as the local interpreter, else ``python3.X`` / ``python3`` on the host's PATH.
        connect_timeout: Seconds before an unanswered connection counts as unreachable.
    """

    host: str
    user: str
    port: int = 22
    key_path: str | None = None
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    root: str = DEFAULT_ROOT
    python: str | None = None
    connect_timeout: float = CONNECT_TIMEOUT

    @property
    def where(self) -> str:
        """``user@host:port`` for messages."""
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def known_hosts_path(self) -> Path:
        return Path(self.known_hosts).expanduser()

    @property
    def pattern(self) -> str:
        """The host's name in known_hosts: ``host``, or ``[host]:port`` off port 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def access_for(cluster: ClusterSettings, host: str, connect_timeout: float = CONNECT_TIMEOUT) -> HostAccess:
    """The HostAccess of ``host`` from an app's ``[cluster.ssh]`` and ``[cluster.hosts]``."""
    ssh = cluster.ssh
    own = cluster.hosts.get(host)
    return HostAccess(
        host=host,
        user=(own.user if own and own.user else None) or ssh.user or getpass.getuser(),
        port=(own.port if own and own.port else None) or ssh.port,
        key_path=ssh.key_path,
        known_hosts=ssh.known_hosts or DEFAULT_KNOWN_HOSTS,
        root=(own.root if own and own.root else None) or DEFAULT_ROOT,
        python=own.python if own else None,
        connect_timeout=connect_timeout,
    )


def remember_password(access: HostAccess, password: str) -> None:
    """Keep ``password`` in memory for ``access``'s user, host and port (tried after keys)."""
    _passwords[(access.user, access.host, access.port)] = password


def forget_passwords() -> None:
    """Drop every password kept in memory."""
    _passwords.clear()


def quote(argv: Sequence[object]) -> str:
    """The command line that makes a POSIX shell run ``argv`` exactly, each item as one argument."""
    return shlex.join(str(a) for a in argv)


@dataclass
class Completed:
    """A finished remote command: exit code (-1 when killed) and its last output lines."""

    code: int
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class Remote:
    """An open SSH connection to one host. Use :func:`connect` to make one."""

    def __init__(self, access: HostAccess, conn: asyncssh.SSHClientConnection):
        self.access = access
        self.host = access.host
        self._conn = conn

    async def run(self, argv: Sequence[object], *, on_line: Line | None = None, prefix: str = "",
                  timeout: float | None = None, keep: int = 200, stdin: str | None = None) -> Completed:
        """Run ``argv`` on the host; deliver each output line (stdout and stderr) as it comes.

        Args:
            argv: The program and its arguments; quoted with shlex.join, never interpreted.
            on_line: Called with ``prefix + line`` for each line.
            prefix: Put before each delivered line, e.g. ``"[hostA] "``.
            timeout: Seconds before the command is abandoned (HostError ``unreachable``).
            keep: How many of the last lines the result keeps.
            stdin: Written to the command's standard input, which is then closed: the way to
                hand it a secret (a command line is visible in ``ps`` on the host).
        """
        lines: deque[str] = deque(maxlen=keep)

        async def pump() -> int:
            proc = await self._conn.create_process(quote(argv), stderr=asyncssh.STDOUT, encoding="utf-8",
                                                   errors="replace")
            async with proc:
                if stdin is not None:
                    proc.stdin.write(stdin)
                    proc.stdin.write_eof()
                async for raw in proc.stdout:
                    if not raw:  # asyncssh's end of stream
                        continue
                    line = raw.rstrip("\r\n")
                    lines.append(line)
                    if on_line is not None:
                        on_line(prefix + line)
                done = await proc.wait()
            return done.returncode if done.returncode is not None else -1

        try:
            code = await asyncio.wait_for(pump(), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise HostError(self.host, UNREACHABLE, f"'{argv[0]}' did not finish within {timeout:g} s",
                            "check the host's load and network") from None
        except (asyncssh.Error, OSError) as e:
            raise HostError(self.host, UNREACHABLE, f"the connection broke: {e}",
                            "check the host and run the action again") from e
        return Completed(code, list(lines))

    async def put(self, local: Path | str, remote: str, mode: int | None = None) -> None:
        """Upload ``local`` to the path ``remote`` over SFTP (temp name, then rename: never half a file)."""
        tmp = f"{remote}.part-{os.getpid()}"
        try:
            async with self._conn.start_sftp_client() as sftp:
                await sftp.makedirs(str(Path(remote).parent), exist_ok=True)
                await sftp.put(str(local), tmp)
                if mode is not None:
                    await sftp.chmod(tmp, mode)
                await sftp.posix_rename(tmp, remote)
        except (asyncssh.Error, OSError) as e:
            raise HostError(self.host, UNREACHABLE, f"uploading {Path(local).name} to {remote} failed: {e}",
                            "check the free space and permissions of the install folder") from e

    async def write_private(self, files: dict[str, bytes], folder: str) -> None:
        """Write ``name -> data`` into ``folder`` (made 0700) over SFTP, each file created 0600
        under a temp name and renamed: key material never has a wider mode, never crosses argv."""
        private = asyncssh.SFTPAttrs(permissions=0o600)
        try:
            async with self._conn.start_sftp_client() as sftp:
                await sftp.makedirs(folder, attrs=asyncssh.SFTPAttrs(permissions=0o700), exist_ok=True)
                await sftp.chmod(folder, 0o700)
                for name, data in files.items():
                    tmp = f"{folder}/.{name}.part-{os.getpid()}"
                    async with sftp.open(tmp, "wb", attrs=private) as f:
                        await f.write(data)
                    await sftp.chmod(tmp, 0o600)  # exactly 0600, whatever the server's umask
                    await sftp.posix_rename(tmp, f"{folder}/{name}")
        except (asyncssh.Error, OSError) as e:
            raise HostError(self.host, UNREACHABLE, f"writing the cluster certificates to {folder} failed: {e}",
                            "check the free space and permissions of the install folder") from e

    async def close(self) -> None:
        self._conn.close()
        try:
            await asyncio.wait_for(self._conn.wait_closed(), 5)
        except (asyncio.TimeoutError, TimeoutError, asyncssh.Error, OSError):
            pass

    async def __aenter__(self) -> "Remote":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def _known_hosts(access: HostAccess):
    path = access.known_hosts_path
    if not path.is_file():
        return asyncssh.import_known_hosts("")  # no file: every key is unknown, nothing is trusted
    return str(path)


async def connect(access: HostAccess) -> Remote:
    """Open an SSH connection, checking the host key against ``access.known_hosts``.

    Raises:
        HostError: ``unreachable`` (refused, no route, no answer within the timeout),
            ``auth failed`` (no key or password accepted) or ``host key unknown``.
    """
    password = _passwords.get((access.user, access.host, access.port))
    keys: object = ()  # asyncssh's default: ~/.ssh/id_* and the agent
    if access.key_path:
        key = Path(access.key_path).expanduser()
        if not key.is_file():
            raise HostError(access.host, AUTH_FAILED, f"the key file {key} does not exist",
                            "fix [cluster.ssh].key_path")
        keys = [str(key)]
    options = dict(
        port=access.port, username=access.user, known_hosts=_known_hosts(access), client_keys=keys,
        password=password, config=None, connect_timeout=access.connect_timeout,
        login_timeout=access.connect_timeout * 3, keepalive_interval=15,
    )
    if access.key_path:
        options["agent_path"] = None  # a configured key is the key: no surprise from an agent
    if password is None:
        options["password_auth"] = False
        options["kbdint_auth"] = False
    try:
        conn = await asyncssh.connect(access.host, **options)
    except asyncssh.HostKeyNotVerifiable as e:
        raise await _host_key_error(access, e) from None
    except asyncssh.PermissionDenied:
        how = f"key {access.key_path}" if access.key_path else "the keys in ~/.ssh and the ssh-agent"
        how += " or the password" if password else ""
        raise HostError(access.host, AUTH_FAILED, f"{access.where} refused {how}",
                        f"authorize the key there (ssh-copy-id -p {access.port} "
                        f"{access.user}@{access.host}), "
                        "set [cluster.ssh].key_path, or give a password") from None
    except asyncssh.KeyImportError as e:
        raise HostError(access.host, AUTH_FAILED, f"cannot read the key {access.key_path}: {e}",
                        "point [cluster.ssh].key_path at an OpenSSH private key") from None
    except asyncssh.KeyEncryptionError as e:
        raise HostError(access.host, AUTH_FAILED, f"the key {access.key_path} is encrypted: {e}",
                        "load it into ssh-agent and leave [cluster.ssh].key_path unset") from None
    except (asyncio.TimeoutError, TimeoutError):
        raise HostError(access.host, UNREACHABLE,
                        f"no SSH answer from {access.host}:{access.port} within {access.connect_timeout:g} s",
                        "check the address, the port and the firewall") from None
    except (OSError, asyncssh.Error) as e:
        raise HostError(access.host, UNREACHABLE, f"cannot connect to {access.host}:{access.port}: {e}",
                        "check that sshd runs there and that the address and port are right") from None
    return Remote(access, conn)


async def _host_key_error(access: HostAccess, cause: Exception) -> HostError:
    recorded = recorded_keys(access)
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(access.host, access.port, config=None),
                                     access.connect_timeout)
        shown = f"{key.get_algorithm()} {key.get_fingerprint('sha256')}" if key else "unknown"
    except (OSError, asyncssh.Error, asyncio.TimeoutError, TimeoutError):
        shown = "unknown"
    if recorded:
        return HostError(
            access.host, HOST_KEY_UNKNOWN,
            f"the key it presents ({shown}) differs from the one recorded for {access.pattern} in "
            f"{access.known_hosts_path}: this may be an attack",
            "if the host was reinstalled, delete its old line there and trust it again",
        )
    return HostError(
        access.host, HOST_KEY_UNKNOWN,
        f"its key ({shown}) is not in {access.known_hosts_path}, so it is not trusted",
        f"check that fingerprint with the host's administrator, then accept it with "
        f"`switchyard cluster trust APP {access.host} --fingerprint <the SHA256:... you checked>`",
    )


def recorded_keys(access: HostAccess) -> list[str]:
    """The ``type base64`` host keys known_hosts trusts for the host (hashed entries included)."""
    path = access.known_hosts_path
    if not path.is_file():
        return []
    try:
        keys = asyncssh.match_known_hosts(str(path), access.host, access.host, access.port)[0]
    except (OSError, ValueError, asyncssh.Error):
        return []
    return [" ".join(k.export_public_key("openssh").decode().split()[:2]) for k in keys]


def check_fingerprint(fingerprint: str | None) -> str:
    """``fingerprint`` as ``SHA256:<base64 without padding>``.

    Raises:
        GuardError: it is missing or not a SHA256 fingerprint.
    """
    how = ("on the host, `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it; "
           "or take it from the refusal that named the host")
    if not fingerprint or not fingerprint.strip():
        raise GuardError(f"no --fingerprint given: a host key is trusted only once you confirm its "
                         f"SHA256 fingerprint: {how}")
    text = fingerprint.strip()
    algo, sep, digest = text.partition(":")
    if not sep or algo.upper() != "SHA256" or not digest.rstrip("=") or \
            not all(c.isalnum() or c in "+/=" for c in digest):
        raise GuardError(f"--fingerprint {text!r} is not a SHA256 fingerprint: write it as SHA256:<43 "
                         f"characters> ({how})")
    return f"SHA256:{digest.rstrip('=')}"


async def trust_host(access: HostAccess, fingerprint: str) -> dict:
    """Record the key ``access.host`` presents in known_hosts, if its SHA256 fingerprint is
    ``fingerprint`` (the one the operator checked): the explicit "trust this host" action.

    Refuses, recording nothing, when the presented key has another fingerprint (the refusal
    shows it), and when a different key is already recorded for the host (a changed key is
    for the operator to look into, not to overwrite).

    Returns:
        ``{"host", "pattern", "key_type", "fingerprint", "known_hosts", "added"}``;
        ``added`` is False when that exact key was already recorded.

    Raises:
        GuardError: ``fingerprint`` is missing or malformed.
        HostError: ``unreachable``, or ``host key unknown`` (the presented key is not the
            confirmed one, or a different key is recorded).
    """
    wanted = check_fingerprint(fingerprint)
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(access.host, access.port, config=None),
                                     access.connect_timeout)
    except (asyncio.TimeoutError, TimeoutError):
        raise HostError(access.host, UNREACHABLE, f"no SSH answer from {access.host}:{access.port} within "
                        f"{access.connect_timeout:g} s", "check the address and the port") from None
    except (OSError, asyncssh.Error) as e:
        raise HostError(access.host, UNREACHABLE, f"cannot connect to {access.host}:{access.port}: {e}",
                        "check that sshd runs there") from None
    if key is None:
        raise HostError(access.host, HOST_KEY_UNKNOWN, "the host presented no key", "check the SSH server")
    presented = key.get_fingerprint("sha256").rstrip("=")
    if presented != wanted:
        raise HostError(access.host, HOST_KEY_UNKNOWN,
                        f"it presents the {key.get_algorithm()} key {presented}, not {wanted} that you "
                        f"confirmed: nothing recorded in {access.known_hosts_path}",
                        "if the host's administrator confirms the presented one, trust that; otherwise "
                        "someone may stand between you and the host")
    public = " ".join(key.export_public_key("openssh").decode().split()[:2])
    info = {"host": access.host, "pattern": access.pattern, "key_type": key.get_algorithm(),
            "fingerprint": key.get_fingerprint("sha256"), "known_hosts": str(access.known_hosts_path),
            "added": False}
    recorded = recorded_keys(access)
    if public in recorded:
        return info
    if recorded:
        raise HostError(access.host, HOST_KEY_UNKNOWN,
                        f"{access.known_hosts_path} already holds a different key for {access.pattern}",
                        "if the host was reinstalled, delete its old line first")
    path = access.known_hosts_path
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    text = path.read_text(errors="replace") if path.is_file() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    workspace.atomic_write_text(path, text + f"{access.pattern} {public}\n")
    os.chmod(path, 0o600)
    info["added"] = True
    return info
