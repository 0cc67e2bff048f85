"""This process's id, read without a system call.

The files backend asks for it several times per job: its locks, spare inodes and counter
journal belong to one process and are dropped in a forked child (whose inherited descriptors
would share the parent's ``flock`` locks), and temp file names carry it. ``os.getpid()`` is a
system call each time (about 12 per job); this value is refreshed in every child that
``os.fork()`` makes (``os.register_at_fork``), which is how Python forks (``multiprocessing``,
the fork server of ``taskqueue work``).
"""

from __future__ import annotations

import os

_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def current() -> int:
    """The id of the running process."""
    return _pid
