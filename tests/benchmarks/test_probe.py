"""The benchmark probe numbers every drain job of a run once, across threads and processes."""

from __future__ import annotations

import importlib
import os
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("BENCH_COUNT_FILE", str(tmp_path / "count"))
    monkeypatch.delenv("BENCH_PROBE_PORT", raising=False)
    monkeypatch.syspath_prepend(str(REPO))
    sys.modules.pop("benchmarks.probe", None)
    return importlib.import_module("benchmarks.probe")


def test_threads_of_one_process_never_read_back_the_same_number(probe: ModuleType) -> None:
    seen: list[int] = []

    def work() -> None:
        for _ in range(3_000):
            seen.append(probe._next()[0])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 24_001))


def test_a_forked_child_counts_on_from_the_run_total(probe: ModuleType) -> None:
    assert probe._next() == (1, 1)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first job is the run's second, its own first
        os.write(write, repr(probe._next()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 100) == b"(2, 1)"
    assert probe._next() == (3, 2)
