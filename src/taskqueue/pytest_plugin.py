"""pytest fixtures for applications that use taskqueue; pytest loads this plugin by itself
when taskqueue is installed (the ``pytest11`` entry point ``taskqueue``).

* ``taskqueue_manager``: a :class:`~taskqueue.QueueManager` on a fresh SQLite file in the
  test's ``tmp_path``, made the default manager (so ``task.delay()`` goes there) for the test;
* ``taskqueue_drain``: ``taskqueue_drain(**options)`` runs every ready job now and returns the
  worker's summary (see :func:`taskqueue.testing.drain` for the options);
* ``taskqueue_enqueued``: an :class:`~taskqueue.testing.EnqueueRecorder` of the test's jobs
  (``taskqueue_enqueued.assert_enqueued(send_welcome, args=[42], queue="emails")``);
* ``taskqueue_inline``: jobs run as soon as they are pushed, for the whole test.

taskqueue itself is imported only when a test asks for one of these fixtures, so the plugin
costs nothing to test suites that do not use them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from taskqueue.manager import QueueManager
    from taskqueue.testing import EnqueueRecorder
    from taskqueue.worker.runner import WorkerSummary


@pytest.fixture
def taskqueue_manager(tmp_path: Path) -> Iterator[QueueManager]:
    """A manager on an SQLite store of this test's own, and the default one meanwhile."""
    from taskqueue.testing import isolated_manager

    with isolated_manager(tmp_path / "taskqueue.db") as manager:
        yield manager


@pytest.fixture
def taskqueue_drain(taskqueue_manager: QueueManager) -> Callable[..., WorkerSummary]:
    """Call it to run every ready job of the test's store now."""
    from taskqueue.testing import drain

    run: Callable[..., WorkerSummary] = functools.partial(drain, taskqueue_manager)
    return run


@pytest.fixture
def taskqueue_enqueued(taskqueue_manager: QueueManager) -> Iterator[EnqueueRecorder]:
    """What the test enqueued, with ``assert_enqueued`` / ``assert_not_enqueued``."""
    from taskqueue.testing import recorder

    with recorder(taskqueue_manager) as recording:
        yield recording


@pytest.fixture
def taskqueue_inline(taskqueue_manager: QueueManager) -> Iterator[QueueManager]:
    """Run each job as soon as it is pushed; a job's exception fails the push."""
    from taskqueue.testing import inline

    with inline(taskqueue_manager) as manager:
        yield manager
