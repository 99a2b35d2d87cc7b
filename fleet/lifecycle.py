"""The life of one cloud → terminal command. Pure: time is an argument.

::

    queued ──deliver──▶ sent ──reply ok──▶ succeeded
      │                   ├──reply not ok─▶ failed
      │                   └──timeout─────▶ timed_out
      ├──expiry (never online in time)──▶ expired
      └──cancel─────────────────────────▶ cancelled

A command waits in ``queued`` while its terminal is offline, for as long as its own expiry
allows (hours or days). It is signed only when delivered, with a signature window capped by
``common.wire.commands.MAX_TTL`` — so a long-lived command never needs a long-lived
signature. ``timeout_s`` bounds the wait for the reply after delivery.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum

from common.wire.commands import MAX_TTL
from fleet.errors import TransitionError


class State(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


FINAL = frozenset({State.SUCCEEDED, State.FAILED, State.TIMED_OUT, State.EXPIRED, State.CANCELLED})


@dataclass(frozen=True, slots=True)
class Spec:
    """How one kind of command behaves: reply timeout and default queue lifetime."""

    timeout_s: float
    default_ttl: dt.timedelta = dt.timedelta(hours=24)
    #: Operator-visible: destructive commands need an explicit confirmation in the UI.
    destructive: bool = False


#: The commands an operator can send (the MDM functions banks ask for), as data.
COMMANDS: dict[str, Spec] = {
    "ping": Spec(10, dt.timedelta(minutes=10)),
    "reboot": Spec(120),
    "restart_agent": Spec(60),
    # With ``upload``: bundle, then chunks over HTTPS that resume after drops.
    "collect_logs": Spec(900),
    "peripheral_selftest": Spec(60),
    "liveness_check": Spec(60),
    "set_config": Spec(30),
    "lock_screen": Spec(15),
    "unlock_screen": Spec(15),
    "wipe": Spec(120, destructive=True),
    "shadow_delta": Spec(30, dt.timedelta(days=7)),
    # OTA: download, verify, install into the inactive slot, switch, health check.
    "ota_install": Spec(900, dt.timedelta(days=7)),
    "ota_rollback": Spec(300, dt.timedelta(days=7)),
    # A new PIN key under the pad's master key (fleet.pinkeys); a day to reach the terminal,
    # by when the next rotation is due.
    "pinpad_load_working_key": Spec(30, dt.timedelta(hours=24)),
}


@dataclass(frozen=True, slots=True)
class Lifecycle:
    state: State
    created_at: dt.datetime
    expires_at: dt.datetime
    timeout_s: float
    sent_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None

    @property
    def deadline(self) -> dt.datetime:
        """When the current wait ends: the reply timeout once sent, else the expiry."""
        if self.state is State.SENT and self.sent_at is not None:
            return min(self.sent_at + dt.timedelta(seconds=self.timeout_s), self.expires_at)
        return self.expires_at


def new(name: str, now: dt.datetime, ttl: dt.timedelta | None = None) -> Lifecycle:
    spec = COMMANDS.get(name)
    if spec is None:
        raise ValueError(f"unknown command {name!r}; known: {sorted(COMMANDS)}")
    lifetime = ttl if ttl is not None else spec.default_ttl
    if lifetime <= dt.timedelta(0):
        raise ValueError("a command's lifetime must be positive")
    return Lifecycle(State.QUEUED, now, now + lifetime, spec.timeout_s)


def _finish(c: Lifecycle, state: State, now: dt.datetime) -> Lifecycle:
    return replace(c, state=state, finished_at=now)


def deliver(c: Lifecycle, now: dt.datetime) -> Lifecycle:
    if c.state is not State.QUEUED:
        raise TransitionError(f"cannot deliver a {c.state} command")
    if now >= c.expires_at:
        return _finish(c, State.EXPIRED, now)
    return replace(c, state=State.SENT, sent_at=now)


def signature_window(c: Lifecycle, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(issued, expires) for the signature made at delivery: never past MAX_TTL or expiry."""
    return now, min(now + MAX_TTL, c.expires_at)


def on_reply(c: Lifecycle, ok: bool, now: dt.datetime) -> Lifecycle:
    if c.state is not State.SENT:
        raise TransitionError(f"reply to a {c.state} command")
    return _finish(c, State.SUCCEEDED if ok else State.FAILED, now)


def tick(c: Lifecycle, now: dt.datetime) -> Lifecycle:
    """Expire a queued command past its expiry; time out a sent one past its deadline."""
    if c.state in FINAL or now < c.deadline:
        return c
    return _finish(c, State.TIMED_OUT if c.state is State.SENT else State.EXPIRED, now)


def cancel(c: Lifecycle, now: dt.datetime) -> Lifecycle:
    if c.state is not State.QUEUED:
        raise TransitionError(f"only a queued command can be cancelled, not a {c.state} one")
    return _finish(c, State.CANCELLED, now)
