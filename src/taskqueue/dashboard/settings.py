"""What the dashboard is told at start: who may log in, and a few limits.

Built by ``taskqueue dashboard`` (from flags, environment and a users file) or by hand when the
app is embedded; frozen, like :class:`taskqueue.config.Settings`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskqueue.observability.alerts import AlertConfig

ADMIN = "admin"
READ_ONLY = "read-only"
ROLES = (ADMIN, READ_ONLY)


@dataclass(frozen=True, slots=True)
class User:
    """A person who logs in with a password (stored only as a KDF hash)."""

    name: str
    password_hash: str
    role: str = READ_ONLY
    #: May this user read decoded job arguments and results (and filter on them)?
    payloads: bool = False

    @property
    def can_act(self) -> bool:
        return self.role == ADMIN


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    """Authentication and limits. No users and no token means "local mode": everyone who can
    reach the port is an admin, which the CLI allows on a loopback address only."""

    users: Mapping[str, User] = field(default_factory=dict)
    #: Where ``users`` came from: re-read when it changes (roles, removals take effect at once).
    users_file: Path | None = None
    #: Host names the dashboard answers to besides loopback (a proxy's name; ``*.example.com``).
    #: Without authentication only loopback names are accepted (DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()
    #: A bearer token granting admin rights (``Authorization: Bearer ...`` or the login form).
    token: str | None = None
    #: A bearer token granting read-only rights.
    read_only_token: str | None = None
    #: Signs the session cookie; random when not given (sessions end when the process stops).
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    session_max_age: int = 8 * 3600
    #: Send the session cookie only over HTTPS (set it behind a TLS proxy).
    https_only: bool = False
    #: Most payloads decoded for one ``args.NAME:VALUE`` search request (see docs/dashboard.md).
    max_decode: int = 2000
    page_size: int = 50
    #: Selected ids acted on in the request itself; a filter runs as a background operation.
    max_selection: int = 1000
    #: Seconds between two live updates sent to an open overview.
    live_interval: float = 2.0
    #: Alert rules and channels to show (read from ``alerts.toml`` by the CLI at start).
    alerts: AlertConfig | None = None
    #: Where they were read from, and why they could not be, for the Alerts page.
    alerts_source: str | None = None
    alerts_error: str | None = None
    #: Audit entries are kept this long in the store (seconds).
    audit_ttl: float = 365 * 24 * 3600.0
    title: str = "taskqueue"

    @property
    def auth_enabled(self) -> bool:
        return bool(self.users or self.users_file or self.token or self.read_only_token)
