"""The web app: ``uvicorn fastapi_shop.app:app``. The store comes from ``TASKQUEUE_URL``
(default: ``sqlite:///storage/queue.db``); the dashboard is served under ``/taskqueue``."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from fastapi_shop.tasks import make_thumbnail, send_welcome
from taskqueue import QueueManager
from taskqueue.contrib.starlette import Manager, mount_dashboard, taskqueue_lifespan


class Signup(BaseModel):
    email: str
    user_id: int


def create_app(manager: QueueManager | None = None) -> FastAPI:
    """The app; tests hand in their own (isolated) manager."""
    app = FastAPI(title="shop", lifespan=taskqueue_lifespan(manager))

    @app.post("/signup", status_code=202)
    async def signup(body: Signup, manager: Manager) -> dict[str, str]:
        # the asyncio client: the store call runs in a thread, the event loop keeps serving
        welcome = await send_welcome.adelay(body.email)
        thumb = await manager.apush(make_thumbnail.s(body.user_id), priority="high")
        return {"welcome_job": welcome, "thumbnail_job": thumb}

    @app.get("/jobs/{job_id}")
    async def job(job_id: str, manager: Manager) -> dict[str, Any]:
        record = await asyncio.to_thread(manager.get, job_id)
        if record is None:
            raise HTTPException(404, f"no job {job_id}")
        result = manager.decode_result(record) if record.state == "completed" else None
        return {"id": record.id, "name": record.name, "state": record.state.value,
                "attempts": record.attempts, "result": result}

    mount_dashboard(app, "/taskqueue")
    return app


app = create_app()
