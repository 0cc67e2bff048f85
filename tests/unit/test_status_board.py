"""The status board's table of running jobs: exact after any mix of job threads."""

from __future__ import annotations

import threading

from taskqueue.worker.board import MAX_LISTED, Boards, StatusPublisher


def _publisher() -> tuple[Boards, StatusPublisher]:
    boards = Boards(2)
    return boards, StatusPublisher(boards, boards.take())


def test_job_threads_starting_and_ending_at_once_leave_the_table_exact() -> None:
    boards, board = _publisher()
    soon: list[int] = []
    board.soon_at = 5000
    board.soon = lambda: soon.append(1)
    go = threading.Barrier(8)

    def jobs(thread: int) -> None:
        go.wait()
        for k in range(1000):
            job_id = f"{thread}-{k}"
            board.started(job_id, 1, 1, 60.0, 3)
            assert job_id in board.running
            board.ended(job_id)

    threads = [threading.Thread(target=jobs, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert boards.started(board.index) == set()
    assert sorted(board._free) == list(range(MAX_LISTED)) and not board.running
    assert soon == [1]  # the 5,000th start of 8,000, once


def test_more_running_jobs_than_the_table_holds_read_as_unknown_until_they_end() -> None:
    boards, board = _publisher()
    ids = [f"job-{i}" for i in range(MAX_LISTED + 3)]
    for job_id in ids:
        board.started(job_id, 1, 1, 60.0, 3)
    assert boards.started(board.index) is None
    for job_id in ids[-3:]:  # those beyond the table
        board.ended(job_id)
    assert boards.started(board.index) == set(ids[:MAX_LISTED])
    for job_id in ids[:MAX_LISTED]:
        board.ended(job_id)
    board.ended("never-started")
    assert boards.started(board.index) == set()
