"""TLS with mutual authentication for the clusters Switchyard starts.

One certificate authority per workspace (``<home>/tls/ca.pem`` + ``ca.key``) signs one
leaf certificate (``cluster.pem`` + ``cluster.key``) that the scheduler, the workers,
their nannies and this workspace's clients all present. Dask authorises every holder
of a certificate its CA signed alike (there are no roles), so the boundary is the
workspace's CA: a client or a worker with a certificate from another workspace, or
with none, is refused at the handshake. A leaf per cluster would add files to ship
without adding a boundary; a CA per workspace keeps a leaf rotation seamless (new
processes present the new leaf, running ones are still trusted until they restart).

Keys are written 0600 in a 0700 folder, created with that mode (never widened for a
moment), never logged and never put on a command line: processes get file paths, and
remote hosts get the files over the SSH channel (:mod:`switchyard.cluster.ssh`).

Which security a client uses is decided here for :func:`switchyard.cluster.connect.connect`:
a ``tls://`` address of this workspace gets its certificates; an external scheduler
chosen for a run gets the app's ``[cluster.tls]`` files (remembered per address in
``<home>/tls/external.json``: paths only); a plain ``tcp://`` address of a cluster that
needs TLS is refused with one line.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from switchyard import workspace
from switchyard.exceptions import ClusterError
from switchyard.settings import split_address

LEAF_DAYS = 365
CA_DAYS = 3650
RENEW_BEFORE_DAYS = 30  # ensure() renews a leaf that expires sooner than this
EXTERNAL = "external.json"
_LOCAL_TLS: set[str] = set()  # host:port of TLS clusters started by this process
_HOMES: dict[str, Path] = {}  # host:port -> the workspace of a cluster this process started or read


@dataclass(frozen=True)
class Certs:
    """The certificate files a process presents (paths on the host where it runs)."""

    ca_file: str
    cert_file: str
    key_file: str

    def argv(self) -> list[str]:
        """The ``dask scheduler`` / ``dask worker`` flags: file paths only, never key material."""
        return ["--protocol", "tls", "--tls-ca-file", self.ca_file, "--tls-cert", self.cert_file,
                "--tls-key", self.key_file]

    def security(self):
        """A ``distributed.Security`` that requires encryption and presents these files in every role."""
        from distributed import Security

        return Security(require_encryption=True, tls_ca_file=self.ca_file,
                        tls_client_cert=self.cert_file, tls_client_key=self.key_file,
                        tls_scheduler_cert=self.cert_file, tls_scheduler_key=self.key_file,
                        tls_worker_cert=self.cert_file, tls_worker_key=self.key_file)


def tls_dir(home: Path | str | None = None) -> Path:
    return Path(home) / "tls" if home is not None else workspace.home() / "tls"


def workspace_certs(home: Path | str | None = None) -> Certs:
    d = tls_dir(home)
    return Certs(str(d / "ca.pem"), str(d / "cluster.pem"), str(d / "cluster.key"))


# ----------------------------------------------------------------------------- files

def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to ``path``, created 0600 (the temp file too), then renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _private_dir(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(d, 0o700)


@contextmanager
def _lock(d: Path) -> Iterator[None]:
    _private_dir(d)
    with workspace.file_lock(d / ".lock"):
        yield


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: str, key, issuer_name, issuer_key, days: int, ca: bool, now: dt.datetime):
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        # Dask checks the CA, not host names; the names are there for tools that do.
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _load_cert(path: Path):
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes())


def _expiry(cert) -> dt.datetime:
    return cert.not_valid_after_utc


def _generate(d: Path, new_ca: bool, now: dt.datetime) -> None:
    from cryptography.hazmat.primitives import serialization

    if new_ca or not (d / "ca.pem").is_file() or not (d / "ca.key").is_file():
        ca_key = _new_key()
        ca = _cert(f"switchyard workspace CA {os.urandom(4).hex()}", ca_key, None, None, CA_DAYS, True, now)
        write_private(d / "ca.key", _pem_key(ca_key))
        workspace.atomic_write_bytes(d / "ca.pem", ca.public_bytes(serialization.Encoding.PEM))
    ca = _load_cert(d / "ca.pem")
    ca_key = serialization.load_pem_private_key((d / "ca.key").read_bytes(), password=None)
    key = _new_key()
    leaf = _cert("switchyard cluster", key, ca.subject, ca_key, LEAF_DAYS, False, now)
    write_private(d / "cluster.key", _pem_key(key))
    workspace.atomic_write_bytes(d / "cluster.pem", leaf.public_bytes(serialization.Encoding.PEM))


def ensure(home: Path | str | None = None, now: dt.datetime | None = None) -> Certs:
    """The workspace's certificates, made when missing and the leaf renewed when it expires
    within 30 days (same CA: running clusters keep trusting it).

    Raises:
        ClusterError: They are missing and cannot be made here (no ``cryptography``).
    """
    certs = workspace_certs(home)
    d = tls_dir(home)
    now = now or dt.datetime.now(dt.timezone.utc)
    if _current(d, now):
        return certs
    if importlib.util.find_spec("cryptography") is None:
        if all(Path(p).is_file() for p in (certs.ca_file, certs.cert_file, certs.key_file)):
            return certs  # cannot renew here; `cluster status` shows the expiry
        raise ClusterError(f"no cluster certificates in {d} and this python cannot make them "
                           "(no cryptography): run `switchyard cluster rotate-certs APP` once") from None
    with _lock(d):
        if not _current(d, now):
            _generate(d, False, now)
    return certs


def _current(d: Path, now: dt.datetime) -> bool:
    files = [d / n for n in ("ca.pem", "ca.key", "cluster.pem", "cluster.key")]
    if not all(f.is_file() for f in files):
        return False
    try:
        return _expiry(_load_cert(d / "cluster.pem")) - now > dt.timedelta(days=RENEW_BEFORE_DAYS)
    except ImportError:
        return True
    except ValueError:
        return False


def rotate(home: Path | str | None = None, new_ca: bool = False) -> dict:
    """A new leaf certificate (and with ``new_ca`` a new CA); return :func:`info` of the result."""
    d = tls_dir(home)
    with _lock(d):
        _generate(d, new_ca, dt.datetime.now(dt.timezone.utc))
    return info(home)


def info(home: Path | str | None = None) -> dict:
    """``{"dir", "expires", "not_before", "fingerprint", "ca_fingerprint"}`` of the workspace's
    certificates (ISO times, UTC), or ``{"dir", "expires": None}`` when none were made yet."""
    d = tls_dir(home)
    out: dict = {"dir": str(d), "expires": None}
    try:
        from cryptography.hazmat.primitives import hashes

        leaf, ca = _load_cert(d / "cluster.pem"), _load_cert(d / "ca.pem")
    except (ImportError, OSError, ValueError):
        return out
    out.update(expires=_expiry(leaf).isoformat(), not_before=leaf.not_valid_before_utc.isoformat(),
               fingerprint="SHA256:" + leaf.fingerprint(hashes.SHA256()).hex(),
               ca_fingerprint="SHA256:" + ca.fingerprint(hashes.SHA256()).hex())
    return out


# ----------------------------------------------------------------------------- addresses

def protocol_of(address: str) -> str:
    """``tls``, ``tcp`` (also for a bare ``host:port``: Dask's default) or another scheme."""
    text = address.strip()
    return text.split("://", 1)[0].lower() if "://" in text else "tcp"


def host_port(address: str) -> str:
    host, port = split_address(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def as_tls(address: str) -> str:
    return f"tls://{host_port(address)}"


def remember_local(address: str, home: Path | str | None = None) -> None:
    """A TLS cluster started by this process (its plain ``tcp://`` form is refused), with the
    workspace whose certificates it presents (a process may hold clusters of several)."""
    _LOCAL_TLS.add(host_port(address))
    remember_home(address, home)


def remember_home(address: str, home: Path | str | None) -> None:
    """Clients of ``address`` in this process use the certificates of workspace ``home``."""
    if home is not None and address:
        _HOMES[host_port(address)] = Path(home)


def forget_local(address: str) -> None:
    _LOCAL_TLS.discard(host_port(address))
    _HOMES.pop(host_port(address), None)


def _recorded_tls(home: Path) -> set[str]:
    found = set(_LOCAL_TLS)
    for path in (home / "clusters").glob("*.json"):
        try:
            address = str(json.loads(path.read_text()).get("address") or "")
        except (OSError, ValueError, AttributeError):
            continue
        if protocol_of(address) == "tls":
            found.add(host_port(address))
    return found


def _external(home: Path) -> dict:
    try:
        doc = json.loads((tls_dir(home) / EXTERNAL).read_text())
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def remember_external(address: str, tls, home: Path | str | None = None) -> None:
    """Keep how the external scheduler at ``address`` is reached (the app's ``[cluster.tls]``
    file paths, or plaintext), so a run's driver connects to it the same way."""
    home = Path(home) if home is not None else workspace.home()
    entry = ({"plaintext": True} if protocol_of(address) != "tls" else
             {"ca_file": tls.ca_file, "cert_file": tls.cert_file, "key_file": tls.key_file} if tls.has_files
             else None)  # tls:// without files: this workspace's certificates
    d = tls_dir(home)
    if entry is None and not (d / EXTERNAL).exists():
        return
    with _lock(d):
        doc = _external(home)
        if doc.get(host_port(address)) != entry:
            if entry is None:
                doc.pop(host_port(address), None)
            else:
                doc[host_port(address)] = entry
            workspace.atomic_write_json(d / EXTERNAL, doc)


def external_address(address: str, tls) -> str:
    """The address an external scheduler is reached at, checked against ``[cluster.tls]``.

    ``tls`` is the app's :class:`~switchyard.settings.TLSSettings`. With certificate files a
    bare ``host:port`` means ``tls://``; a plain ``tcp://`` scheduler needs ``allow_plaintext``.

    Raises:
        ClusterError: Plaintext was not allowed, or ``tcp://`` was written next to certificates.
    """
    proto = protocol_of(address)
    if tls.has_files:
        if "://" in address.strip() and proto != "tls":
            raise ClusterError(f"scheduler {address}: [cluster.tls] gives certificates but the address is "
                               f"{proto}://: write tls://{host_port(address)}")
        return as_tls(address)
    if proto == "tls":
        return address.strip()
    if tls.allow_plaintext:
        return address.strip()
    raise ClusterError(f"the Dask scheduler at {address} was not started by Switchyard and would be reached "
                       "in plaintext: give its certificates in [cluster.tls] (ca_file, cert_file, key_file) "
                       "with a tls:// address, or set allow_plaintext = true in [cluster.tls]")


def security_for(address: str, home: Path | str | None = None):
    """``(address, distributed.Security or None)`` for a client of ``address``.

    Raises:
        ClusterError: ``address`` is plain ``tcp://`` but the cluster there needs TLS, or the
            workspace has no certificates for a ``tls://`` address.
    """
    proto = protocol_of(address)
    where = host_port(address)
    home = Path(home) if home is not None else _HOMES.get(where) or workspace.home()
    entry = _external(home).get(where) if (tls_dir(home) / EXTERNAL).exists() else None
    if proto == "tls":
        if entry and entry.get("ca_file"):
            return address, Certs(entry["ca_file"], entry["cert_file"], entry["key_file"]).security()
        certs = workspace_certs(home)
        if not Path(certs.key_file).is_file():
            raise ClusterError(f"{address} needs TLS and this workspace ({home}) has no cluster certificates: "
                               "start the cluster from this workspace, or give the scheduler's certificates "
                               "in [cluster.tls]")
        return address, certs.security()
    if proto == "tcp" and where in _recorded_tls(home):
        raise ClusterError(f"the cluster at {address} requires TLS: connect to tls://{where} (a plain tcp "
                           "client is refused)")
    return address, None
