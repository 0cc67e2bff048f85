"""Compositions of jobs: chains, groups, batches, recurring jobs, unique jobs, sync runs.

Each reduces to plain jobs plus dependencies and idempotency keys in the store, so every backend
supports them unchanged.
"""

from taskqueue.workflows.batch import BatchStatus
from taskqueue.workflows.chain import chain, group

__all__ = ["BatchStatus", "chain", "group"]
