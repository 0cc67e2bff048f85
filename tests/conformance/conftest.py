"""The conformance suite also runs PostgreSQL through PgBouncer in transaction pooling mode
(``pgbouncer``), the way most PostgreSQL deployments at scale connect, and the Redis driver on
a local three-master Redis Cluster (``redis-cluster``) through its cluster client."""

from __future__ import annotations

import pytest

from tests.backends import implemented_backends

_BACKENDS = implemented_backends()
if "postgres" in _BACKENDS:
    _BACKENDS.insert(_BACKENDS.index("postgres") + 1, "pgbouncer")
if "redis" in _BACKENDS:
    _BACKENDS.insert(_BACKENDS.index("redis") + 1, "redis-cluster")


@pytest.fixture(params=_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
