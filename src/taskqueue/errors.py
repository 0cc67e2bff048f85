"""Every error taskqueue raises derives from :class:`TaskQueueError`.

The hierarchy::

    TaskQueueError
     ├── ConfigError            bad settings, URL or CLI input (exit code 2)
     ├── InvalidTransition      a state move the state machine forbids
     ├── PayloadError           arguments or stored bytes that cannot be encoded/decoded
     │    ├── PayloadTooLarge   over the size limit after compression
     │    └── DecryptionError   wrong key, tampered bytes, or ciphertext moved between jobs
     │         └── UnencryptedPayload  a plain payload while ENCRYPTION_KEY is set (a downgrade)
     ├── UnknownTask            a job names a task this process has not registered
     ├── JobNotFound            no job with that id
     ├── JobFailed              waited for a result, but the job failed or was cancelled
     ├── DriverError            the store failed
     │    ├── DriverUnavailable the store cannot be reached (workers retry with backoff)
     │    └── Conflict          a unique constraint or a lost race
     └── JobInterrupt           raised *inside* a running job
          ├── JobTimeout        its soft timeout passed (catch it to clean up)
          └── JobCancelled      somebody cancelled it while it ran

    NonRetryable               raise it from a job to send it straight to the dead letter queue
                               (an ordinary Exception subclass, not a TaskQueueError)

Native errors (sqlite3, psycopg, redis, OSError) are translated inside the drivers; errors that
reach the CLI carry ``exit_code``.
"""

from __future__ import annotations


class TaskQueueError(Exception):
    """Root of every taskqueue error."""

    exit_code = 1


class ConfigError(TaskQueueError):
    """Settings, a connection URL or a command-line value is wrong."""

    exit_code = 2


class InvalidTransition(TaskQueueError):
    """A job was asked to move between two states that the state machine does not connect."""

    def __init__(self, source: str, target: str) -> None:
        super().__init__(f"illegal state transition {source!r} -> {target!r}")
        self.source = source
        self.target = target


class PayloadError(TaskQueueError):
    """Job arguments cannot be serialized, or a stored payload cannot be decoded."""

    exit_code = 2


class PayloadTooLarge(PayloadError):
    """The encoded payload is larger than the configured limit."""


class DecryptionError(PayloadError):
    """The payload could not be decrypted (wrong key, tampering, or copied from another job)."""


class UnencryptedPayload(DecryptionError):
    """A payload is not encrypted although ``ENCRYPTION_KEY`` is set.

    Refused, because anyone who can write to the store could otherwise swap an authenticated
    payload for plain arguments of their choosing.  Jobs queued before encryption was switched on
    are let through only while the operator's migration switch is on
    (``taskqueue key:accept-plaintext``; ``taskqueue key:reencrypt`` turns it off again)."""


class UnknownTask(TaskQueueError):
    """A job names a task that is not registered in this process."""


class JobNotFound(TaskQueueError):
    """No job has the given id."""


class JobFailed(TaskQueueError):
    """A job whose result was awaited ended in ``failed`` or ``cancelled``."""

    def __init__(self, job_id: str, state: str, exception: str | None) -> None:
        last = (exception or "").strip().splitlines()[-1:] or ["no reason recorded"]
        super().__init__(f"job {job_id} {state}: {last[0]}")
        self.job_id = job_id
        self.state = state
        self.exception = exception


class DriverError(TaskQueueError):
    """The storage backend failed."""


class DriverUnavailable(DriverError):
    """The storage backend cannot be reached; callers may retry with backoff."""


class Conflict(DriverError):
    """A unique constraint or a concurrent change prevented the operation."""


class JobInterrupt(TaskQueueError):
    """Raised inside a running job to make it stop."""


class JobTimeout(JobInterrupt):
    """The job ran past its timeout; catch it to clean up, then re-raise or return."""


class JobCancelled(JobInterrupt):
    """The job was cancelled while it was running."""


class NonRetryable(Exception):  # noqa: N818 - reads naturally at the raise site
    """Raise from a job to fail it at once, skipping the remaining attempts."""
