"""A port a command will serve on, checked before the command starts anything.

``taskqueue work --metrics-port`` starts its server after its workers (the server needs the
store connection opened after them), and ``taskqueue dashboard`` after opening its store: a
port already taken is refused first, exit 2 naming it, with nothing started.
"""

from __future__ import annotations

import socket

from taskqueue.errors import ConfigError


def check_port(host: str, port: int, what: str) -> None:
    """ConfigError now if ``host:port`` cannot be bound (taken, or not this host's address).
    Port 0 (any free port) always can."""
    if port == 0:
        return
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
        probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(f"cannot serve {what} on {host}:{port}: {exc.strerror or exc}; "
                          "choose another port") from None
    finally:
        probe.close()
