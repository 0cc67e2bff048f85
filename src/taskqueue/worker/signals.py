"""Signals -> worker intents. Handlers only flip flags; the loop does the work.

* SIGTERM, SIGINT: graceful stop (finish the running job, hand reserved jobs back, exit 0);
* a second SIGINT: stop at once (the running job is interrupted and handed back with the
  reserved ones, no attempt used);
* SIGUSR1: graceful recycle (in a supervised pool the process is replaced);
* SIGUSR2: pause / resume taking jobs.

A supervised worker (``install(..., supervised=True)``) leaves SIGUSR2 to its supervisor, which
sends it an explicit ``PAUSE`` or ``RESUME`` (real-time signals, where the platform has them):
a SIGUSR2 sent to the whole process group (``systemctl kill -s USR2``, ``kill -USR2 -PGID``)
would otherwise flip each worker twice, once itself and once forwarded, and leave it running.
On its own SIGUSR1 a supervisor recycles its workers with ``RECYCLE``; a supervised worker
still recycles on a SIGUSR1 of its own (the dashboard's "recycle", ``kill -USR1 PID``), a
standby does not (``child.run_worker``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from typing import Any, Protocol

log = logging.getLogger("taskqueue.worker")

_HANDLED = ("SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2")
#: What a supervisor sends its workers to pause / resume them (None: SIGUSR2 toggles).
PAUSE: int | None = signal.SIGRTMIN + 1 if hasattr(signal, "SIGRTMIN") else None
RESUME: int | None = signal.SIGRTMIN + 2 if hasattr(signal, "SIGRTMIN") else None
#: What a supervisor sends its workers to recycle them on its SIGUSR1 (None: SIGUSR1). Its
#: own signal, so a standby can ignore a SIGUSR1 sent to the whole group (the supervisor
#: dismisses standbys on a reload) and still get one sent to it just after it took over.
RECYCLE: int | None = signal.SIGRTMIN + 3 if hasattr(signal, "SIGRTMIN") else None
#: What a worker acts on besides the stop signals (a supervised worker ignores SIGUSR2). A
#: forked worker inherits its fork server's SIG_IGN of each: they stay blocked from before the
#: fork until its handlers are installed (``forkserver._fork_worker``, ``child.run_worker``).
CONTROLS: tuple[int, ...] = tuple(s for s in (signal.SIGUSR1, signal.SIGUSR2, PAUSE, RESUME,
                                             RECYCLE) if s is not None)


class Controllable(Protocol):
    def request_stop(self, reason: str = ...) -> None: ...
    def stop_now(self, reason: str = ...) -> bool: ...
    def toggle_pause(self) -> bool: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...


#: Set while a handler's action runs; actions of handlers that interrupt it wait in _queued.
_running = False
_queued: list[Callable[[], bool | None]] = []


def guarded(action: Callable[[], bool | None]) -> None:
    """Run a signal handler's ``action``, or queue it when another handler's action is running.

    Python runs a handler between any two bytecodes of the main thread, another handler's
    included: a SIGHUP arriving while the SIGTERM handler was inside ``Event.set`` (holding
    the event's lock) set the same event and waited for that lock for ever (a standby told
    to stop as its supervisor died stayed behind, orphaned, holding the command's output
    pipes). Queued actions run when the running one is done. An action returning True asks
    for a ``KeyboardInterrupt`` in the main thread (to leave a job's code), raised after all
    of them ran."""
    global _running
    if _running:
        _queued.append(action)
        return
    interrupt = False
    while True:
        _running = True
        try:
            interrupt = bool(action()) or interrupt
            while _queued:
                interrupt = bool(_queued.pop(0)()) or interrupt
        finally:
            _running = False
        if not _queued:  # one queued between the last look and the flag's reset
            break
        action = _queued.pop(0)
    if interrupt:
        raise KeyboardInterrupt


def on_orphaned(worker: Controllable, reason: str) -> None:
    """Handle SIGHUP (sent when the parent dies, ``die_with_parent``): stop at once, handing
    running and reserved jobs back, and leave the job's code."""
    signal.signal(signal.SIGHUP,
                  lambda signum, frame: guarded(lambda: worker.stop_now(reason)))


def pause_signal(paused: bool) -> int:
    """The signal a supervisor sends its workers to put them in the ``paused`` state."""
    wanted = PAUSE if paused else RESUME
    return wanted if wanted is not None else signal.SIGUSR2


def recycle_signal() -> int:
    """The signal a supervisor sends its workers to recycle them."""
    return RECYCLE if RECYCLE is not None else signal.SIGUSR1


def install(worker: Controllable, supervised: bool = False) -> None:
    """Install the handlers (main thread only); ``supervised``: pausing is the supervisor's
    (``PAUSE`` and ``RESUME`` set the state; SIGUSR2 is ignored)."""
    interrupts = 0

    def on_term(signum: int, frame: Any) -> None:
        guarded(lambda: worker.request_stop(f"received {signal.Signals(signum).name}"))

    def interrupted() -> bool:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:  # True: leave the job's code; the job is handed back
            return worker.stop_now("received SIGINT twice (stopped at once)")
        worker.request_stop("received SIGINT (press Ctrl+C again to stop at once)")
        return False

    def on_int(signum: int, frame: Any) -> None:
        guarded(interrupted)

    def on_usr1(signum: int, frame: Any) -> None:
        guarded(lambda: worker.request_stop("received SIGUSR1 (recycle)"))

    def toggled() -> None:
        paused = worker.toggle_pause()
        log.warning("worker %s by SIGUSR2", "paused" if paused else "resumed")

    def on_usr2(signum: int, frame: Any) -> None:
        guarded(toggled)

    handlers = {"SIGTERM": on_term, "SIGINT": on_int, "SIGUSR1": on_usr1, "SIGUSR2": on_usr2}
    for name, handler in handlers.items():
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)
    if supervised and RECYCLE is not None:
        signal.signal(RECYCLE, on_usr1)
    if supervised and PAUSE is not None and RESUME is not None:
        def paused() -> None:
            worker.pause()
            log.warning("worker paused by its supervisor (SIGUSR2)")

        def resumed() -> None:
            worker.resume()
            log.warning("worker resumed by its supervisor (SIGUSR2)")

        def on_pause(signum: int, frame: Any) -> None:
            guarded(paused)

        def on_resume(signum: int, frame: Any) -> None:
            guarded(resumed)

        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        signal.signal(PAUSE, on_pause)
        signal.signal(RESUME, on_resume)


@contextlib.contextmanager
def installed(worker: Controllable) -> Iterator[None]:
    """``install`` for the duration of a block, then the previous handlers come back (an
    in-process worker must not leave its handlers behind in the application)."""
    numbers = [getattr(signal, name) for name in _HANDLED if hasattr(signal, name)]
    previous = {signum: signal.getsignal(signum) for signum in numbers}
    install(worker)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
