"""Work a test hands to another thread, joined and checked by the test.

``with in_thread(fn, delay=0.3): ...`` calls ``fn`` in a thread (after ``delay`` seconds) while
the block runs, waits for it when the block ends, and raises in the test what ``fn`` raised. A
bare ``threading.Timer`` can outlive its test: it then acts on a driver the test closed
meanwhile, and its exception is only a ``PytestUnhandledThreadExceptionWarning`` attached to
whichever test runs at that moment.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def in_thread(fn: Callable[[], object], *, delay: float = 0.0,
              timeout: float = 30.0) -> Iterator[threading.Thread]:
    failed: list[BaseException] = []
    cancelled = threading.Event()

    def run() -> None:
        if cancelled.wait(delay):
            return  # the block ended (it raised) before the delay: nothing to do
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            failed.append(exc)

    thread = threading.Thread(target=run, name=f"test-{getattr(fn, '__name__', 'call')}",
                              daemon=True)
    thread.start()
    try:
        yield thread
    except BaseException:
        cancelled.set()
        thread.join(timeout)
        raise
    thread.join(timeout)
    assert not thread.is_alive(), f"{fn!r} still running after {timeout:g} s"
    if failed:
        raise failed[0]
