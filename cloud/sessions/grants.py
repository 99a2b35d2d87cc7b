"""What a participant gets to join a call: a Janus token, the room, the feeds, TURN (pure).

Each grant carries a fresh random token (added to the node's stored tokens by the desk,
removed at hang-up) and the feeds: the customer publishes as ``customer``, each teller
as ``teller-<id>``, so a transferred call records every teller instead of overwriting
one. A third party (a supervisor or customer manager joining the call) publishes as
``guest-<account>`` and watches both the customer and the teller. With a ``TurnConfig``,
the grant holds time-limited TURN credentials too.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cloud.media.turn import turn_credentials

Message = dict[str, Any]
CUSTOMER, TELLER, GUEST = "customer", "teller", "guest"


@dataclass(frozen=True, slots=True)
class TurnConfig:
    secret: str = field(repr=False)
    urls: tuple[str, ...]
    ttl: timedelta = timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class Grant:
    """Everything one participant needs to join the call's room."""

    session_id: str
    role: str
    janus_url: str
    token: str
    room: str
    feed: str  # publish as this
    peer_feed: str  # subscribe to this
    ice_servers: tuple[dict[str, object], ...]
    #: a guest's further feeds to subscribe to (the teller's, besides the customer's)
    watch: tuple[str, ...] = ()

    def message(self) -> Message:
        """The ``connect`` message (to the terminal; the teller gets it as an HTTP answer)."""
        return {
            "type": "connect",
            "session": self.session_id,
            "role": self.role,
            "janus_url": self.janus_url,
            "token": self.token,
            "room": self.room,
            "feed": self.feed,
            "peer_feed": self.peer_feed,
            "ice_servers": list(self.ice_servers),
            **({"watch": list(self.watch)} if self.watch else {}),
        }


def teller_feed(teller_id: str) -> str:
    return f"{TELLER}-{teller_id}"


def make_grant(
    session_id: str,
    role: str,
    janus_url: str,
    terminal_id: str,
    teller_id: str,
    now: datetime,
    turn: TurnConfig | None = None,
) -> Grant:
    """A grant for ``role`` (customer or teller) in the session's room (named after it)."""
    if role not in (CUSTOMER, TELLER):
        raise ValueError(f"unknown role {role!r}")
    feed, peer = (CUSTOMER, teller_feed(teller_id))
    if role == TELLER:
        feed, peer = peer, feed
    servers = _ice_servers(turn, terminal_id if role == CUSTOMER else feed, now)
    token = f"{role}-{secrets.token_urlsafe(18)}"
    return Grant(session_id, role, janus_url, token, session_id, feed, peer, servers)


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
    teller_id: str,
    now: datetime,
    turn: TurnConfig | None = None,
) -> Grant:
    """A third party's grant: publish as ``guest-<account>``, watch customer and teller."""
    feed = guest_feed(account)
    token = f"{GUEST}-{secrets.token_urlsafe(18)}"
    return Grant(
        session_id, GUEST, janus_url, token, session_id, feed, CUSTOMER,
        _ice_servers(turn, feed, now), (teller_feed(teller_id),),
    )  # fmt: skip
