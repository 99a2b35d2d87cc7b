"""The cloud's gate on Janus signalling (pure): which VideoRoom join a Janus API request
carries, whether it leaves its grant's room, and the answer that refuses it.

Janus refuses a join outside a grant's room by itself (the room's PIN and access list,
``cloud.media.pool``), but it tells only the client: its plugins push errors to the
handle and never to event handlers, so the cloud would not learn of the attempt. When
participants reach Janus through the cloud (a node's ``public_url`` pointing at
``/media/janus/<node>``, served by ``cloud.api.routes.janus_gate``), the gate sees each
join with its token, refuses one aimed at a room other than its grant's before Janus
does, and the route audits it naming the grant's holder. Janus keeps its own checks, so
a request that bypasses the gate is still refused, only not audited.

By default (``cloud.sessions.wiring``) a secured cloud hands out grants whose Janus URL
is this gate's path, ``/media/janus/<node>`` (``gate_path``), relative to the cloud address
the participant already uses: the teller page's origin, a terminal's enrolment URL.

Only ``join`` and ``joinandconfigure`` name a room (VideoRoom compares request names
case-insensitively, so the gate does too); every other request passes unread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

#: The VideoRoom requests that enter a room.
JOINS = frozenset({"join", "joinandconfigure"})
#: VideoRoom's ``JANUS_VIDEOROOM_ERROR_UNAUTHORIZED``, what Janus answers a bad PIN or token.
UNAUTHORIZED = 433
#: Where the cloud serves the gate (``cloud.api.routes.janus_gate``).
PREFIX = "/media/janus"
#: What may follow ``/media/janus/<node>``: the API root, ``info``, a session, a handle.
PATH = re.compile(r"^(info|\d{1,20}(/\d{1,20})?)?$")
#: A session's own path: its long poll (GET) and its requests (POST).
SESSION = re.compile(r"^\d{1,20}$")
#: The plugin the gate's own throwaway handles attach to (``JanusGate._flush``): the one
#: the participants' tokens are good for.
PLUGIN = "janus.plugin.videoroom"
#: Janus API bodies (an SDP offer is a few KB; nothing legitimate comes near this).
MAX_BODY = 256 * 1024


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a live grant: its session (= room), role, feed, terminal, and the actor
    the audit log names (``terminal:<id>`` for the customer, else the account)."""

    session: str
    role: str
    feed: str
    terminal_id: str
    room: str
    actor: str


@dataclass(frozen=True, slots=True)
class JoinAttempt:
    token: str
    room: str
    request: str
    ptype: str


def gate_path(node: str) -> str:
    """The gate of one node, as a path on the cloud: what grants carry by default."""
    return f"{PREFIX}/{node}"


def join_attempt(message: object) -> JoinAttempt | None:
    """The join a Janus API request carries (``janus: message`` with a VideoRoom join
    body), else None. The token is the one Janus authenticates the request with."""
    # Janus and VideoRoom match request names with strcasecmp: "JOIN" is a join too.
    if not isinstance(message, dict) or str(message.get("janus", "")).lower() != "message":
        return None
    body = message.get("body")
    if not isinstance(body, dict):
        return None
    request = str(body.get("request", "")).lower()
    if request not in JOINS:
        return None
    return JoinAttempt(
        token=str(message.get("token", "")),
        room=str(body.get("room", "")),
        request=request,
        ptype=str(body.get("ptype", "")),
    )


def outside(attempt: JoinAttempt, holder: Holder) -> bool:
    """True if the join aims at a room other than the holder's grant's."""
    return attempt.room != holder.room


def refusal(message: dict[str, Any], session_id: int, handle_id: int) -> dict[str, Any]:
    """The synchronous answer refusing a join, shaped as Janus answers a plugin request
    (``janus_client`` and ``teller-media.js`` read it as a VideoRoom error)."""
    return {
        "janus": "success",
        "session_id": session_id,
        "sender": handle_id,
        "transaction": message.get("transaction"),
        "plugindata": {
            "plugin": "janus.plugin.videoroom",
            "data": {
                "videoroom": "event",
                "error_code": UNAUTHORIZED,
                "error": "Unauthorized (this grant joins its own room only)",
            },
        },
    }
