"""``key:reencrypt``: move waiting jobs onto the current encryption key after a rotation.

Rotation: put the new key in ``ENCRYPTION_KEY`` and the old one in ``ENCRYPTION_PREVIOUS_KEYS``,
restart producers and workers, then run ``taskqueue key:reencrypt``. It re-encrypts the payload
of every *pending* job with the current key (oldest first, a page at a time). Jobs in any other
state (retrying, processing, failed, cancelled, completed, and stored results) keep their old
ciphertext, so the old key must stay in ``ENCRYPTION_PREVIOUS_KEYS`` until those jobs are gone
(finished and pruned, or retried and re-encrypted by a later run). Key material is never printed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import click

from taskqueue.cli.output import console, emit_json, open_manager
from taskqueue.codec.crypto import KEY_ID_SIZE
from taskqueue.codec.envelope import FLAG_ENCRYPTED, MAGIC
from taskqueue.drivers import JobFilter
from taskqueue.errors import PayloadError
from taskqueue.jobs.model import JobRecord
from taskqueue.jobs.states import State

_HEADER = len(MAGIC) + 2


def _key_of(payload: bytes) -> bytes | None:
    """The key id an envelope was encrypted with, or None for a plain (or foreign) payload."""
    if len(payload) >= _HEADER + KEY_ID_SIZE and payload[:2] == MAGIC \
            and payload[3] & FLAG_ENCRYPTED:
        return bytes(payload[_HEADER:_HEADER + KEY_ID_SIZE])
    return None


def _pages(manager: Any, states: tuple[State, ...], size: int) -> Any:
    after: str | None = None
    while True:
        page: list[JobRecord] = manager.search(JobFilter(states=states, limit=size,
                                                         after_id=after, newest_first=False))
        yield page
        if len(page) < size:
            return
        after = page[-1].id


@click.command("key:reencrypt")
@click.option("--batch", type=click.IntRange(min=1, max=10_000), default=500, show_default=True,
              help="Jobs read per page.")
@click.option("--dry-run", is_flag=True, help="Count what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def key_reencrypt(ctx: click.Context, batch: int, dry_run: bool, as_json: bool) -> None:
    """Re-encrypt PENDING jobs with the current ENCRYPTION_KEY (after a key rotation)."""
    manager = open_manager(ctx)
    try:
        ring = manager.codec.keyring
        if ring is None or not ring.enabled or ring.current_id is None:
            raise click.UsageError("ENCRYPTION_KEY is not set: there is no key to re-encrypt "
                                   "with (create one with `taskqueue key:generate`)")
        current = ring.current_id
        counts: Counter[str] = Counter()
        problems: list[dict[str, str]] = []
        for page in _pages(manager, (State.PENDING,), batch):
            now = manager.driver.now()
            for record in page:
                counts["pending"] += 1
                if _key_of(record.payload) == current:
                    counts["already_current"] += 1
                    continue
                try:
                    body = manager.decode(record)
                    payload = manager.codec.encode(body, job_id=record.id,
                                                   queue=record.queue_name)
                except PayloadError as exc:  # undecryptable: its key is not in the ring
                    counts["unreadable"] += 1
                    if len(problems) < 20:
                        problems.append({"id": record.id, "reason": str(exc)})
                    continue
                if dry_run:
                    counts["would_reencrypt"] += 1
                    continue
                remaining = max(0.0, (record.available_at - now).total_seconds())
                if manager.driver.replace_payload(record.id, payload, remaining):
                    counts["reencrypted"] += 1
                else:
                    counts["left_pending"] += 1  # reserved or cancelled meanwhile
        others: Counter[str] = Counter()
        for page in _pages(manager, tuple(s for s in State if s != State.PENDING), batch):
            for record in page:
                kid = _key_of(record.payload)
                if kid is not None and kid != current:
                    others[record.state.value] += 1
    finally:
        manager.close()
    advice = ("jobs that are not pending keep their old ciphertext: keep the old key in "
              "ENCRYPTION_PREVIOUS_KEYS until they are gone")
    summary = {"current_key_id": current.hex(), "dry_run": dry_run,
               "pending_seen": counts["pending"], "already_current": counts["already_current"],
               "reencrypted": counts["reencrypted"],
               "would_reencrypt": counts["would_reencrypt"],
               "left_pending_state_meanwhile": counts["left_pending"],
               "unreadable": counts["unreadable"], "unreadable_examples": problems,
               "old_key_in_other_states": dict(others), "note": advice}
    if as_json:
        emit_json(summary)
    else:
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        done = counts["would_reencrypt"] if dry_run else counts["reencrypted"]
        console.print(f"{verb} {done} of {counts['pending']} pending jobs with key "
                      f"{current.hex()} ({counts['already_current']} already used it)")
        if counts["left_pending"]:
            console.print(f"{counts['left_pending']} jobs started or were cancelled meanwhile "
                          "and kept their old ciphertext")
        if counts["unreadable"]:
            console.print(f"[red]{counts['unreadable']} pending jobs could not be decrypted "
                          "with any key in the ring[/red] (their key is missing from "
                          "ENCRYPTION_PREVIOUS_KEYS), e.g. " + "; ".join(
                              f"{p['id']}: {p['reason']}" for p in problems[:3]))
        detail = ", ".join(f"{n} {state}" for state, n in sorted(others.items()))
        console.print(f"Note: {advice}" + (f" (now: {detail})." if detail else "."))
    if counts["unreadable"]:
        ctx.exit(1)


COMMANDS = [key_reencrypt]

__all__ = ["COMMANDS", "key_reencrypt"]
