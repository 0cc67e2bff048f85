"""The migration switch that lets unencrypted payloads run while ``ENCRYPTION_KEY`` is set.

With a key configured, a plain envelope is refused (:class:`~taskqueue.errors.UnencryptedPayload`,
the job fails like a tampered one): otherwise anyone able to write to the store could replace an
authenticated payload with arguments of their choosing. Jobs queued *before* encryption was
switched on are plain too; to let them run, the operator turns this switch on
(``taskqueue key:accept-plaintext``), and ``taskqueue key:reencrypt`` encrypts the waiting ones and
turns it off again.

The switch is one registry row whose value is itself encrypted with the key ring, so only someone
holding the key can turn it on: a forged row (plain, or under another key) does not decrypt and
counts as "off". Workers read it only when they meet a plain payload, and remember the answer for
:data:`CACHE_SECONDS`, so the normal (encrypted) path costs nothing.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Final

from taskqueue.codec import Codec
from taskqueue.drivers import Driver
from taskqueue.errors import ConfigError, PayloadError

__all__ = ["CACHE_SECONDS", "KIND", "PlaintextSwitch"]

#: Registry kind (and key) of the switch row.
KIND: Final = "plaintext_accepted"
_KEY: Final = "switch"
#: How long a worker trusts what it last read about the switch.
CACHE_SECONDS: Final = 5.0
_FOREVER: Final = 100 * 365 * 24 * 3600.0


class PlaintextSwitch:
    """Read, turn on and turn off the "accept unencrypted payloads" migration switch."""

    __slots__ = ("_checked_at", "_codec", "_driver", "_on")

    def __init__(self, driver: Driver, codec: Codec) -> None:
        self._driver = driver
        self._codec = codec
        self._on = False
        self._checked_at = -CACHE_SECONDS

    def turn_on(self) -> None:
        """Accept plain payloads until :meth:`turn_off`; needs ENCRYPTION_KEY (ConfigError)."""
        if self._codec.keyring is None or not self._codec.keyring.enabled:
            raise ConfigError("ENCRYPTION_KEY is not set: unencrypted payloads are accepted "
                              "anyway, there is nothing to switch on")
        token = self._codec.encode({"accept_plaintext": True, "since": time.time()},
                                   job_id=_KEY, queue=KIND)
        self._driver.registry_put(KIND, _KEY, {"id": _KEY, "token": base64.b64encode(token)
                                               .decode("ascii")}, _FOREVER)
        self._remember(True)

    def turn_off(self) -> None:
        self._driver.registry_remove(KIND, _KEY)
        self._remember(False)

    def is_on(self, *, fresh: bool = False) -> bool:
        """True while a switch row made with a key of this ring exists (cached briefly)."""
        if fresh or time.monotonic() - self._checked_at >= CACHE_SECONDS:
            self._remember(any(self._valid(entry.get("token"))
                               for entry in self._driver.registry_list(KIND)))
        return self._on

    def _valid(self, token: object) -> bool:
        if not isinstance(token, str):
            return False
        try:
            body = self._codec.decode(base64.b64decode(token, validate=True),
                                      job_id=_KEY, queue=KIND)
        except (PayloadError, binascii.Error, ValueError):
            return False  # forged, or made under a key this ring no longer has
        return isinstance(body, dict) and body.get("accept_plaintext") is True

    def _remember(self, on: bool) -> None:
        self._on = on
        self._checked_at = time.monotonic()
