"""A module no worker may ever import because of something stored in a job.

Importing it writes a sentinel file (``TQ_EVIL_SENTINEL``, else one in the temp dir), so a test
can prove from outside a process that it was never imported. Nothing imports it on purpose.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SENTINEL = os.environ.get("TQ_EVIL_SENTINEL") or str(
    Path(tempfile.gettempdir()) / f"taskqueue-evil-module-imported-{os.getuid()}")
Path(SENTINEL).write_text(f"imported by pid {os.getpid()}\n")


def run(*args: object, **kwargs: object) -> str:
    Path(SENTINEL).write_text("ran\n")
    return "pwned"
