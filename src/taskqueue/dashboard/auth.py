"""Who is asking, and may they: passwords, tokens, sessions, roles and CSRF.

* Passwords are stored as ``scrypt$N$r$p$salt$hash`` (``hashlib.scrypt``, a memory-hard KDF);
  ``taskqueue dashboard:hash-password`` prints one for a users file.
* A browser logs in once and then carries a signed session cookie (HttpOnly, SameSite=Strict,
  Secure behind HTTPS) holding the user name and a random CSRF token.
* Scripts send ``Authorization: Bearer <token>`` instead; such requests carry no ambient
  credentials a third-party page could borrow, so they need no CSRF token.
* Every other POST/PUT/PATCH/DELETE must echo the session's CSRF token in the ``X-CSRF-Token``
  header (or, for the login and logout forms, a ``csrf_token`` field): otherwise 403.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import secrets
import threading
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from taskqueue.dashboard.sessions import SessionRegistry
from taskqueue.dashboard.settings import ADMIN, READ_ONLY, ROLES, DashboardSettings, User
from taskqueue.errors import ConfigError

log = logging.getLogger("taskqueue.dashboard")

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"
#: Form posts that check the ``csrf_token`` field themselves (the middleware cannot read bodies).
FORM_PATHS = frozenset({"/login", "/logout"})


# -- passwords ----------------------------------------------------------------------------------

def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "$".join(["scrypt", str(n), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), dklen=len(expected), maxmem=64 * 1024 * 1024)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(8))


# -- users file ---------------------------------------------------------------------------------

def load_users(path: Path) -> dict[str, User]:
    """Read ``[users.NAME]`` tables: ``password`` (a hash), ``role``, ``payloads``."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read users file {path}: {exc}") from exc
    table = data.get("users")
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{path}: no [users.NAME] tables found")
    return {name: _user(path, name, spec) for name, spec in table.items()}


def _user(path: Path, name: str, spec: Any) -> User:
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: users.{name} must be a table")
    unknown = set(spec) - {"password", "role", "payloads"}
    if unknown:
        raise ConfigError(f"{path}: users.{name}: unknown key(s) {sorted(unknown)}; "
                          "expected password, role, payloads")
    password = str(spec.get("password", ""))
    if not password.startswith("scrypt$") or password.count("$") != 5:
        raise ConfigError(f"{path}: users.{name}.password must be a hash made by "
                          "`taskqueue dashboard:hash-password`, never the password itself")
    role = str(spec.get("role", READ_ONLY))
    if role not in ROLES:
        raise ConfigError(f"{path}: users.{name}.role must be one of {', '.join(ROLES)}")
    return User(name, password, role, bool(spec.get("payloads", role == ADMIN)))


# -- principals ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Principal:
    """The one making a request: a user, a token, or the local operator (no auth set up)."""

    name: str
    role: str
    payloads: bool
    via: str  # "password", "token", "bearer" or "local"

    @property
    def can_act(self) -> bool:
        return self.role == ADMIN

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "payloads": self.payloads,
                "can_act": self.can_act, "via": self.via}


LOCAL = Principal("local", ADMIN, True, "local")


class Authenticator:
    """Checks passwords and tokens; resolves the principal of each request.

    With a users file (``settings.users_file``) the users are re-read when the file changes
    (looked at no more than once a second): a demoted user is read-only at their next request,
    and a removed one is logged out. With a store (``driver``), cookie sessions are checked
    against their entries there, so logout ends a session (see ``sessions.py``)."""

    def __init__(self, settings: DashboardSettings, driver: Any = None) -> None:
        self.settings = settings
        self.throttle = LoginThrottle()
        self.sessions = (SessionRegistry(driver, settings.session_max_age)
                         if driver is not None else None)
        self._users: Mapping[str, User] = settings.users
        self._users_stamp: tuple[float, int] | None = None
        self._users_checked = float("-inf")
        self._users_lock = threading.Lock()
        if settings.users_file is not None:
            self.users()

    def users(self) -> Mapping[str, User]:
        path = self.settings.users_file
        if path is None:
            return self._users
        now = time.monotonic()
        with self._users_lock:
            if now - self._users_checked < 1.0:
                return self._users
            self._users_checked = now
            try:
                info = path.stat()
                stamp = (info.st_mtime, info.st_size)
                if stamp != self._users_stamp:
                    previous, self._users = self._users, load_users(path)
                    self._users_stamp = stamp
                    self._end_removed(set(previous) - set(self._users))
            except (OSError, ConfigError) as exc:  # keep the last good users, say why
                log.error("dashboard: users file %s not re-read: %s", path, exc)
            return self._users

    def _end_removed(self, removed: set[str]) -> None:
        if self.sessions is None:
            return
        for name in removed:
            self.sessions.close_user(name)

    def login(self, name: str, password: str) -> Principal | None:
        """A principal for a correct user name and password, or a token typed as password."""
        user = self.users().get(name) if name else None
        if user is not None:
            return self._user_principal(user) if verify_password(password, user.password_hash) \
                else None
        if name:
            verify_password(password, _dummy_hash())  # same cost for unknown names
            return None
        return self.by_token(password, via="token")

    def by_token(self, token: str, via: str = "bearer") -> Principal | None:
        for secret, role in ((self.settings.token, ADMIN),
                             (self.settings.read_only_token, READ_ONLY)):
            if secret and token and hmac.compare_digest(token.encode(), secret.encode()):
                return Principal(token_name(role, secret), role, role == ADMIN, via)
        return None

    def resolve(self, conn: HTTPConnection) -> Principal | None:
        """Bearer header first, then the session cookie; LOCAL when auth is off."""
        if not self.settings.auth_enabled:
            return LOCAL
        header = conn.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return self.by_token(header[7:].strip())
        session = conn.scope.get("session") or {}
        who = session.get("user")
        if not isinstance(who, dict):
            return None
        if self.sessions is not None and not self.sessions.alive(who.get("sid")):
            return None  # logged out, or ended on another dashboard process
        if who.get("via") == "token":  # re-checked so a changed token ends old sessions
            kind = str(who.get("role"))
            secret = self.settings.token if kind == ADMIN else self.settings.read_only_token
            if not secret or who.get("token_id") != token_id(secret):
                return None
            return Principal(token_name(kind, secret), kind, kind == ADMIN, "token")
        user = self.users().get(str(who.get("name")))
        return self._user_principal(user) if user is not None else None

    @staticmethod
    def _user_principal(user: User) -> Principal:
        return Principal(user.name, user.role, user.payloads, "password")

    def session_entry(self, who: Principal) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": who.name, "role": who.role, "via": who.via}
        if self.sessions is not None:
            entry["sid"] = self.sessions.open(who.name)
        if who.via == "token":
            secret = self.settings.token if who.role == ADMIN else self.settings.read_only_token
            entry["token_id"] = token_id(secret or "")
        return entry

    def end_session(self, session: Mapping[str, Any]) -> None:
        who = session.get("user")
        if self.sessions is not None and isinstance(who, dict):
            self.sessions.close(who.get("sid"))


def token_name(role: str, secret: str) -> str:
    """How a token appears in the audit log: its role and a fingerprint, never the token."""
    return f"token:{role}:{token_id(secret)[:8]}"


def token_id(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


class LoginThrottle:
    """At most ``limit`` failed logins per client address in ``window`` seconds."""

    def __init__(self, limit: int = 10, window: float = 300.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < self.window]
            self._failures[client] = recent
            return len(recent) >= self.limit

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, []).append(time.monotonic())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


# -- CSRF ---------------------------------------------------------------------------------------

def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token (made on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 20:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok(session: Mapping[str, Any], presented: str | None) -> bool:
    expected = session.get("csrf")
    return bool(isinstance(expected, str) and presented
                and hmac.compare_digest(presented.encode(), expected.encode()))


class CSRFMiddleware:
    """Refuses (403) a state-changing request that does not echo the session's CSRF token.

    Requests authenticated by a bearer header are exempt (nothing ambient to forge); the login
    and logout forms check their ``csrf_token`` field in their handlers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        path = str(scope.get("path", "")).removeprefix(str(scope.get("root_path", "")))
        if path in FORM_PATHS or _bearer(conn):
            await self.app(scope, receive, send)
            return
        if not csrf_ok(scope.get("session") or {}, conn.headers.get(CSRF_HEADER)):
            response = JSONResponse({"error": "CSRF token missing or invalid: send the "
                                              "X-CSRF-Token header of your session"},
                                    status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _bearer(conn: HTTPConnection) -> bool:
    return conn.headers.get("authorization", "").lower().startswith("bearer ")
