"""The conformance suite also runs PostgreSQL through PgBouncer in transaction pooling mode
(``pgbouncer``), the way most PostgreSQL deployments at scale connect."""

from __future__ import annotations

import pytest

from tests.backends import implemented_backends

_BACKENDS = implemented_backends()
if "postgres" in _BACKENDS:
    _BACKENDS.insert(_BACKENDS.index("postgres") + 1, "pgbouncer")


@pytest.fixture(params=_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
