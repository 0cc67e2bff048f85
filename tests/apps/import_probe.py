"""An app module that logs every import of itself, for the fork server tests.

``TQ_TEST_IMPORT_LOG``: a file that gets one line (the pid) per import.
``TQ_TEST_IMPORT_FAIL_IF``: a path; while it exists, importing this module fails (a broken deploy).
"""

from __future__ import annotations

import os

_log = os.environ.get("TQ_TEST_IMPORT_LOG")
if _log:
    with open(_log, "a") as fh:
        fh.write(f"{os.getpid()}\n")

_fail_if = os.environ.get("TQ_TEST_IMPORT_FAIL_IF")
if _fail_if and os.path.exists(_fail_if):
    raise ImportError(f"import_probe refuses to load while {_fail_if} exists")
