"""Running jobs: the worker loop, the executor, heartbeats, retries, signals, the supervisor."""
