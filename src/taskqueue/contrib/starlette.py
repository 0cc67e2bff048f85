"""Starlette and FastAPI: a lifespan that owns a :class:`~taskqueue.QueueManager`, a dependency
that hands it to a request, and the dashboard mounted as a sub-application.

```python
from fastapi import Depends, FastAPI
from taskqueue.contrib.starlette import Manager, mount_dashboard, taskqueue_lifespan

app = FastAPI(lifespan=taskqueue_lifespan(url="sqlite:///storage/queue.db"))
mount_dashboard(app, "/jobs")

@app.post("/signup")
async def signup(email: str, manager: Manager) -> dict[str, str]:
    job_id = await manager.apush(send_welcome.s(email))   # or: await send_welcome.adelay(email)
    return {"job": job_id}
```

Async apps enqueue through the asyncio client (``apush``, ``task.adelay``, ``aresult``): the
store call runs in a worker thread and never blocks the event loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from taskqueue import manager as _managers
from taskqueue.manager import QueueManager, default_manager, set_default_manager

#: Where the manager is kept: ``app.state.taskqueue`` and the lifespan state.
STATE_KEY = "taskqueue"

Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[dict[str, Any]]]


def taskqueue_lifespan(
    manager: QueueManager | Callable[[], QueueManager] | None = None,
    *,
    url: str | None = None,
    set_default: bool = True,
    lifespan: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]] | None = None,
) -> Lifespan:
    """A lifespan for ``Starlette(lifespan=...)`` / ``FastAPI(lifespan=...)``.

    At startup it builds the manager (``manager`` itself, a factory returning one, ``url``, or
    ``QueueManager.from_env()``), keeps it in ``app.state.taskqueue`` and the lifespan state,
    and (``set_default``) makes it the one ``task.delay()`` uses; at shutdown it puts the
    previous default back and closes the manager it built (one handed in stays open).
    ``lifespan``: your own lifespan, run inside this one (its state is merged in).
    """

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[dict[str, Any]]:
        built = _build(manager, url)
        previous = _managers._default
        app.state.taskqueue = built
        if set_default:
            set_default_manager(built)
        try:
            async with contextlib.AsyncExitStack() as stack:
                state: dict[str, Any] = {STATE_KEY: built}
                if lifespan is not None:
                    state.update(await stack.enter_async_context(lifespan(app)) or {})
                yield state
        finally:
            if set_default:
                set_default_manager(previous)
            if not isinstance(manager, QueueManager):  # a manager handed in stays the caller's
                built.close()

    return run


def _build(manager: QueueManager | Callable[[], QueueManager] | None,
           url: str | None) -> QueueManager:
    if isinstance(manager, QueueManager):
        return manager
    if manager is not None:
        return manager()
    return QueueManager.from_url(url) if url else QueueManager.from_env()


def get_manager(conn: HTTPConnection) -> QueueManager:
    """The app's manager, for a request or websocket: a FastAPI dependency
    (``manager: QueueManager = Depends(get_manager)``, or the ``Manager`` alias) or a plain
    call in Starlette endpoints."""
    found = getattr(conn.state, STATE_KEY, None) or getattr(conn.app.state, STATE_KEY, None)
    if isinstance(found, QueueManager):
        return found
    return default_manager()


try:  # the FastAPI alias, when FastAPI is installed
    from fastapi import Depends

    Manager = Annotated[QueueManager, Depends(get_manager)]
except ImportError:  # pragma: no cover - Starlette without FastAPI
    pass


def mount_dashboard(app: Any, path: str = "/taskqueue", *, settings: Any = None,
                    name: str = "taskqueue") -> None:
    """Serve the taskqueue dashboard under ``path`` of ``app``, on the app's own manager;
    ``settings``: a ``taskqueue.dashboard.DashboardSettings`` (users, secret key, ...).

    The dashboard application is built on its first request, once the lifespan has started
    the manager. Needs the dashboard (``pip install 'taskqueue-py[dashboard]'``)."""
    create_app = _dashboard_factory()
    app.mount(path, _LazyDashboard(create_app, settings), name=name)


def _dashboard_factory() -> Callable[..., ASGIApp]:
    try:
        from taskqueue.dashboard.app import create_app
    except ImportError as exc:
        raise ImportError(
            "the taskqueue dashboard is not available: install it with "
            "pip install 'taskqueue-py[dashboard]' (taskqueue.dashboard.app.create_app could not "
            f"be imported: {exc})"
        ) from exc
    factory: Callable[..., ASGIApp] = create_app
    return factory


class _LazyDashboard:
    """An ASGI app that builds the dashboard for the outer app's manager on first use."""

    def __init__(self, create_app: Callable[..., ASGIApp], settings: Any) -> None:
        self._create_app = create_app
        self._settings = settings
        self._app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":  # the outer app's lifespan owns the manager
            return
        if self._app is None:
            manager = getattr(scope["app"].state, STATE_KEY, None) or default_manager()
            self._app = self._create_app(manager, self._settings)
        await self._app(scope, receive, send)
