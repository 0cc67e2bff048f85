"""Enqueue in step with Django's transactions.

Inside ``transaction.atomic()`` a job must appear only if the transaction commits, or a worker
may run it before the rows it needs exist (or after they were rolled back). Two ways:

* the jobs live in the same PostgreSQL database as Django (``use_django_db``): the job row is
  written on Django's own connection, inside the transaction: it exists if and only if the
  transaction commits (exactly once, even if the process dies right after the commit);
* any other store: the job is validated and encoded at once (so a bad argument fails in your
  code), and pushed by ``transaction.on_commit``: never for a rolled-back transaction, but lost
  if the process dies between the commit and the push.

Outside a transaction (autocommit) the job is pushed at once.
"""

from __future__ import annotations

from typing import Any, ParamSpec, TypeVar

from django.db import DEFAULT_DB_ALIAS, transaction

from taskqueue.contrib.django.conf import django_db_alias, get_manager
from taskqueue.jobs.definition import Call, Job, Task
from taskqueue.manager import JobHandle, QueueManager

P = ParamSpec("P")
R = TypeVar("R")


def enqueue(job: Job | Call, *, using: str | None = None, manager: QueueManager | None = None,
            **options: Any) -> JobHandle:
    """Push ``job`` (a ``Job`` or ``task.s(...)``) when the transaction of database ``using``
    commits; ``options`` are per-call job options (``queue``, ``delay``, ...).

    Returns the job's id at once (for a duplicate ``idempotency_key`` pushed after the commit,
    the store keeps the first job and this id never appears)."""
    alias = using or DEFAULT_DB_ALIAS
    manager = manager or get_manager()
    connection = transaction.get_connection(alias)
    if not connection.in_atomic_block:
        return manager.push(job, **options)
    new = manager.prepare(job, **options)
    if manager is get_manager() and django_db_alias() == alias and _is_psycopg3(connection):
        connection.ensure_connection()
        return manager.push_prepared([new], connection=connection.connection)[0]
    transaction.on_commit(lambda: manager.push_prepared([new]), using=alias)
    return JobHandle(new.id, manager)


def delay_on_commit(task: Task[P, R], /, *args: P.args, **kwargs: P.kwargs) -> JobHandle:
    """``task.delay(*args, **kwargs)`` in step with the default database's transaction; type
    checkers check the arguments against the task's signature."""
    return enqueue(task.call(args, kwargs))


def _is_psycopg3(connection: Any) -> bool:
    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return bool(is_psycopg3)
