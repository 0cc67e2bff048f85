"""Alerts: rules evaluated by one elected node, with one notification per incident.

The rules themselves live in :mod:`taskqueue.observability.rules` (re-exported here):

* ``failure_rate``  more than ``threshold`` percent of the jobs that finished in ``window``
                    failed (at least ``min_jobs`` finished; ``include_retries`` counts failed
                    attempts that will be retried too);
* ``queue_depth``   more than ``threshold`` jobs in ``states`` (pending and retrying);
* ``oldest_job``    the oldest due job has waited more than ``max_age`` seconds;
* ``no_worker``     no live worker serves the queue (for ``"*"``: a queue with waiting jobs);
* ``worker_memory`` a worker's resident memory is above ``max_mb`` (subject: the worker);
* ``dead_letter``   more than ``threshold`` jobs (default 0) failed into the dead letter queue
                    within ``window``.

Incidents. An alert is one rule on one subject. It notifies ``firing`` once, ``resolved`` once
when the condition clears, and, if ``repeat_after`` is set, a reminder while it keeps firing.
``cooldown`` is the least time between two notifications of one alert, so a flapping condition
cannot spam: a re-fire inside the cooldown is announced only if it is still firing when the
cooldown ends (and one that clears before is never announced, nor its resolution).
State lives in the registry (kind ``alert_state``), so a new leader carries on where the old one
stopped; every notification is kept in ``alert_history`` with each channel's delivery result.

Configuration comes from ``alerts.toml`` (or a ``[alerts]`` table in ``taskqueue.toml``, or a
JSON file), or is built in Python; see ``docs/observability.md``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import re
import threading
import time
import tomllib
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from taskqueue.drivers.base import Driver
from taskqueue.errors import ConfigError
from taskqueue.observability.notifiers import LogNotifier, Notification, Notifier, build_channel
from taskqueue.observability.rules import (
    RULES,
    DeadLetter,
    FailureRate,
    Finding,
    NoWorker,
    OldestJob,
    QueueDepth,
    Rule,
    Snapshot,
    WorkerMemory,
)

__all__ = [
    "ALERT_HISTORY", "ALERT_STATE", "LOCK", "RULES", "AlertConfig", "AlertService",
    "DeadLetter", "FailureRate", "Finding", "NoWorker", "OldestJob", "QueueDepth", "Rule",
    "Snapshot", "WorkerMemory", "config_from_dict", "find_config", "load_config",
    "parse_duration",
]

log = logging.getLogger("taskqueue.alerts")

ALERT_STATE = "alert_state"
ALERT_HISTORY = "alert_history"
LOCK = "alerts"
_KEEP_FIRING = 7 * 24 * 3600.0


# -- configuration ------------------------------------------------------------------------------

@dataclass
class AlertConfig:
    rules: list[Rule]
    channels: dict[str, Notifier] = field(default_factory=dict)
    interval: float = 30.0
    cooldown: float = 300.0
    repeat_after: float = 0.0
    history_ttl: float = 7 * 24 * 3600.0


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_DURATION_KEYS = {"window", "max_age", "interval", "cooldown", "repeat_after", "history_ttl"}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like ``"90s"``, ``"5m"``, ``"1h"``, ``"2d"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ConfigError(f"not a duration: {value!r} (use seconds or e.g. '5m', '1h')")
    return float(match.group(1)) * _UNITS[match.group(2)]


def build_rule(spec: Mapping[str, Any]) -> Rule:
    kind = str(spec.get("kind", ""))
    cls = RULES.get(kind)
    if cls is None:
        hint = difflib.get_close_matches(kind, RULES, n=1)
        raise ConfigError(f"alert rule kind {kind!r} is unknown"
                          + (f" (did you mean {hint[0]!r}?)" if hint else "")
                          + f"; kinds: {', '.join(sorted(RULES))}")
    allowed = {f.name for f in fields(cls)}
    options: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "kind":
            continue
        if key not in allowed:
            hint = difflib.get_close_matches(key, allowed, n=1)
            raise ConfigError(f"alert rule {spec.get('name', kind)!r}: unknown option {key!r}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        if key in _DURATION_KEYS:
            value = parse_duration(value)
        elif key in ("channels", "states"):
            value = (value,) if isinstance(value, str) else tuple(value)
        options[key] = value
    return cls(**options)


def _resolve_secrets(spec: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``password_env = "SMTP_PASSWORD"`` becomes ``password`` read from ``env``."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key.endswith("_env"):
            if str(value) not in env:
                raise ConfigError(f"alert channel {spec.get('name')!r}: environment variable "
                                  f"{value!r} ({key}) is not set")
            out[key[:-4]] = env[str(value)]
        else:
            out[key] = value
    return out


def config_from_dict(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> AlertConfig:
    table = data.get("alerts", data)
    known = {"rules", "channels", "interval", "cooldown", "repeat_after", "history_ttl"}
    for key in table:
        if key not in known:
            raise ConfigError(f"alerts: unknown setting {key!r}; expected {sorted(known)}")
    channels: dict[str, Notifier] = {}
    for spec in table.get("channels", []):
        channel = build_channel(_resolve_secrets(spec, env or {}))
        channels[channel.name] = channel
    rules = [build_rule(spec) for spec in table.get("rules", [])]
    for rule in rules:
        missing = [c for c in rule.channels if c not in channels]
        if missing:
            raise ConfigError(f"alert rule {rule.name!r} names unknown channel(s) {missing}")
    timing = {k: parse_duration(table[k]) for k in known - {"rules", "channels"} if k in table}
    return AlertConfig(rules, channels, **timing)


def load_config(path: Path, env: Mapping[str, str] | None = None) -> AlertConfig:
    """Read rules and channels from a TOML or JSON file."""
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read alert rules from {path}: {exc}") from exc
    return config_from_dict(data, env)


def find_config(explicit: Path | None = None, cwd: Path | None = None) -> Path | None:
    """``explicit``, else ``alerts.toml``, else ``taskqueue.toml`` when it has ``[alerts]``."""
    if explicit is not None:
        return explicit
    base = cwd or Path.cwd()
    if (base / "alerts.toml").is_file():
        return base / "alerts.toml"
    main = base / "taskqueue.toml"
    try:
        if main.is_file() and "alerts" in tomllib.loads(main.read_text()):
            return main
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return None


# -- evaluation ---------------------------------------------------------------------------------

class AlertService:
    """Evaluates the rules on the leader and notifies; ``run_once()`` for tests and the CLI."""

    def __init__(self, driver: Driver, config: AlertConfig, *, owner: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.driver = driver
        self.config = config
        self.clock = clock
        self.owner = owner or f"alerts-{uuid.uuid4().hex[:12]}"
        self.channels: dict[str, Notifier] = dict(config.channels) or {"log": LogNotifier()}

    def evaluate(self, snap: Snapshot | None = None) -> tuple[list[Finding], set[str]]:
        """What fires now, and the names of rules that could not be evaluated."""
        snap = snap or Snapshot.read(self.driver)
        findings: list[Finding] = []
        broken: set[str] = set()
        for rule in self.config.rules:
            try:
                findings.extend(rule.evaluate(snap))
            except Exception:  # noqa: BLE001 - one broken rule must not silence the others
                log.exception("alert rule %s could not be evaluated", rule.name)
                broken.add(rule.name)
        return findings, broken

    def lead(self) -> bool:
        ttl = max(30.0, 3 * self.config.interval)
        return self.driver.lock_acquire(LOCK, self.owner, ttl)

    def run_once(self) -> list[Notification]:
        """If this node leads: evaluate, update incidents, notify; return what was sent."""
        if not self.lead():
            return []
        findings, broken = self.evaluate()
        return self.process(findings, broken)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - the service keeps going through store outages
                log.exception("alert evaluation failed; retrying in %.0fs", self.config.interval)
            stop.wait(self.config.interval)
        self.driver.lock_release(LOCK, self.owner)

    def process(self, findings: Sequence[Finding], broken: Collection[str] = ()
                ) -> list[Notification]:
        now = self.clock()
        states = {str(s["alert"]): s for s in self.driver.registry_list(ALERT_STATE)}
        sent = []
        for finding in findings:
            state = self._firing(states.get(finding.alert), finding, now)
            note = self._due(state, finding.rule, now)
            if note is not None and self._deliver(note, finding.rule):
                state.update(notified=True, last_notified=now)
                sent.append(note)
            self.driver.registry_put(ALERT_STATE, _key(finding.alert), state, _KEEP_FIRING)
        firing = {f.alert for f in findings}
        rules = {r.name: r for r in self.config.rules}
        for alert, state in states.items():
            if state["status"] != "firing" or alert in firing or state["rule"] in broken:
                continue
            sent.extend(self._resolve(state, rules.get(str(state["rule"])), now))
        return sent

    def _firing(self, state: dict[str, Any] | None, finding: Finding,
                now: float) -> dict[str, Any]:
        if state is None or state["status"] != "firing":
            state = {"alert": finding.alert, "rule": finding.rule.name, "status": "firing",
                     "since": now, "notified": False,
                     "last_notified": (state or {}).get("last_notified", 0.0)}
        state.update(kind=finding.rule.kind, subject=finding.subject, value=finding.value,
                     message=finding.message, severity=finding.rule.severity, checked=now)
        return state

    def _due(self, state: dict[str, Any], rule: Rule, now: float) -> Notification | None:
        since_last = now - float(state["last_notified"])
        if not state["notified"]:
            return self._note(state, rule, "firing") if since_last >= self.config.cooldown \
                else None
        if self.config.repeat_after and since_last >= self.config.repeat_after:
            return self._note(state, rule, "firing", reminder=True)
        return None

    def _resolve(self, state: dict[str, Any], rule: Rule | None,
                 now: float) -> list[Notification]:
        announced = bool(state["notified"])
        state.update(status="resolved", resolved_at=now, notified=False)
        sent = []
        if announced and rule is not None:
            note = self._note(state, rule, "resolved")
            if self._deliver(note, rule):
                state["last_notified"] = now
                sent.append(note)
        keep = max(self.config.cooldown, 60.0)
        self.driver.registry_put(ALERT_STATE, _key(str(state["alert"])), state, keep)
        return sent

    def _note(self, state: Mapping[str, Any], rule: Rule, status: str,
              reminder: bool = False) -> Notification:
        value = state.get("value")
        return Notification(
            alert=str(state["alert"]), rule=rule.name, kind=rule.kind,
            subject=str(state["subject"]), status=status, severity=rule.severity,
            message=str(state["message"]) if status == "firing"
            else f"resolved: {state['message']}",
            value=float(value) if isinstance(value, int | float) else None,
            since=float(state["since"]), reminder=reminder)

    def _deliver(self, note: Notification, rule: Rule) -> bool:
        """Send to the rule's channels (all when it names none); record it in the history."""
        targets = [self.channels[c] for c in rule.channels] or list(self.channels.values())
        results: dict[str, str] = {}
        for channel in targets:
            try:
                channel.send(note)
                results[channel.name] = "ok"
            except Exception as exc:  # noqa: BLE001 - one channel down must not stop the rest
                log.warning("alert %s not delivered to %s: %s", note.alert, channel.name, exc)
                results[channel.name] = f"error: {exc}"
        entry = {**note.to_dict(), "channels": results}
        self.driver.registry_put(ALERT_HISTORY, _key(f"{note.at:.6f}|{note.alert}|{note.status}"),
                                 entry, self.config.history_ttl)
        return any(r == "ok" for r in results.values())

    def history(self) -> list[dict[str, Any]]:
        """Notifications sent, oldest first, with each channel's delivery result."""
        return sorted(self.driver.registry_list(ALERT_HISTORY), key=lambda e: e.get("at", 0))

    def active(self) -> list[dict[str, Any]]:
        return [s for s in self.driver.registry_list(ALERT_STATE) if s["status"] == "firing"]


def _key(text: str) -> str:
    """A registry key of bounded length (MySQL keys are VARCHAR(255))."""
    if len(text) <= 200:
        return text
    return text[:150] + "~" + hashlib.sha1(text.encode()).hexdigest()
