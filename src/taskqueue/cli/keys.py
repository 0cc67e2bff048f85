"""``key:reencrypt`` and ``key:accept-plaintext``: encryption keys and the jobs under them.

Rotation: put the new key in ``ENCRYPTION_KEY`` and the old one in ``ENCRYPTION_PREVIOUS_KEYS``,
restart producers and workers, then run ``taskqueue key:reencrypt``. It re-encrypts the payload
of every *pending* job with the current key (oldest first, a page at a time). Jobs in any other
state (retrying, processing, failed, cancelled, completed, and stored results) keep their old
ciphertext, so the old key must stay in ``ENCRYPTION_PREVIOUS_KEYS`` until those jobs are gone
(finished and pruned, or retried and re-encrypted by a later run). Key material is never printed.

Switching encryption on: with ``ENCRYPTION_KEY`` set, unencrypted payloads are refused (the job
fails, as a tampered one does). Jobs queued before the key was set are unencrypted: run
``taskqueue key:accept-plaintext`` to let them run, then ``taskqueue key:reencrypt``, which
encrypts the pending ones (counted as "encrypted", apart from "re-encrypted") and turns the switch
off again once no unencrypted job is left waiting.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import click

from taskqueue.cli.output import console, emit_json, open_manager
from taskqueue.codec.crypto import KEY_ID_SIZE
from taskqueue.codec.envelope import FLAG_ENCRYPTED, MAGIC, VERSION
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


def _is_plain(payload: bytes) -> bool:
    """True for a well-formed envelope header that says "not encrypted"."""
    return len(payload) >= _HEADER and payload[:2] == MAGIC and payload[2] == VERSION \
        and not payload[3] & FLAG_ENCRYPTED


def _current_key(manager: Any) -> bytes:
    ring = manager.codec.keyring
    if ring is None or not ring.enabled or ring.current_id is None:
        raise click.UsageError("ENCRYPTION_KEY is not set: there is no key to encrypt "
                               "with (create one with `taskqueue key:generate`)")
    return bytes(ring.current_id)


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
    """Encrypt PENDING jobs with the current ENCRYPTION_KEY (after a rotation, or after turning
    encryption on with key:accept-plaintext, which this turns off again when it is done)."""
    manager = open_manager(ctx)
    try:
        current = _current_key(manager)
        accepting = manager.plaintext.is_on(fresh=True)
        counts, problems = _reencrypt_pending(manager, current, accepting, batch, dry_run)
        others: Counter[str] = Counter()
        plain_waiting = 0
        for page in _pages(manager, tuple(s for s in State if s != State.PENDING), batch):
            for record in page:
                kid = _key_of(record.payload)
                if kid is not None and kid != current:
                    others[record.state.value] += 1
                elif _is_plain(record.payload) and record.state in (State.RETRYING,
                                                                     State.PROCESSING):
                    plain_waiting += 1
        plain_waiting += counts["left_pending_plain"]
        switch = "off"
        if accepting and not dry_run and plain_waiting == 0:
            manager.plaintext.turn_off()
            switch = "turned off"
        elif accepting:
            switch = "on"
    finally:
        manager.close()
    summary = _summary(current, dry_run, counts, problems, others, switch, plain_waiting)
    if as_json:
        emit_json(summary)
    else:
        _print_summary(summary)
    if counts["unreadable"] or counts["unencrypted_refused"]:
        ctx.exit(1)


def _reencrypt_pending(manager: Any, current: bytes, accepting: bool, batch: int,
                       dry_run: bool) -> tuple[Counter[str], list[dict[str, str]]]:
    """Put every pending job under the current key; count what happened to each."""
    counts: Counter[str] = Counter()
    problems: list[dict[str, str]] = []
    for page in _pages(manager, (State.PENDING,), batch):
        now = manager.driver.now()
        for record in page:
            counts["pending"] += 1
            if _key_of(record.payload) == current:
                counts["already_current"] += 1
                continue
            plain = _is_plain(record.payload)
            if plain and not accepting:
                counts["unencrypted_refused"] += 1
                continue
            try:
                body = manager.codec.decode(record.payload, job_id=record.id,
                                            queue=record.queue_name, allow_plaintext=plain)
                payload = manager.codec.encode(body, job_id=record.id, queue=record.queue_name)
            except PayloadError as exc:  # undecryptable: its key is not in the ring
                counts["unreadable"] += 1
                if len(problems) < 20:
                    problems.append({"id": record.id, "reason": str(exc)})
                continue
            verb = "encrypted" if plain else "reencrypted"
            if dry_run:
                counts[f"would_{verb}"] += 1
                continue
            remaining = max(0.0, (record.available_at - now).total_seconds())
            if manager.driver.replace_payload(record.id, payload, remaining):
                counts[verb] += 1
            else:
                counts["left_pending"] += 1  # reserved or cancelled meanwhile
                counts["left_pending_plain"] += plain
    return counts, problems


_ADVICE = ("jobs that are not pending keep their old ciphertext: keep the old key in "
           "ENCRYPTION_PREVIOUS_KEYS until they are gone")


def _summary(current: bytes, dry_run: bool, counts: Counter[str], problems: list[dict[str, str]],
             others: Counter[str], switch: str, plain_waiting: int) -> dict[str, Any]:
    return {"current_key_id": current.hex(), "dry_run": dry_run,
            "pending_seen": counts["pending"], "already_current": counts["already_current"],
            "reencrypted": counts["reencrypted"], "encrypted": counts["encrypted"],
            "would_reencrypt": counts["would_reencrypted"],
            "would_encrypt": counts["would_encrypted"],
            "left_pending_state_meanwhile": counts["left_pending"],
            "unencrypted_refused": counts["unencrypted_refused"],
            "unencrypted_still_running": plain_waiting, "accept_plaintext": switch,
            "unreadable": counts["unreadable"], "unreadable_examples": problems,
            "old_key_in_other_states": dict(others), "note": _ADVICE}


def _print_summary(s: dict[str, Any]) -> None:
    dry = s["dry_run"]
    prefix = "would " if dry else ""
    moved = s["would_reencrypt"] if dry else s["reencrypted"]
    sealed = s["would_encrypt"] if dry else s["encrypted"]
    console.print(f"{prefix}re-encrypt{'' if dry else 'ed'} {moved} of {s['pending_seen']} "
                  f"pending jobs with key {s['current_key_id']} ({s['already_current']} already "
                  f"used it)")
    if sealed:
        console.print(f"{prefix}encrypt{'' if dry else 'ed'} {sealed} pending jobs that were "
                      "not encrypted at all")
    if s["left_pending_state_meanwhile"]:
        console.print(f"{s['left_pending_state_meanwhile']} jobs started or were cancelled "
                      "meanwhile and kept their old payload")
    if s["unencrypted_refused"]:
        console.print(f"[red]{s['unencrypted_refused']} pending jobs are not encrypted[/red]: "
                      "they will fail when run. If they were queued before ENCRYPTION_KEY was "
                      "set, run `taskqueue key:accept-plaintext`, then this command again")
    if s["accept_plaintext"] == "turned off":
        console.print("Unencrypted payloads are refused again (key:accept-plaintext is off)")
    elif s["accept_plaintext"] == "on":
        console.print(f"Unencrypted payloads are still accepted: {s['unencrypted_still_running']}"
                      " unencrypted jobs are running or retrying; run this command again "
                      "when they are done")
    if s["unreadable"]:
        console.print(f"[red]{s['unreadable']} pending jobs could not be decrypted with any key "
                      "in the ring[/red] (their key is missing from ENCRYPTION_PREVIOUS_KEYS), "
                      "e.g. " + "; ".join(f"{p['id']}: {p['reason']}"
                                          for p in s["unreadable_examples"][:3]))
    detail = ", ".join(f"{n} {state}" for state, n in sorted(s["old_key_in_other_states"].items()))
    console.print(f"Note: {s['note']}" + (f" (now: {detail})." if detail else "."))


@click.command("key:accept-plaintext")
@click.option("--off", is_flag=True, help="Refuse unencrypted payloads again.")
@click.pass_context
def key_accept_plaintext(ctx: click.Context, off: bool) -> None:
    """Let jobs queued before ENCRYPTION_KEY was set run (a migration switch; needs the key).

    While it is on, a worker with ENCRYPTION_KEY set runs unencrypted payloads instead of failing
    them, which also lets anyone who can write to the store inject plain arguments: keep it on only
    until `taskqueue key:reencrypt` has encrypted the waiting jobs (it turns the switch off)."""
    manager = open_manager(ctx)
    try:
        _current_key(manager)
        if off:
            manager.plaintext.turn_off()
        else:
            manager.plaintext.turn_on()
    finally:
        manager.close()
    if off:
        console.print("Unencrypted payloads are refused (jobs that have one fail)")
    else:
        console.print("Unencrypted payloads are accepted by workers within 5 s; run "
                      "`taskqueue key:reencrypt` to encrypt the waiting jobs and turn this off")


COMMANDS = [key_reencrypt, key_accept_plaintext]

__all__ = ["COMMANDS", "key_accept_plaintext", "key_reencrypt"]
