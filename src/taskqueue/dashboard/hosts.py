"""Which ``Host`` a request may name: the guard against DNS rebinding.

Without authentication (local mode) everyone who reaches the port is an admin, and the CLI
only listens on loopback then. A web page the developer visits can still reach that port
through a name it controls (DNS rebinding: ``attacker.example`` re-resolved to 127.0.0.1), so in
local mode only loopback names and addresses are accepted in ``Host``, plus what
``--allowed-hosts`` adds (a proxy's name). With authentication on, ``allowed_hosts``, when given,
is enforced the same way; otherwise any host is accepted (the session cookie is what counts).
Starlette's ``TrustedHostMiddleware`` cuts the port off at the first colon, which breaks IPv6
literals (``[::1]:8080``), hence this small guard.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("taskqueue.dashboard")

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def host_name(header: str) -> str:
    """``Host`` without its port, lower-case: ``[::1]:8080`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def is_loopback_host(name: str) -> bool:
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def matches(name: str, patterns: Iterable[str]) -> bool:
    """Exact names, or ``*.example.com`` for any subdomain of it."""
    for pattern in patterns:
        pattern = pattern.strip().lower()
        if pattern == "*" or name == pattern or (
                pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


class HostGuard:
    """Answers 400 to a request whose ``Host`` is not allowed (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, local_mode: bool, allowed: Iterable[str] = ()) -> None:
        self.app, self.local_mode, self.allowed = app, local_mode, tuple(allowed)

    def allows(self, header: str) -> bool:
        name = host_name(header)
        if matches(name, self.allowed):
            return True
        return self.local_mode and is_loopback_host(name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not (self.local_mode or self.allowed):
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope.get("headers", ())
                       if k == b"host"), "")
        if self.allows(header):
            await self.app(scope, receive, send)
            return
        log.warning("dashboard: refused a request for host %r (allowed: loopback%s)",
                    header, "".join(f", {a}" for a in self.allowed))
        response = PlainTextResponse(
            f"Host {header!r} is not allowed. Without authentication the dashboard answers "
            "only to loopback names (localhost, 127.0.0.1, [::1]); add a proxy's name with "
            "--allowed-hosts, or turn authentication on.", status_code=400)
        await response(scope, receive, send)
