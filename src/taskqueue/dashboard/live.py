"""Server-sent events: the overview pushed to every open page every ``live_interval`` seconds.

One snapshot is computed per interval and shared by all connections (a hundred open tabs cost
the store what one does). Each snapshot also feeds the day chart's stored minutes. A stream
ends when the client goes away (Starlette stops the generator), or after ``?events=N`` events
(for scripts and tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from taskqueue.dashboard.overview import snapshot
from taskqueue.dashboard.web import Dashboard, who
from taskqueue.observability.stats import History


class LiveHub:
    def __init__(self, dash: Dashboard) -> None:
        self.dash = dash
        self.interval = dash.settings.live_interval
        self._data: dict[str, Any] | None = None
        self._at = 0.0
        self._seen = dash.changes
        self._lock = asyncio.Lock()

    async def current(self) -> dict[str, Any]:
        async with self._lock:
            fresh = time.monotonic() - self._at < self.interval * 0.9
            if self._data is None or not fresh or self._seen != self.dash.changes:
                self._seen = self.dash.changes
                self._data = await run_in_threadpool(self._compute)
                self._at = time.monotonic()
            return self._data

    def _compute(self) -> dict[str, Any]:
        manager = self.dash.manager
        history = History.load(manager.driver)
        data = snapshot(manager, history)
        waiting = data["totals"]["pending"] + data["totals"]["retrying"]
        with contextlib.suppress(Exception):  # the day chart must not stop the live view
            self.dash.day.record(history, waiting)
        return data


def hub(request: Request) -> LiveHub:
    found: LiveHub = request.app.state.live
    return found


async def stream(request: Request) -> Response:
    """``text/event-stream`` of ``overview`` events (JSON), one per interval."""
    who(request)
    live = hub(request)
    try:
        limit = int(request.query_params.get("events", "0"))
    except ValueError:
        limit = 0

    async def events() -> AsyncIterator[str]:
        sent = 0
        yield f"retry: {int(live.interval * 1000)}\n\n"
        while True:
            try:
                data = await live.current()
                payload = json.dumps(data, default=str)
                stamp = int(data["generated_at"] * 1000)
                yield f"event: overview\nid: {stamp}\ndata: {payload}\n\n"
            except Exception as exc:  # noqa: BLE001 - tell the page, keep the stream
                yield f"event: problem\ndata: {json.dumps({'error': str(exc)})}\n\n"
            sent += 1
            if limit and sent >= limit:
                return
            await asyncio.sleep(live.interval)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


ROUTES = [Route("/api/live", stream)]
