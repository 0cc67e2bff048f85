"""The client layer: validate, encode, push, inspect and control jobs in a store.

``Client`` sits on the drivers, the codec, observability's event bus and the workflows; the
worker takes one, and ``QueueManager`` (the public facade) is one that can also run a worker.
"""

from taskqueue.client.client import FOREVER, PAUSED, PRUNE_BATCH, Client
from taskqueue.client.store import check_schema, check_transactional, codec_from
from taskqueue.jobs.settle import delay_seconds

__all__ = ["FOREVER", "PAUSED", "PRUNE_BATCH", "Client", "check_schema", "check_transactional",
           "codec_from", "delay_seconds"]
