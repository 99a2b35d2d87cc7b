"""The terminal's session messages (``cuntong/v1/t/<id>/session``), parsed and checked.

Pure: bytes in, a typed message out (``parse``), and back (``to_bytes``); anything else
raises ``BadSessionMessage`` (a ``ValueError``) naming what is wrong. The contract is
``docs/teller.md`` ("Terminal link"): every message is a JSON object with a ``type``:

    request   request_id (32 hex), business, language, elderly, customer {name, id_number}?
    cancel    session, cause        the customer left before connection
    hang_up   session, cause        the customer ended the call
    liveness  session, verdict {}   the agent's liveness verdict, stored with the session
    rating    session, score 1-5    after the call

Desk messages to the terminal (``cuntong/v1/t/<id>/desk``) are the desk's own dicts;
``desk_bytes`` encodes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Final

import orjson

from cloud.sessions.errors import BadSessionMessage
from common.envelope import json_object
from common.errors import WireError

MAX_BYTES: Final = 16 * 1024
_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
_ID_NUMBER = re.compile(r"[0-9]{17}[0-9X]")


@dataclass(frozen=True, slots=True)
class Customer:
    name: str
    id_number: str


@dataclass(frozen=True, slots=True)
class Request:
    request_id: str
    business: str
    language: str
    elderly: bool = False
    customer: Customer | None = None
    type: str = "request"


@dataclass(frozen=True, slots=True)
class Cancel:
    session: str
    cause: str = "customer left"
    type: str = "cancel"


@dataclass(frozen=True, slots=True)
class HangUp:
    session: str
    cause: str = "customer ended"
    type: str = "hang_up"


@dataclass(frozen=True, slots=True)
class Liveness:
    session: str
    verdict: dict[str, Any]
    type: str = "liveness"


@dataclass(frozen=True, slots=True)
class Rating:
    session: str
    score: int
    type: str = "rating"


SessionMessage = Request | Cancel | HangUp | Liveness | Rating


def _text(obj: dict[str, Any], key: str, limit: int, default: str | None = None) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise BadSessionMessage(f"'{key}' must be a string of 1-{limit} characters")
    return value


def _request(obj: dict[str, Any]) -> Request:
    request_id = _text(obj, "request_id", 32)
    if not _REQUEST_ID.fullmatch(request_id):
        raise BadSessionMessage("'request_id' must be 32 lowercase hex digits")
    elderly = obj.get("elderly", False)
    if not isinstance(elderly, bool):
        raise BadSessionMessage("'elderly' must be true or false")
    customer = None
    raw = obj.get("customer")
    if raw is not None:
        if not isinstance(raw, dict):
            raise BadSessionMessage("'customer' must be an object")
        customer = Customer(_text(raw, "name", 64), _text(raw, "id_number", 18))
        if not _ID_NUMBER.fullmatch(customer.id_number):
            raise BadSessionMessage("'customer.id_number' must be an 18-character ID number")
    return Request(
        request_id, _text(obj, "business", 64), _text(obj, "language", 16), elderly, customer
    )


def _liveness(obj: dict[str, Any]) -> Liveness:
    verdict = obj.get("verdict")
    if not isinstance(verdict, dict) or not verdict:
        raise BadSessionMessage("'verdict' must be a non-empty object")
    return Liveness(_text(obj, "session", 64), verdict)


def _rating(obj: dict[str, Any]) -> Rating:
    score = obj.get("score")
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise BadSessionMessage("'score' must be an integer 1-5")
    return Rating(_text(obj, "session", 64), score)


_PARSERS: Final[dict[str, Callable[[dict[str, Any]], SessionMessage]]] = {
    "request": _request,
    "cancel": lambda o: Cancel(_text(o, "session", 64), _text(o, "cause", 200, "customer left")),
    "hang_up": lambda o: HangUp(_text(o, "session", 64), _text(o, "cause", 200, "customer ended")),
    "liveness": _liveness,
    "rating": _rating,
}


def parse(payload: bytes) -> SessionMessage:
    """One session message; BadSessionMessage on anything the contract does not allow."""
    try:
        obj = json_object(payload, MAX_BYTES)
    except WireError as err:
        raise BadSessionMessage(str(err)) from err
    kind = obj.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise BadSessionMessage(f"unknown type {kind!r}")
    return parser(obj)


def to_bytes(message: SessionMessage) -> bytes:
    """The message as the terminal sends it (``parse(to_bytes(m)) == m``)."""
    obj = asdict(message)
    if isinstance(message, Request) and message.customer is None:
        del obj["customer"]
    return orjson.dumps(obj)


def desk_bytes(message: dict[str, Any]) -> bytes:
    """A desk message for the terminal's ``desk`` topic."""
    return orjson.dumps(message)
