"""The framework integrations, as applications use them."""

from __future__ import annotations

from fastapi import FastAPI
from flask import Flask

from taskqueue import JobHandle, QueueManager, task
from taskqueue.contrib.django import delay_on_commit, enqueue
from taskqueue.contrib.flask import TaskQueue, get_manager
from taskqueue.contrib.starlette import Manager, mount_dashboard, taskqueue_lifespan


@task
def notify(user_id: int, text: str) -> None: ...


def fastapi_app() -> FastAPI:
    app = FastAPI(lifespan=taskqueue_lifespan(url="sqlite:///storage/queue.db"))
    mount_dashboard(app, "/jobs")

    @app.post("/notify")
    async def endpoint(user_id: int, manager: Manager) -> dict[str, str]:
        handle: JobHandle = await manager.apush(notify.s(user_id, "hi"))
        return {"job": handle}

    return app


def flask_app() -> Flask:
    app = Flask(__name__)
    TaskQueue(app)
    with app.app_context():
        manager: QueueManager = get_manager()
        manager.push(notify.s(1, "hi"))
    return app


def django_view(user_id: int) -> JobHandle:
    enqueue(notify.s(user_id, "hi"), using="default", queue="urgent")
    return delay_on_commit(notify, user_id, "hi")
