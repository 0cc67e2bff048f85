"""A FastAPI app with the dashboard mounted at ``/taskqueue`` (as in examples/fastapi_app),
for the browser test of a mounted dashboard: ``uvicorn tests.dashboard.mounted_app:app``.
The store is ``$TASKQUEUE_URL``; the users file is ``$MOUNTED_USERS``."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from taskqueue.contrib.starlette import mount_dashboard, taskqueue_lifespan
from taskqueue.dashboard import DashboardSettings, load_users

app = FastAPI(lifespan=taskqueue_lifespan(url=os.environ["TASKQUEUE_URL"]))
mount_dashboard(app, "/taskqueue", settings=DashboardSettings(
    users=load_users(Path(os.environ["MOUNTED_USERS"])), secret_key="mounted-test-secret",
    live_interval=0.2))


@app.get("/")
async def home() -> dict[str, str]:
    return {"app": "the host application"}
