"""Keys the client adds to a job's body next to its arguments, read back by the worker and
the workflows. They travel inside the (possibly encrypted) payload, never as columns."""

#: Body key telling the worker the enqueuer chose the timeout (so ``--timeout`` leaves it alone).
TIMEOUT_SET = "timeout_set"
#: Body key carrying the options that are not columns but that the worker's middleware reads.
RUN_OPTIONS = "_opts"
#: Body key for workflow bookkeeping (chain position, recurring series, batch callbacks).
WORKFLOW = "_wf"
#: Job options that travel under ``RUN_OPTIONS``.
RUN_OPTION_NAMES = ("rate", "rate_key", "concurrency", "conditions", "retry_backoff",
                    "retry_backoff_max", "retry_jitter", "every", "pass_result",
                    "continue_on_failure")
