"""A Flask app that enqueues jobs from its requests (see ../README.md).

``flask --app flask_shop run`` serves it; ``flask --app flask_shop taskqueue work`` runs the
workers with the app's settings. The store comes from ``TASKQUEUE_URL`` (default:
``sqlite:///storage/queue.db``) or the ``TASKQUEUE_*`` config keys.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, request

from taskqueue import QueueManager
from taskqueue.contrib.flask import TaskQueue, get_manager

queue = TaskQueue()


def create_app(config: dict[str, Any] | None = None,
               manager: QueueManager | None = None) -> Flask:
    """The app; tests hand in their own config or (isolated) manager."""
    from flask_shop.tasks import charge_card

    app = Flask(__name__)
    app.config["TASKQUEUE_IMPORTS"] = ["flask_shop.tasks"]  # what each worker imports
    app.config.from_prefixed_env()  # FLASK_TASKQUEUE_URL=... also works
    app.config.from_mapping(config or {})
    queue.init_app(app, manager=manager)

    @app.post("/orders")
    def create_order() -> tuple[dict[str, Any], int]:
        order = request.get_json(force=True)
        handle = charge_card.push([int(order["id"]), int(order["cents"])],
                                  idempotency_key=f"charge:{order['id']}")
        return {"job_id": handle}, 202

    @app.get("/jobs/<job_id>")
    def job(job_id: str) -> dict[str, Any]:
        manager = get_manager()
        record = manager.get(job_id)
        if record is None:
            abort(404)
        result = manager.decode_result(record) if record.state == "completed" else None
        return {"id": record.id, "state": record.state.value, "result": result}

    return app
