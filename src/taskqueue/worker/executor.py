"""Runs one job: decode, resolve, call (sync or async) under a soft timeout, capture the outcome.

Soft timeout: sync jobs on the main thread get :class:`JobTimeout` raised inside them by a
``SIGALRM`` timer (it interrupts ``time.sleep`` and most blocking calls); sync jobs on other
threads get it injected asynchronously between bytecodes; ``async def`` jobs are cancelled
(``asyncio.CancelledError`` inside the job) and recorded as timed out. Catch the exception to clean
up. The supervisor's hard timeout kills a process that ignores it.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # the C module behind signal
import inspect
import signal
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from taskqueue.errors import JobCancelled, JobTimeout
from taskqueue.jobs.context import JobContext, Snooze, bind_context, unbind_context
from taskqueue.jobs.definition import Runnable
from taskqueue.middleware import Kind, Outcome

if TYPE_CHECKING:
    import asyncio


class Executor:
    """Runs jobs on the calling thread; async jobs on one long-lived event loop.

    With ``shared_loop`` (used with ``--concurrency``), the loop runs in its own thread and
    every job thread submits its coroutine there, so async jobs run concurrently on one loop.
    """

    def __init__(self, shared_loop: bool = False) -> None:
        #: id(runnable) -> (runnable, is it ``async def``?): inspect is slow
        self._is_async: dict[int, tuple[Runnable, bool]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        if shared_loop:
            import asyncio

            self._loop = asyncio.new_event_loop()
            self._loop_thread = threading.Thread(target=self._loop.run_forever,
                                                 name="taskqueue-asyncio", daemon=True)
            self._loop_thread.start()

    def close(self) -> None:
        if _alarm_thread():
            disarm_alarm()
        if self._loop is None:
            return
        if self._loop_thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop_thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()
        self._loop = None

    def run(self, runnable: Runnable, body: dict[str, Any], ctx: JobContext) -> Outcome:
        started = time.perf_counter()
        token = bind_context(ctx)
        try:
            known = self._is_async.get(id(runnable))
            if known is None or known[0] is not runnable:
                known = self._is_async[id(runnable)] = (runnable, runnable.is_async())
            if known[1]:
                value = self._run_async(runnable, body, ctx)
            else:
                with soft_timeout(ctx.timeout, ctx.job_id) as interrupter:
                    ctx._interrupt = interrupter.interrupt
                    value = runnable.run(body, ctx)
                    # a sync wrapper may return a coroutine
                    if value is not None and inspect.isawaitable(value):
                        value = self._await(value, ctx)
        except Snooze as snooze:
            return Outcome(Kind.SNOOZE, time.perf_counter() - started, snooze=snooze.seconds)
        except JobCancelled as exc:
            return Outcome(Kind.CANCELLED, time.perf_counter() - started, error=exc)
        except BaseException as exc:  # noqa: BLE001 - every job error is recorded
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            return Outcome(Kind.ERROR, time.perf_counter() - started, error=exc,
                           traceback=traceback.format_exc())
        finally:
            ctx._interrupt = None
            unbind_context(token)
        return Outcome(Kind.OK, time.perf_counter() - started, result=value)

    def _run_async(self, runnable: Runnable, body: dict[str, Any], ctx: JobContext) -> Any:
        return self._await(runnable.run(body, ctx), ctx)

    def _await(self, awaitable: Any, ctx: JobContext) -> Any:
        import asyncio

        if self._loop is None:
            self._loop = asyncio.new_event_loop()

        loop = self._loop

        async def guarded() -> Any:
            task = asyncio.current_task()
            assert task is not None
            ctx._interrupt = lambda exc: loop.call_soon_threadsafe(task.cancel)
            try:
                async with asyncio.timeout(ctx.timeout):
                    return await awaitable
            except TimeoutError:
                raise JobTimeout(f"job {ctx.job_id} timed out after {ctx.timeout}s") from None
            except asyncio.CancelledError:
                if ctx.is_cancelled:
                    raise JobCancelled(f"job {ctx.job_id} was cancelled") from None
                raise

        if self._loop_thread is not None:
            return asyncio.run_coroutine_threadsafe(guarded(), self._loop).result()
        return self._loop.run_until_complete(guarded())


class soft_timeout:  # noqa: N801 - used as a context manager
    """Raise JobTimeout in the current thread after ``seconds``; ``interrupt(exc)`` raises
    another exception there at once (from any thread), e.g. JobCancelled.

    On the main thread one ``ITIMER_REAL`` serves every job: a job whose deadline is later than
    the alarm already pending leaves it alone (the handler re-arms it for the job running when
    it fires), so back-to-back short jobs cost no system call each."""

    def __init__(self, seconds: float, job_id: str) -> None:
        self.seconds = seconds
        self.job_id = job_id
        self.deadline = 0.0
        self._exc: BaseException | None = None
        self._thread_id = 0
        self._armed = False
        self._timer: threading.Timer | None = None
        self._signal = False

    @property
    def message(self) -> str:
        return f"job {self.job_id} timed out after {self.seconds}s"

    def __enter__(self) -> soft_timeout:
        if self.seconds <= 0:
            return self
        self._armed = True
        if _alarm_thread():
            global _ACTIVE
            self._signal = True
            _install_alarm_handler()
            self.deadline = time.monotonic() + self.seconds
            _ACTIVE = self
            _alarm_by(self.deadline)
        else:
            self._thread_id = target = threading.get_ident()
            self._timer = threading.Timer(self.seconds, self._inject, args=(target,))
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._armed = False
        if self._timer is not None:
            self._timer.cancel()
        if self._signal:
            global _ACTIVE
            _ACTIVE = None  # the pending alarm, if any, finds no job and re-arms nothing

    def interrupt(self, exc: BaseException) -> None:
        """Raise ``exc`` in the job's thread as soon as possible (safe from other threads)."""
        if not self._armed:
            return
        self._exc = exc
        if self._signal:
            _alarm_in(0.001)
        elif self._timer is not None:
            self._timer.cancel()
            self._inject(self._thread_id)

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if not self._armed:
            return
        remaining = self.deadline - time.monotonic()
        if self._exc is None and remaining > 0.0005:
            _alarm_by(self.deadline)  # an earlier job's alarm: wait for this job's deadline
            return
        self._armed = False
        raise self._exc or JobTimeout(self.message)

    def _inject(self, thread_id: int) -> None:
        if self._armed:
            self._armed = False
            exc_type = type(self._exc) if self._exc is not None else JobTimeout
            import ctypes  # only when a thread's job overruns: not on every worker's start

            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
            )


_ACTIVE: soft_timeout | None = None
_HAS_ALARM = hasattr(signal, "SIGALRM")
_MAIN_THREAD = threading.main_thread().ident
#: When the pending ITIMER_REAL alarm fires (monotonic), or None when none is pending.
_ALARM_AT: float | None = None


def _alarm_thread() -> bool:
    """Can this thread use the SIGALRM timer (the main thread, on a platform that has it)?"""
    return _HAS_ALARM and threading.get_ident() == _MAIN_THREAD


def _alarm_by(deadline: float) -> None:
    """Make sure SIGALRM fires no later than ``deadline`` (monotonic)."""
    if _ALARM_AT is None or deadline < _ALARM_AT or time.monotonic() > _ALARM_AT:
        _alarm_in(max(deadline - time.monotonic(), 0.0001))


def _alarm_in(seconds: float) -> None:
    global _ALARM_AT
    _ALARM_AT = time.monotonic() + seconds
    signal.setitimer(signal.ITIMER_REAL, seconds)


def disarm_alarm() -> None:
    """Cancel the pending alarm (the worker is stopping)."""
    global _ALARM_AT
    if _ALARM_AT is not None:
        _ALARM_AT = None
        signal.setitimer(signal.ITIMER_REAL, 0)


def _install_alarm_handler() -> None:
    """Install the SIGALRM handler when it is not ours already (re-installing it for every job
    costs system calls); it forwards to the soft timeout of the job running now, if any."""
    if _signal.getsignal(signal.SIGALRM) is not _on_alarm:  # the C call: no enum conversion
        signal.signal(signal.SIGALRM, _on_alarm)


def _on_alarm(signum: int, frame: Any) -> None:
    global _ALARM_AT
    _ALARM_AT = None
    active = _ACTIVE
    if active is not None:
        active._on_alarm(signum, frame)


def describe(exc: BaseException) -> str:
    """``Type: message`` for one-line summaries."""
    return f"{type(exc).__name__}: {exc}"

