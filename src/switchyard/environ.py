"""The environment of every process that runs app or step code: an allow-list, never a copy.

Drivers (process or run-agent fork), the batches of modes 0-3 inside them, the workers of
local and warm clusters and pipeline steps all start from :func:`child_environ`: the
variables a Python program needs to run (``PATH``, ``HOME``, locale, ``TZ``, ``TMPDIR``,
``PYTHON*``, ``SWITCHYARD_*`` settings, ``DASK_*`` configuration, GPU and thread
selectors, compiler and certificate-store settings) plus the names the app declares in
``app_settings.toml``::

    [environment]
    pass = ["MY_DATA_BUCKET", "MY_SERVICE_TOKEN"]

Whatever else the caller holds (``SWITCHYARD_API_TOKEN``, ``SWITCHYARD_SMTP_PASSWORD``,
cloud credentials, ``*_TOKEN`` / ``*_PASSWORD`` / ``*_SECRET``, an ssh-agent socket)
stays behind. A secret-looking name passes only when the app names it exactly; the
workbench's own secrets (:data:`NEVER`) never pass, declared or not.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Mapping

from switchyard.exceptions import SettingsError

# Exact names a program may need.
ALLOWED = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TZDIR", "TMPDIR", "TEMP", "TMP",
    "TERM", "COLUMNS", "LINES", "NO_COLOR", "VIRTUAL_ENV", "HOSTNAME",
    "CC", "CXX", "CFLAGS", "CPPFLAGS", "CXXFLAGS", "LDFLAGS", "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH",
    "C_INCLUDE_PATH", "PKG_CONFIG_PATH",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "NO_PROXY", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
    "MPLBACKEND", "MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR",
})
# Prefixes of families that configure the runtime, not credentials.
ALLOWED_PREFIXES = ("LC_", "PYTHON", "SWITCHYARD_", "DASK_", "CUDA_", "NVIDIA_", "ROCR_", "HIP_", "OMP_",
                    "MKL_", "OPENBLAS_", "NUMEXPR_", "NUMBA_", "ARROW_", "UV_")
# The workbench's own secrets: never in a child, even when declared.
NEVER = frozenset({"SWITCHYARD_API_TOKEN", "SWITCHYARD_SMTP_PASSWORD"})
# What a credential's name looks like. Package index URLs may carry user:password@.
_SECRET = re.compile(r"(TOKEN|PASSWORD|PASSWD|PASSPHRASE|SECRET|CREDENTIAL|PRIVATE_KEY|API_KEY|ACCESS_KEY"
                     r"|_PW$|_PWD$|_AUTH$|AUTH_SOCK$|_COOKIE$|_SESSION$)", re.IGNORECASE)
_SECRET_PREFIXES = ("AWS_", "AZURE_", "GOOGLE_", "GCP_", "GCLOUD_", "CLOUDSDK_", "OCI_", "ALIBABA_", "DO_",
                    "GITHUB_", "GITLAB_", "HF_", "HUGGING", "OPENAI_", "ANTHROPIC_", "VAULT_", "DOCKER_")
_INDEX_URL = re.compile(r"(INDEX_URL|INDEX|EXTRA_INDEX_URL|FIND_LINKS)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECTION = "environment"


def is_secret(name: str, value: str = "") -> bool:
    """Whether ``name`` (with ``value``) looks like a credential."""
    upper = name.upper()
    if name in NEVER or _SECRET.search(name) or upper.startswith(_SECRET_PREFIXES):
        return True
    if _INDEX_URL.search(upper) or upper.endswith("_PROXY"):
        return "@" in value  # a URL with user:password@
    return False


def is_allowed(name: str) -> bool:
    """Whether ``name`` is on the allow-list (secret-looking names never are)."""
    return (name in ALLOWED or name.startswith(ALLOWED_PREFIXES)) and name not in NEVER


def child_environ(source: Mapping[str, str] | None = None, declared: Iterable[str] = (),
                  overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process that runs app or step code.

    Args:
        source: Where values come from (default ``os.environ``).
        declared: Names the app asked for; they pass even when they look secret,
            except the workbench's own (:data:`NEVER`).
        overrides: Set last, as given (the caller's own values: paths, Dask settings).
    """
    source = os.environ if source is None else source
    wanted = set(declared) - NEVER
    env = {k: v for k, v in source.items()
           if k in wanted or (is_allowed(k) and not is_secret(k, v))}
    env.update(overrides or {})
    return env


def dropped(source: Mapping[str, str] | None = None, declared: Iterable[str] = ()) -> list[str]:
    """The names of ``source`` a child does not get (for logs and the docs: names, never values)."""
    source = os.environ if source is None else source
    kept = child_environ(source, declared)
    return sorted(k for k in source if k not in kept)


_declared_cache: dict[Path, tuple[tuple[int, int], tuple[str, ...]]] = {}


def declared_names(settings_path: Path | str) -> tuple[str, ...]:
    """The names ``[environment].pass`` of an ``app_settings.toml`` declares (cached per mtime and size).

    Raises:
        SettingsError: the table or a name is malformed, or a name is one of :data:`NEVER`.
    """
    path = Path(settings_path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return ()
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _declared_cache.get(path)
    if hit and hit[0] == stamp:
        return hit[1]
    import tomlkit

    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - load_settings reports a broken file with its line
        return ()
    names = parse_declared(doc.get(SECTION), path)
    _declared_cache[path] = (stamp, names)
    return names


def parse_declared(table, path: Path | None = None) -> tuple[str, ...]:
    """Check an ``[environment]`` table; return its ``pass`` names."""
    if table is None:
        return ()
    if not isinstance(table, dict) or set(table) - {"pass"}:
        raise SettingsError(path, SECTION, "must be a table with one key, pass",
                            'write [environment] then pass = ["MY_VARIABLE"]')
    names = table.get("pass", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and _NAME.match(n) for n in names):
        raise SettingsError(path, f"{SECTION}.pass", f"{list(names) if isinstance(names, list) else names!r} "
                            "is not a list of environment variable names", 'write pass = ["MY_VARIABLE"]')
    refused = sorted(set(names) & NEVER)
    if refused:
        raise SettingsError(path, f"{SECTION}.pass", f"{refused[0]} is a secret of the workbench and never "
                            "reaches app code", "remove it; give the app a credential of its own")
    return tuple(str(n) for n in names)
