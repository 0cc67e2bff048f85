"""The fork server: a small process that forks worker processes with everything preloaded.

A fresh interpreter that imports taskqueue, the store's driver and the user's app costs a
worker 0.2-0.5 s of start-up and its own copy of every module; the fork server pays that once.
It is born one of two ways:

* **forked from the supervisor** when ``taskqueue work`` starts, right after the app was
  imported and *before* the supervisor opens any store connection or starts any thread (checked:
  a process with threads is not forked, a fresh server is started instead);
* **as a fresh interpreter** (``python -m taskqueue.worker.forkserver``) on SIGUSR1, so a
  deploy's new code is loaded, and when a server died.

It never opens a store connection, runs single-threaded, and freezes its objects (``gc.freeze``)
so that forked children do not copy its pages when their garbage collector runs. Each child
opens its own connections after the fork. The server reaps its children and reports their exit
codes to the supervisor. It dies with the supervisor (``PR_SET_PDEATHSIG`` on Linux; elsewhere it
notices its parent changed or its socket closed), and its workers die with it the same way.

Protocol over a Unix socket pair, fixed frames of three ints::

    supervisor -> server   SPAWN region n     fork a worker that reports on board ``region``,
                                              its worker id ending in ``id_suffix(n)``; a
                                              standby (bit 30 of n) waits for SIGCONT;
                                              a paused one (bit 29) takes no job until
                                              resumed
                           QUIT               exit once every child has exited
    server -> supervisor   STARTED region pid
                           EXITED pid code    code as multiprocessing gives it (-N: signal N)
                           READY              (a fresh server, once the app is imported)
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

import orjson

from taskqueue.config import Settings
from taskqueue.worker import signals
from taskqueue.worker.board import Boards
from taskqueue.worker.orphans import die_with_parent
from taskqueue.worker.runner import WorkerOptions

if TYPE_CHECKING:
    import subprocess

log = logging.getLogger("taskqueue.supervisor")

SPAWN, QUIT = 1, 2
STARTED, EXITED, READY = 1, 2, 3
_FRAME = struct.Struct("=iii")
_SUFFIX, _STANDBY, _PAUSED = 0xFFFFFF, 1 << 30, 1 << 29  # the third int of SPAWN
#: Seconds a fresh server may take to import the app before it is called broken.
READY_TIMEOUT = 60.0
#: Signals that stop a worker by default, which the server itself ignores.
_STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Every signal the server ignores: sent to the whole process group, they are the supervisor's.
GROUP_SIGNALS = (*_STOPS, *signals.CONTROLS)


class ForkServerError(RuntimeError):
    """A fork server could not be started, or stopped answering."""


@dataclass
class Recipe:
    """What every worker is made of: inherited by a forked server, sent as JSON to a fresh one
    (settings are plain values; extra middleware objects cannot travel, the CLI has none)."""

    settings: Settings
    options: WorkerOptions
    apps: list[str]
    log_setup: tuple[str, str] | None
    boards_fd: int
    capacity: int
    notify_fd: int
    boards: Boards | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> bytes:
        if self.options.middleware:
            raise ForkServerError("a fresh fork server cannot be given middleware objects")
        options = {f.name: getattr(self.options, f.name) for f in fields(self.options)
                   if f.name != "middleware"}
        return orjson.dumps({"settings": asdict(self.settings), "options": options,
                             "apps": self.apps, "log_setup": self.log_setup,
                             "boards_fd": self.boards_fd, "capacity": self.capacity,
                             "notify_fd": self.notify_fd})

    @classmethod
    def from_json(cls, raw: bytes) -> Recipe:
        data = orjson.loads(raw)
        log_setup = data["log_setup"]
        return cls(Settings(**data["settings"]), WorkerOptions(**data["options"]),
                   data["apps"], tuple(log_setup) if log_setup else None,
                   data["boards_fd"], data["capacity"], data["notify_fd"])


class ForkServer:
    """The supervisor's end of one fork server."""

    def __init__(self, sock: socket.socket, pid: int, popen: subprocess.Popen[bytes] | None
                 = None) -> None:
        self.sock = sock
        self.pid = pid
        self.popen = popen
        self.exits: list[tuple[int, int]] = []
        self.gone = False
        self._buffer = b""

    # -- birth ------------------------------------------------------------------------------------
    @classmethod
    def start(cls, recipe: Recipe) -> ForkServer:
        """Fork one from this process when that is safe (one thread), else start a fresh one."""
        if threading.active_count() == 1:
            return cls.forked(recipe)
        return cls.fresh(recipe)

    @classmethod
    def forked(cls, recipe: Recipe) -> ForkServer:
        preload(recipe)  # in this process: the server and its children share these pages
        ours, theirs = socket.socketpair()
        supervisor = os.getpid()
        for stream in (sys.stdout, sys.stderr):  # or the server would print it again
            stream.flush()
        pid = os.fork()
        if pid == 0:  # the server
            code = 1
            try:
                ours.close()
                code = serve(theirs, recipe, supervisor)
            except BaseException:  # noqa: BLE001 - report and leave, never return into click
                traceback.print_exc()
            finally:
                _exit(code)
        theirs.close()
        return cls(ours, pid)

    @classmethod
    def fresh(cls, recipe: Recipe) -> ForkServer:
        """A new interpreter that imports the app anew (new code after a deploy)."""
        import subprocess  # a forked server (the usual birth) never needs it

        ours, theirs = socket.socketpair()
        fds = (theirs.fileno(), recipe.boards_fd, recipe.notify_fd)
        try:
            popen = subprocess.Popen(
                [sys.executable, "-m", "taskqueue.worker.forkserver", str(theirs.fileno()),
                 str(os.getpid())], pass_fds=fds, close_fds=True)
        except OSError as exc:
            ours.close()
            raise ForkServerError(f"cannot start a fork server: {exc}") from exc
        finally:
            theirs.close()
        server = cls(ours, popen.pid, popen)
        blob = recipe.to_json()
        try:
            ours.sendall(struct.pack("=I", len(blob)) + blob)
            server._expect(READY, READY_TIMEOUT)
        except (ForkServerError, OSError) as exc:
            server.kill()
            raise ForkServerError(f"a fresh fork server could not load the app ({exc}); see "
                                  "its error above") from exc
        return server

    # -- verbs ------------------------------------------------------------------------------------
    def spawn(self, region: int, suffix: int, standby: bool = False,
              paused: bool = False) -> int:
        """Fork a worker reporting on ``region``, its worker id ending in ``id_suffix(suffix)``
        (a ``standby`` waits for SIGCONT before it starts; a ``paused`` one takes no job until
        resumed); its pid."""
        self._send(SPAWN, region, (suffix & _SUFFIX) | (_STANDBY if standby else 0)
                   | (_PAUSED if paused else 0))
        frame = self._expect(STARTED, 10.0)
        return frame[2]

    def poll(self) -> list[tuple[int, int]]:
        """Exits reported since the last call: (pid, exit code)."""
        self._receive(0.0)
        exits, self.exits = self.exits, []
        return exits

    def quit(self) -> None:
        with contextlib.suppress(OSError):
            self._send(QUIT)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.close()

    def close(self) -> None:
        """Close our end (the server leaves when it sees it) and reap the server."""
        self.gone = True
        if self.sock.fileno() < 0:
            return
        self.sock.close()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                if self.popen is not None:
                    if self.popen.poll() is not None:
                        return
                elif os.waitpid(self.pid, os.WNOHANG)[0]:
                    return
            except ChildProcessError:
                return
            time.sleep(0.01)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def fileno(self) -> int:
        return self.sock.fileno()

    # -- plumbing ---------------------------------------------------------------------------------
    def _send(self, kind: int, a: int = 0, b: int = 0) -> None:
        self.sock.sendall(_FRAME.pack(kind, a, b))

    def _expect(self, kind: int, timeout: float) -> tuple[int, int, int]:
        deadline = time.monotonic() + timeout
        while True:
            for frame in self._receive(max(0.0, deadline - time.monotonic())):
                if frame[0] == kind:
                    return frame
            if self.gone:
                raise ForkServerError(f"the fork server (pid {self.pid}) is gone")
            if time.monotonic() >= deadline:
                raise ForkServerError(f"the fork server (pid {self.pid}) did not answer "
                                      f"within {timeout:.0f}s")

    def _receive(self, timeout: float) -> list[tuple[int, int, int]]:
        """Read what is there (waiting up to ``timeout`` for the first bytes); exits are
        queued, other frames returned."""
        if self.gone:
            return []
        frames = []
        ready, _, _ = select.select([self.sock], [], [], timeout)
        while ready:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self.gone = True
                break
            self._buffer += data
            ready, _, _ = select.select([self.sock], [], [], 0)
        while len(self._buffer) >= _FRAME.size:
            frame = _FRAME.unpack_from(self._buffer)
            self._buffer = self._buffer[_FRAME.size:]
            if frame[0] == EXITED:
                self.exits.append((frame[1], frame[2]))
            else:
                frames.append(frame)
        return frames


# -- the server process ---------------------------------------------------------------------------
def serve(sock: socket.socket, recipe: Recipe, supervisor: int) -> int:
    """The server's loop: fork on request, reap and report, leave with the supervisor."""
    die_with_parent(signal.SIGKILL, supervisor, thread=False)
    # a signal to the whole group (the terminal's ^C, systemd's stop of every process in the
    # unit, `kill -TERM -PGID`) is the supervisor's to handle: the server leaves with it
    for signum in GROUP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)  # (a worker keeps these until it handles them)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w)
    if recipe.boards is None:
        recipe.boards = Boards(recipe.capacity, recipe.boards_fd)
    gc.freeze()  # children's collections leave these pages shared
    children: set[int] = set()
    quitting = False

    def plumbing() -> None:  # closed in each child: the server's own ends
        sock.close()
        os.close(wake_r)
        os.close(wake_w)

    while True:
        ready, _, _ = select.select([sock.fileno(), wake_r], [], [], 1.0)
        with contextlib.suppress(OSError):
            os.read(wake_r, 4096)
        try:
            for pid, code in _reap():
                children.discard(pid)
                sock.sendall(_FRAME.pack(EXITED, pid, code))
            orphaned = os.getppid() != supervisor
            frame = b""
            if sock.fileno() in ready and not orphaned:
                frame = sock.recv(_FRAME.size, socket.MSG_WAITALL)
        except OSError:
            orphaned = True
        if orphaned or (sock.fileno() in ready and len(frame) < _FRAME.size):
            _orphan(children)  # the supervisor is gone: so are its workers
            return 0
        if frame:
            kind, region, extra = _FRAME.unpack(frame)
            if kind == SPAWN:
                pid = _fork_worker(recipe, region, extra, plumbing)
                children.add(pid)
                sock.sendall(_FRAME.pack(STARTED, region, pid))
            elif kind == QUIT:
                quitting = True
        if quitting and not children:
            return 0


def _orphan(children: set[int]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGHUP)


def _reap() -> list[tuple[int, int]]:
    exits: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return exits
        if pid == 0:
            return exits
        exits.append((pid, os.waitstatus_to_exitcode(status)))


def id_suffix(number: int) -> str:
    """The last part of a worker id, from the number the supervisor chose for it."""
    return f"{number:06x}"



def _fork_worker(recipe: Recipe, region: int, extra: int, plumbing: Callable[[], None]) -> int:
    server = os.getpid()
    standby = bool(extra & _STANDBY)
    # Blocked across the fork: the server ignores every signal a worker acts on, and a child
    # inherits that until it resets them (the stop signals, at once) or installs its handlers
    # (the supervisor's pause, resume and recycle, once the store is open: run_worker unblocks
    # them). One sent in that window (the supervisor stopping or pausing right after it asked
    # for this worker, on a busy machine) was dropped: a SIGTERM let the worker run on until
    # the grace period's SIGKILL, a pause let it take jobs. Blocked, it stays pending (Linux
    # keeps a blocked signal even while it is ignored). A standby's SIGCONT, sent at once,
    # stays pending until it waits for it.
    held = {*GROUP_SIGNALS, signal.SIGCONT} if standby else set(GROUP_SIGNALS)
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    pid = os.fork()
    if pid:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        return pid
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, *_STOPS):
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)
        plumbing()
        from taskqueue.worker.child import run_worker

        code = run_worker(recipe, region, server, id_suffix(extra & _SUFFIX), standby,
                          paused=bool(extra & _PAUSED))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the exit code tells the supervisor
        traceback.print_exc()
    finally:
        _exit(code)
    return 0  # never reached


def _exit(code: int) -> None:
    """Leave a forked process without running the parent's atexit hooks or finalizers."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def main(argv: list[str]) -> int:
    """``python -m taskqueue.worker.forkserver FD SUPERVISOR_PID``: a fresh server."""
    sock = socket.socket(fileno=int(argv[0]))
    supervisor = int(argv[1])
    size = struct.unpack("=I", sock.recv(4, socket.MSG_WAITALL))[0]
    recipe = Recipe.from_json(sock.recv(size, socket.MSG_WAITALL))
    if recipe.log_setup:
        from taskqueue.observability.logging import configure

        configure(*recipe.log_setup)
    preload(recipe)
    sock.sendall(_FRAME.pack(READY, 0, 0))
    return serve(sock, recipe, supervisor)


def preload(recipe: Recipe) -> None:
    """Import what every worker needs, so no child imports it again: the worker loop, the
    store's driver module (without connecting) and the user's app."""
    import importlib

    import taskqueue.worker.child  # noqa: F401 - the worker loop and what it imports
    from taskqueue.drivers import preload_driver

    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    preload_driver(recipe.settings.database_url)
    for spec in recipe.apps:
        for name in filter(None, (s.strip() for s in spec.split(","))):
            importlib.import_module(name)
    from taskqueue.observability.tracing import preload as preload_tracing

    preload_tracing()  # after the app, which may have set up OpenTelemetry


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
