"""Wire formats of the call signalling over MQTT (``docs/teller-contract``): pure.

Terminal → cloud on ``cuntong/v1/t/<id>/session``: ``request``, ``cancel``, ``hang_up``,
``liveness``, ``rating``. Cloud → terminal on ``.../desk``: ``queued``, ``refused``,
``connect``, ``ended``, ``failed``. Every message is one JSON object with ``"type"``;
``parse_desk`` refuses anything else with ``BadMessage`` (a ValueError), which the client
counts and logs rather than crash on.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from common.envelope import json_object
from common.errors import WireError

MAX_BYTES = 16 * 1024
DESK_TYPES = frozenset({"queued", "refused", "connect", "ended", "failed", "guest"})
SESSION_TYPES = frozenset({"request", "cancel", "hang_up", "liveness", "rating"})
#: Everything but the request (which the session answers) and a refusal (of a request).
NEEDS_SESSION = (DESK_TYPES | SESSION_TYPES) - {"request", "refused"}


class BadMessage(ValueError):
    """A payload that is not a well-formed message of the call contract."""


def new_request_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Grant:
    """What ``connect`` gives the customer: where and how to join the call's room."""

    session: str
    janus_url: str
    token: str
    room: str
    feed: str
    peer_feed: str
    ice_servers: tuple[dict[str, Any], ...] = field(default=())
    #: the room's join PIN; empty for a room without one
    pin: str = field(default="", repr=False)

    @classmethod
    def from_message(cls, msg: dict[str, Any]) -> Grant:
        try:
            values = {k: msg[k] for k in ("session", "janus_url", "token", "room", "feed")}
            peer = msg["peer_feed"]
        except KeyError as err:
            raise BadMessage(f"connect without {err.args[0]!r}") from None
        if not all(isinstance(v, str) and v for v in [*values.values(), peer]):
            raise BadMessage("connect fields must be non-empty strings")
        servers = msg.get("ice_servers") or []
        if not isinstance(servers, list) or not all(isinstance(s, dict) for s in servers):
            raise BadMessage("ice_servers must be a list of objects")
        pin = msg.get("pin", "")
        if not isinstance(pin, str):
            raise BadMessage("pin must be a string")
        return cls(**values, peer_feed=peer, ice_servers=tuple(servers), pin=pin)


def to_bytes(msg: dict[str, Any]) -> bytes:
    """One message as the wire carries it; refuses what the broker would refuse."""
    if msg.get("type") not in SESSION_TYPES | DESK_TYPES:
        raise BadMessage(f"unknown message type {msg.get('type')!r}")
    data = orjson.dumps(msg)
    if len(data) > MAX_BYTES:
        raise BadMessage(f"message of {len(data)} bytes exceeds {MAX_BYTES}")
    return data


def _parse(payload: bytes, known: frozenset[str]) -> dict[str, Any]:
    try:
        msg = json_object(payload, MAX_BYTES)
    except WireError as err:
        raise BadMessage(str(err)) from None
    if msg.get("type") not in known:
        raise BadMessage(f"unknown message type {msg.get('type')!r}")
    if msg["type"] in NEEDS_SESSION and not isinstance(msg.get("session"), str):
        raise BadMessage(f"{msg['type']} without a session id")
    return msg


def parse_desk(payload: bytes) -> dict[str, Any]:
    """A desk → terminal message (checked: type known, session id present)."""
    msg = _parse(payload, DESK_TYPES)
    if msg["type"] == "connect":
        Grant.from_message(msg)  # refuse a grant the client could not use
    return msg


def parse_session(payload: bytes) -> dict[str, Any]:
    """A terminal → cloud message (the tests' scripted desk reads these)."""
    return _parse(payload, SESSION_TYPES)


# -- what the terminal sends ------------------------------------------------------------


def request(
    request_id: str,
    business: str,
    language: str = "cmn",
    elderly: bool = False,
    customer: dict[str, str] | None = None,
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": "request",
        "request_id": request_id,
        "business": business,
        "language": language,
        "elderly": elderly,
    }
    if customer:
        msg["customer"] = customer
    return msg


def cancel(session: str, cause: str = "customer left") -> dict[str, Any]:
    return {"type": "cancel", "session": session, "cause": cause}


def hang_up(session: str, cause: str = "customer ended") -> dict[str, Any]:
    return {"type": "hang_up", "session": session, "cause": cause}


def liveness(session: str, verdict: dict[str, Any]) -> dict[str, Any]:
    return {"type": "liveness", "session": session, "verdict": verdict}


def rating(session: str, score: int) -> dict[str, Any]:
    if not 1 <= score <= 5:
        raise BadMessage("a rating is 1 to 5")
    return {"type": "rating", "session": session, "score": score}
