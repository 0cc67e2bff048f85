"""Copying SQLite's write-ahead log back into the database, off the callers' commit path.

SQLite's automatic checkpoint runs inside whichever commit pushes the WAL past its threshold,
and that commit pays for the checkpoint's fsync: one push in a hundred took 10-25 ms on a busy
disk instead of 0.1 ms. Here a background thread with its own connection runs a *passive*
checkpoint (it never waits for, nor blocks, readers and writers) at most about once a second,
or sooner after many commits, and once more when its driver closes if the connection committed
since the last look. That last one matters for short-lived processes: a recycled worker (1,000
jobs, ~50 ms) closes long before its first one-second look, so without it no worker life ever
checkpointed, the WAL filled to the automatic threshold and one commit of a running worker
copied all of it back (a 30-70 ms stall every ~24,000 jobs, measured). The automatic
checkpoint stays on with a higher threshold, as a safety net for a WAL the thread cannot keep
up with.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading

#: Pages in the WAL before a commit checkpoints by itself (SQLite's default is 1,000).
AUTOCHECKPOINT_PAGES = 10_000
#: Commits after which the thread is woken early; otherwise it looks once per interval.
WAKE_AFTER_COMMITS = 200
INTERVAL_SECONDS = 1.0


class Checkpointer:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)  # the thread may start after a chdir
        self._commits = 0
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def committed(self) -> None:
        """Called after each commit of the owning connection (cheap: a counter)."""
        self._commits += 1
        if self._thread is None:
            self.start()
        elif self._commits >= WAKE_AFTER_COMMITS:
            self._wake.set()

    def start(self) -> None:
        """Start the thread now (else the first commit does)."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name="taskqueue-sqlite-checkpoint",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while True:
                self._wake.wait(INTERVAL_SECONDS)
                self._wake.clear()
                closing = self._closed  # read first: commits made before close() are seen
                if self._commits:  # after close() too: nothing written is left behind
                    self._commits = 0
                    with contextlib.suppress(sqlite3.Error):  # busy or closed: next round
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                if closing:
                    return
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
