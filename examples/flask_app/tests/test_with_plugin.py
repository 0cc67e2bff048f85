"""In-process tests with the Flask test client and the taskqueue pytest plugin's fixtures."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask_shop import create_app
from flask_shop.tasks import charge_card

from taskqueue import ConfigError, QueueManager, WorkerSummary
from taskqueue.testing import EnqueueRecorder


def test_an_order_enqueues_one_charge(taskqueue_manager: QueueManager,
                                      taskqueue_enqueued: EnqueueRecorder) -> None:
    client = create_app(manager=taskqueue_manager).test_client()
    assert client.post("/orders", json={"id": 9, "cents": 250}).status_code == 202
    client.post("/orders", json={"id": 9, "cents": 250})
    job = taskqueue_enqueued.assert_enqueued(charge_card, args=[9, 250], queue="payments",
                                             count=1)
    assert job.idempotency_key == "charge:9"


def test_drain_charges_it(taskqueue_manager: QueueManager,
                          taskqueue_drain: Callable[..., WorkerSummary]) -> None:
    client = create_app(manager=taskqueue_manager).test_client()
    job_id = client.post("/orders", json={"id": 3, "cents": 100}).json["job_id"]
    assert client.get(f"/jobs/{job_id}").json["state"] == "pending"
    assert taskqueue_drain().completed == 1
    assert client.get(f"/jobs/{job_id}").json["result"]["status"] == "paid"


def test_inline(taskqueue_inline: QueueManager) -> None:
    client = create_app(manager=taskqueue_inline).test_client()
    job_id = client.post("/orders", json={"id": 4, "cents": 100}).json["job_id"]
    assert client.get(f"/jobs/{job_id}").json["state"] == "completed"


def test_the_extension_reads_the_config(tmp_path: object) -> None:
    app = create_app({"TASKQUEUE_URL": f"sqlite:///{tmp_path}/q.db", "TASKQUEUE_MAX_WORKERS": 2,
                      "TASKQUEUE_SET_DEFAULT": False})
    manager = app.extensions["taskqueue"]
    assert manager.settings.max_workers == 2
    with pytest.raises(ConfigError, match="did you mean 'max_workers'"):
        create_app({"TASKQUEUE_MAX_WORKER": 2})
