"""``taskqueue transfer`` copies every durable kind of registry entry (issue 19 item 10).

It used to copy a fixed list that had drifted (no queue limits, no schedule state). Now:

* a source scan finds every kind the code writes (each ``registry_put`` call's first argument,
  evaluated in its module) and requires it to be either copied (``DURABLE_KINDS`` or a
  ``DURABLE_PREFIXES`` prefix) or listed with a reason in ``EPHEMERAL_KINDS``: adding a new kind
  without deciding fails here;
* a real transfer from SQLite to every backend carries one entry of each durable kind, written
  through the public functions that own them, and the destination's features read them back.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskqueue import QueueManager, generate_key
from taskqueue.drivers import open_driver
from taskqueue.jobs.states import State
from taskqueue.scheduling.ratelimit import queue_limits, set_queue_limit
from taskqueue.scheduling.schedules import Schedule, ScheduleStore
from taskqueue.transfer import DURABLE_KINDS, DURABLE_PREFIXES, EPHEMERAL_KINDS, transfer
from taskqueue.workflows.recurring import stop_series
from tests.apps import sample_tasks as t

SRC = Path(__file__).resolve().parents[2] / "src"


class _Placeholders(dict[str, Any]):
    """Locals for evaluating a kind expression in its module: names the module does not define
    (a function's parameters, such as ``batch_id``) become "X"."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        self.namespace = vars(module)

    def __missing__(self, key: str) -> Any:
        return self.namespace.get(key, "X")


def written_kinds() -> dict[str, str]:
    """kind -> where it is written, for every ``registry_put(KIND, ...)`` in the package."""
    found: dict[str, str] = {}
    for path in sorted((SRC / "taskqueue").rglob("*.py")):
        if "drivers" in path.parts or path.name == "transfer.py":
            continue
        tree = ast.parse(path.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Attribute) and n.func.attr == "registry_put"]
        if not calls:
            continue
        module = importlib.import_module(".".join(path.relative_to(SRC).with_suffix("").parts))
        for call in calls:
            expr = ast.unparse(call.args[0])
            kind = eval(expr, vars(module), _Placeholders(module))  # noqa: S307 - our own source
            found[str(kind)] = f"{path.relative_to(SRC)}:{call.lineno} ({expr})"
    return found


def test_every_registry_kind_is_either_transferred_or_ephemeral() -> None:
    kinds = written_kinds()
    assert {"queue_limit", "schedule_state", "worker", "batch:X"} <= set(kinds), kinds
    undecided = {kind: where for kind, where in kinds.items()
                 if kind not in DURABLE_KINDS and kind not in EPHEMERAL_KINDS
                 and not any(kind.startswith(p) for p in DURABLE_PREFIXES)}
    assert undecided == {}, ("registry kinds neither copied by `taskqueue transfer` nor listed "
                             "as ephemeral in taskqueue/transfer.py: " + repr(undecided))
    assert not set(DURABLE_KINDS) & set(EPHEMERAL_KINDS)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[QueueManager]:
    manager = QueueManager.from_url(f"sqlite:///{tmp_path / 'source.db'}", encryption_key=KEY)
    yield manager
    manager.close()


KEY = generate_key()


def test_transfer_carries_every_durable_kind(source: QueueManager, store_url: str) -> None:
    src = source.driver
    source.pause_queue("paused-q")
    set_queue_limit(src, "limited", rate="5/s", concurrency=2)
    store = ScheduleStore(src)
    store.add(Schedule.create("nightly", "tests.add", cron="0 3 * * *", args=[1, 2]))
    store.record_fire("nightly", Schedule.create("x", "t", cron="@daily").since)
    series = source.push(t.add.call([1, 1], {}), every=3600)
    stop_series(source, series)
    batch_id = source.batch([t.add.s(1, 2)], name="b")
    source.plaintext.turn_on()
    per_kind = {kind: len(src.registry_list(kind)) for kind in DURABLE_KINDS}
    assert all(per_kind.values()), f"the setup wrote every durable kind: {per_kind}"

    target = open_driver(store_url)
    try:
        report = transfer(src, target)
        assert report.verified and report.copied == 2, report.to_dict()  # the series and batch jobs
        for kind in DURABLE_KINDS:
            assert sorted(map(repr, target.registry_list(kind))) == sorted(
                map(repr, src.registry_list(kind))), kind
        assert target.registry_list(f"batch:{batch_id}") == src.registry_list(f"batch:{batch_id}")
        assert report.registry_entries == sum(per_kind.values()) + 1
        with QueueManager.from_url(store_url, encryption_key=KEY) as moved:
            assert moved.paused_queues() == ["paused-q"]
            assert queue_limits(moved.driver)["limited"]["concurrency"] == 2
            nightly = ScheduleStore(moved.driver).require("nightly")
            assert nightly.last_fire is not None and nightly.args == (1, 2)
            assert moved.plaintext.is_on(fresh=True)
            assert moved.batch_status(batch_id).total == 1  # type: ignore[union-attr]
            assert {r.state for r in moved.search()} == {State.PENDING}
        again = transfer(src, target)
        assert again.copied == 0 and again.verified, "a second run only resumes"
    finally:
        target.close()
