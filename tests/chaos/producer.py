"""A producer process for the chaos tests (so the test can kill -9 it mid-write).

    python -m tests.chaos.producer URL EFFECTS PRODUCER_LEDGER COUNT [BATCH] [SLEEP]

Before each batch it appends ``try ID`` lines, after the push returns ``ok ID`` lines (each
batch one write). An id with ``try`` but no ``ok`` is an unknown push.
"""

from __future__ import annotations

import os
import sys
import time

from taskqueue import QueueManager
from tests.chaos.harness import ProducerLedger, prepare


def _write(path: str, status: str, ids: list[str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, "".join(f"{status} {i}\n" for i in ids).encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: str) -> ProducerLedger:
    """``try``/``ok`` lines -> ok and unknown ids."""
    tried: list[str] = []
    ok: set[str] = set()
    if os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) != 2:
                    continue
                (tried.append if parts[0] == "try" else ok.add)(parts[1])
    book = ProducerLedger()
    book.ok = [i for i in tried if i in ok]
    book.unknown = [i for i in tried if i not in ok]
    return book


def main(argv: list[str]) -> None:
    url, effects, ledger, count = argv[0], argv[1], argv[2], int(argv[3])
    batch = int(argv[4]) if len(argv) > 4 else 50
    sleep = float(argv[5]) if len(argv) > 5 else 0.0
    manager = QueueManager.from_url(url)
    made = 0
    while made < count:
        jobs = prepare(manager, effects, min(batch, count - made), sleep)
        ids = [j.id for j in jobs]
        _write(ledger, "try", ids)
        manager.push_prepared(jobs)
        _write(ledger, "ok", ids)
        made += len(jobs)
        time.sleep(0.01)
    manager.close()


if __name__ == "__main__":
    main(sys.argv[1:])
