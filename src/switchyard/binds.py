"""Where the workbench and the HTTP API may listen.

Both run the operator's power over the network: the API pauses and cancels runs, the
workbench writes and executes code (inline pipeline steps). So both bind loopback by
default; the API needs a token anywhere else, the workbench an explicit ``--expose``.
"""

from __future__ import annotations

import ipaddress

from switchyard.exceptions import GuardError

TOKEN_ENV = "SWITCHYARD_API_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` only accepts connections from this machine."""
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: it may resolve to a reachable address


def check_api_bind(host: str, token: str | None) -> None:
    """Refuse to serve the API on a non-loopback address without a token.

    Raises:
        GuardError: ``host`` is reachable from other machines and no token is set.
    """
    if not token and not is_loopback(host):
        raise GuardError(
            f"refusing to serve the API on {host} without a token: anyone who reaches it could "
            f"pause or cancel runs: set ${TOKEN_ENV} (or --token-file FILE), or bind 127.0.0.1")


def check_ui_bind(address: str, expose: bool) -> None:
    """Refuse to serve the workbench beyond loopback unless the operator said ``--expose``.

    Raises:
        GuardError: ``address`` is reachable from other machines and ``expose`` is false.
    """
    if not expose and not is_loopback(address):
        raise GuardError(
            f"refusing to serve the workbench on {address}: it runs arbitrary code as you (inline "
            f"pipeline steps are written and executed from it) and has no login of its own: keep "
            f"127.0.0.1 and reach it over `ssh -L`, or put a reverse proxy with authentication "
            f"(e.g. nginx auth_basic, oauth2-proxy) in front and pass --expose")
