"""What a participant gets to join a call: a Janus token, the room, the feeds, TURN (pure).

The ``Grant`` itself is the call codec's (``common.wire.call``): the terminal parses the
same class from its ``connect`` message.

Each grant carries a fresh random token (added to the node's stored tokens by the desk,
removed at hang-up) and the feeds: the customer publishes as ``customer``, each teller
as ``teller-<id>``, so a transferred call records every teller instead of overwriting
one. A teller who rejoins their call (a reloaded page) publishes as ``teller-<id>~<n>``:
a fresh feed, so the recording gets a new segment rather than overwriting the first, and
the terminal follows it as it follows a transfer (``~`` is not allowed in account ids, so
no other teller's feed can look the same). A third party (a supervisor or customer
manager joining the call) publishes as ``guest-<account>`` and watches both the customer
and the teller's current feed. With a ``TurnConfig``, the grant holds time-limited TURN
credentials too.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cloud.media.turn import turn_credentials
from common.wire.call import CUSTOMER, GUEST, TELLER, Grant

Message = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TurnConfig:
    secret: str = field(repr=False)
    urls: tuple[str, ...]
    ttl: timedelta = timedelta(hours=2)


def teller_feed(teller_id: str, rejoins: int = 0) -> str:
    """The feed a teller publishes as, after ``rejoins`` rejoins of the same call."""
    base = f"{TELLER}-{teller_id}"
    return f"{base}~{rejoins}" if rejoins else base


def free_rejoin(teller_id: str, used: set[str] | frozenset[str]) -> int:
    """The lowest ``rejoins`` whose feed is not in ``used`` (feeds already in the room)."""
    n = 0
    while teller_feed(teller_id, n) in used:
        n += 1
    return n


def make_grant(
    session_id: str,
    role: str,
    janus_url: str,
    terminal_id: str,
    teller_id: str,
    now: datetime,
    turn: TurnConfig | None = None,
    rejoins: int = 0,
    pin: str = "",
) -> Grant:
    """A grant for ``role`` (customer or teller) in the session's room (named after it);
    ``rejoins`` picks the teller's feed (see ``teller_feed``)."""
    if role not in (CUSTOMER, TELLER):
        raise ValueError(f"unknown role {role!r}")
    if rejoins < 0:
        raise ValueError(f"rejoins must be >= 0, not {rejoins}")
    feed, peer = (CUSTOMER, teller_feed(teller_id, rejoins))
    if role == TELLER:
        feed, peer = peer, feed
    servers = _ice_servers(turn, terminal_id if role == CUSTOMER else feed, now)
    token = f"{role}-{secrets.token_urlsafe(18)}"
    return Grant(session_id, role, janus_url, token, session_id, feed, peer, servers, pin=pin)


def _ice_servers(
    turn: TurnConfig | None, user: str, now: datetime
) -> tuple[dict[str, object], ...]:
    """Time-limited TURN credentials for ``user`` (none without a TURN server)."""
    if turn is None:
        return ()
    return (turn_credentials(turn.secret, user, now, turn.ttl).ice_server(list(turn.urls)),)


def guest_feed(account: str) -> str:
    return f"{GUEST}-{account}"


def make_guest_grant(
    session_id: str,
    janus_url: str,
    account: str,
    teller: str,
    now: datetime,
    turn: TurnConfig | None = None,
    pin: str = "",
) -> Grant:
    """A third party's grant: publish as ``guest-<account>``, watch the customer and
    ``teller``, the feed the teller publishes now (``teller-<id>``, or after a rejoin
    ``teller-<id>~<n>``)."""
    feed = guest_feed(account)
    token = f"{GUEST}-{secrets.token_urlsafe(18)}"
    return Grant(
        session_id, GUEST, janus_url, token, session_id, feed, CUSTOMER,
        _ice_servers(turn, feed, now), (teller,), pin,
    )  # fmt: skip
