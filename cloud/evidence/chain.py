"""The hash-chained event timeline of one session (pure).

Each event holds the previous event's hash; its own hash covers its sequence number, time,
kind, actor, data and that previous hash:

    hash_i = H(canonical({seq, at, kind, actor, data, prev: hash_{i-1}}))

with H = SM3 or SHA-256 (the crypto suite). Changing any event changes its hash; rewriting
its hash breaks the next event's ``prev``; rewriting the whole chain changes the head, which
the cloud's signature covers. ``check`` names the first event where the chain breaks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloud.evidence.canonical import canonical
from common import suite as suite_lib

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    at: str
    kind: str
    actor: str
    data: Mapping[str, Any]
    prev: str
    hash: str

    def body(self) -> dict[str, Any]:
        """Everything the hash covers."""
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "actor": self.actor,
            "data": dict(self.data),
            "prev": self.prev,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash}

    @classmethod
    def from_json(cls, raw: Any) -> Event:
        if not isinstance(raw, dict):
            raise ValueError("event must be an object")
        try:
            return cls(
                int(raw["seq"]),
                str(raw["at"]),
                str(raw["kind"]),
                str(raw["actor"]),
                dict(raw["data"]),
                str(raw["prev"]),
                str(raw["hash"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"malformed event: {err}") from err


def event_hash(suite: suite_lib.Suite, body: Mapping[str, Any]) -> str:
    return suite_lib.digest(suite, canonical(body)).hex()


@dataclass(slots=True)
class Timeline:
    """An append-only chain under construction (the session service keeps one per session)."""

    suite: suite_lib.Suite
    events: list[Event] = field(default_factory=list)

    @property
    def head(self) -> str:
        return self.events[-1].hash if self.events else GENESIS

    def append(
        self, kind: str, actor: str, at: dt.datetime, data: Mapping[str, Any] | None = None
    ) -> Event:
        if at.tzinfo is None:
            raise ValueError("naive datetime; pass an aware UTC time")
        body = {
            "seq": len(self.events),
            "at": at.astimezone(dt.UTC).isoformat(),
            "kind": kind,
            "actor": actor,
            "data": dict(data or {}),
            "prev": self.head,
        }
        event = Event(**body, hash=event_hash(self.suite, body))  # type: ignore[arg-type]
        self.events.append(event)
        return event


def describe(event: Event) -> str:
    step = event.data.get("step")
    what = f"{event.kind} {step}" if step else event.kind
    return f"event {event.seq} ({what} by {event.actor} at {event.at})"


def check(suite: suite_lib.Suite, events: Sequence[Event]) -> list[str]:
    """Every break in the chain, first one first; empty if the chain is intact."""
    problems: list[str] = []
    prev = GENESIS
    for index, event in enumerate(events):
        if event.seq != index:
            problems.append(f"event at position {index} has seq {event.seq}: removed or reordered")
        if event.prev != prev:
            problems.append(
                f"{describe(event)}: previous-hash link broken "
                "(an earlier event was rewritten, removed or inserted)"
            )
        if event_hash(suite, event.body()) != event.hash:
            problems.append(f"{describe(event)}: content altered (hash mismatch)")
        prev = event.hash
    return problems
