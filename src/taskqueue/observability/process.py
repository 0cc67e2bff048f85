"""This process's resident memory, cheaply: what a worker needs for its memory limit and status.

On Linux it is read from ``/proc/self/statm`` (what psutil reads too), so a worker does not
import psutil (about 1 MB resident) for it; elsewhere psutil answers.
"""

from __future__ import annotations

import os
import sys

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = "/proc/self/statm"


def rss_bytes() -> int:
    """Resident set size of this process, in bytes."""
    if sys.platform.startswith("linux"):
        try:
            with open(_STATM, "rb") as fh:
                return int(fh.read().split()[1]) * _PAGE
        except (OSError, IndexError, ValueError):
            pass
    import psutil

    return int(psutil.Process().memory_info().rss)


def rss_mb() -> float:
    return rss_bytes() / (1024 * 1024)


def peak_rss_mb() -> float:
    """The highest resident size this process has had (one cheap system call; an upper bound
    of ``rss_mb()``, so a check against a limit can skip reading the current size)."""
    if resource is None:  # Windows
        return rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
