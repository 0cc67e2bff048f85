"""The middleware seam, under its first import path (it lives in ``taskqueue/middleware.py``,
below the runtime parts that implement it)."""

from taskqueue.middleware import (
    Middleware,
    Postpone,
    WorkerHost,
    default_middleware,
    register_default,
)

__all__ = ["Middleware", "Postpone", "WorkerHost", "default_middleware", "register_default"]
