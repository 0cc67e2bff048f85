"""Imported first by every worker process that ``manage.py taskqueue_work`` starts (``--app``):
sets Django up, so jobs can use the ORM, and closes stale database connections around each
job, as Django does around each request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import django
from django.db import close_old_connections

from taskqueue.middleware import Middleware, register_default

if TYPE_CHECKING:
    from taskqueue.jobs.context import JobContext
    from taskqueue.jobs.definition import Runnable
    from taskqueue.jobs.model import JobRecord
    from taskqueue.middleware import Outcome, Postpone

django.setup()


@register_default
class DjangoConnections(Middleware):
    """Drop database connections that are broken or older than ``CONN_MAX_AGE``."""

    def before_run(self, job: JobRecord, ctx: JobContext, runnable: Runnable,
                   options: dict[str, Any]) -> Postpone | None:
        close_old_connections()
        return None

    def after_run(self, job: JobRecord, ctx: JobContext, outcome: Outcome) -> None:
        close_old_connections()
