"""Exit codes of ``taskqueue work``, for systemd, Kubernetes and scripts.

docs/reliability.md has the table; tests/integration/test_exit_codes.py proves each one.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    #: Stopped as asked (SIGTERM, SIGINT) or, with --stop-when-empty, the queues are drained.
    OK = 0
    #: An unexpected error in the supervisor (a traceback is printed).
    ERROR = 1
    #: A bad command line or configuration (click's usage error).
    USAGE = 2
    #: Worker slots were given up (each crashed MAX_CRASHES times within CRASH_WINDOW) and no
    #: slot is left running.
    GAVE_UP = 3
    #: The fork server could not be started, or died too often: no worker can be started.
    FORK_SERVER_FAILED = 4
