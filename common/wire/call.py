"""The call signalling between a terminal and the desk, over MQTT: one codec for both ends.

Pure: bytes in, a typed message out, and back. Every message is one JSON object with a
``"type"`` (the contract is ``docs/teller.md``, "Terminal link"):

Terminal → desk on ``cuntong/v1/t/<id>/session`` (``parse_session``):

    request   request_id (32 hex), business, language, elderly, customer {name, id_number}?,
              id_read {step_result}? (the desk also treats a customer whose ID number says 60
              or over as elderly)
    cancel    session, cause        the customer left before connection
    hang_up   session, cause        the customer ended the call
    liveness  session, verdict {}   the agent's liveness verdict, stored with the session
    rating    session, score 1-5    after the call
    ring_back session               the waiting customer chose 有空了叫我 (a long queue) and
              may step away from the screen: the desk marks the waiting session so the
              teller's offer says so
    step_result  session, step, nonce, time, outcome, reason, masked {}, full {}?, digest,
              signature, certificate   a device step's result, signed by the terminal

Desk → terminal on ``cuntong/v1/t/<id>/desk`` (``parse_desk``):

    queued    session, position, expected_wait, ring, request_id (the first one only)
    refused   request_id, reason    a request the desk will not queue
    connect   a ``Grant``: session, role, janus_url, token, room, feed, peer_feed,
              ice_servers, watch?, pin? (the room's join PIN; every join carries it)
    ended     session, cause
    failed    session, cause
    guest     session, guest, present   a third party joined or left the call
    step      session, step, nonce, params {}   perform one device step (``DEVICE_STEPS``)
    step_outcome  session, step, passed, text   the cloud's verdict on a step result, and
              what the customer screen says about it ("" for nothing: e.g. a wrong PIN's
              tries left, or the card locked after the third)

A ``step_result`` is signed (ECDSA P-256, SHA-256, DER, base64) with the terminal's enrolled
device key over ``signing_input()``: session, step, nonce, time, ``digest`` (the SHA-256 of
the full result, ``result_digest(full)``, canonical JSON), the ``outcome``, and the SHA-256
of what is shown (``shown_digest``: ``reason`` and ``masked`` as canonical JSON), so the
pass/fail, the scores the cloud reads from ``masked`` and the masked data kept in the
evidence are the terminal's own (``cuntong-step-result-v2``; v1 signed no outcome, reason
or masked data and is refused). ``masked`` is what a teller may
see; ``full`` (the fields the cloud needs, e.g. the ID read's name and number for the online
check; images only by their digest) travels inside the mTLS link and is never shown or stored
in clear. ``certificate`` is the terminal's leaf certificate (PEM), which the cloud checks
against its CA before it trusts the signature.

**先刷身份证.** A customer may read the ID card before queueing: the terminal reads it
with the same ``id_card_read`` handler and signs a ``step_result`` whose session is
``before_queue_session(request_id)`` and whose nonce is the request's own ``request_id``
(fresh and random per request), and sends it as the request's ``id_read``. The cloud checks
it as an in-call result (``cloud.workflow.device.check_result``), plus freshness: the signed
time must be recent when the desk receives the request, and a request id is used once. The
signed session name keeps such a read from ever passing as an in-call result, or for
another request.

A message is checked when it is made (so a terminal cannot send what the desk would refuse)
and when it is parsed; anything the contract does not allow raises ``CallError`` (a
``WireError``, so a ``ValueError`` too) naming what is wrong. ``to_bytes`` gives the exact
bytes the wire carries (key order included) and ``parse(to_bytes(m)) == m``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, ClassVar, Final, TypeVar

import orjson

from common.envelope import json_object
from common.errors import WireError

MAX_BYTES: Final = 16 * 1024
CUSTOMER, TELLER, GUEST = "customer", "teller", "guest"
ROLES: Final = frozenset({CUSTOMER, TELLER, GUEST})
_REQUEST_ID = re.compile(r"[0-9a-f]{32}")
_ID_NUMBER = re.compile(r"[0-9]{17}[0-9X]")

Json = dict[str, Any]
T = TypeVar("T")


class CallError(WireError):
    """A call message the contract does not allow (the receiver counts and drops it)."""


#: Every step a terminal performs itself; the teller can ask for one, never mark it done.
DEVICE_STEPS: Final = (
    "id_card_read",
    "face_match",
    "liveness",
    "active_liveness",
    "card_read",
    "pin_entry",
    "voucher_capture",
    "e_signature",
)
STEP_OUTCOMES: Final = frozenset({"passed", "failed", "error"})
_NONCE = re.compile(r"[0-9a-f]{32}")
_DIGEST = re.compile(r"[0-9a-f]{64}")
_SIGNING_LABEL: Final = b"cuntong-step-result-v2"
#: The label of the first format, which covered session, step, nonce, time and digest only;
#: the evidence verifier recognises it in packages sealed before v2 (and says what it lacks).
SIGNING_LABEL_V1: Final = b"cuntong-step-result-v1"
#: The session name a read made before queueing is signed for (then the request id).
BEFORE_QUEUE: Final = "before-queue:"


def before_queue_session(request_id: str) -> str:
    """The ``session`` of an ID read made before queueing for request ``request_id``."""
    return BEFORE_QUEUE + request_id


def new_nonce() -> str:
    """A fresh step nonce: 32 lowercase hex digits (the desk issues one per request)."""
    return secrets.token_hex(16)


def unpredictable_number(nonce: str) -> bytes:
    """The EMV unpredictable number (9F37, 4 bytes) a ``card_read`` step binds the card's
    cryptogram to: the first 4 bytes of the desk's step nonce. The terminal puts it in the
    card's GENERATE AC; the cloud checks the card's CDOL1 data carries it before it asks
    the HSM, so a cryptogram made for another request is refused."""
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise CallError("'nonce' must be 32 lowercase hex digits")
    return bytes.fromhex(nonce[:8])


def result_digest(full: dict[str, Any]) -> str:
    """SHA-256 (hex) of a step's full result as canonical JSON (sorted keys, UTF-8)."""
    return hashlib.sha256(orjson.dumps(full, option=orjson.OPT_SORT_KEYS)).hexdigest()


def new_request_id() -> str:
    """A fresh request id: 32 lowercase hex digits."""
    return secrets.token_hex(16)


# -- checks shared by making and parsing -------------------------------------------------


def _text(value: object, key: str, limit: int) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise CallError(f"'{key}' must be a string of 1-{limit} characters")
    return value


def _nonempty(value: object, key: str) -> str:
    if not isinstance(value, str) or not value:
        raise CallError(f"connect field '{key}' must be a non-empty string")
    return value


def _optional_number(value: object, key: str, kind: type | tuple[type, ...]) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
        raise CallError(f"'{key}' must be a number or null")


def _dump(obj: Json) -> bytes:
    data = orjson.dumps(obj)
    if len(data) > MAX_BYTES:
        raise CallError(f"message of {len(data)} bytes exceeds {MAX_BYTES}")
    return data


class _Message:
    """What every call message does: ``to_dict``, ``to_bytes`` / ``bytes(m)``, ``parse``."""

    type: ClassVar[str]

    def to_dict(self) -> Json:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, obj: Json) -> Any:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        return _dump(self.to_dict())

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @classmethod
    def parse(cls, payload: bytes) -> Any:
        """This one message type from bytes; CallError for anything else."""
        obj = _object(payload)
        if obj.get("type") != cls.type:
            raise CallError(f"expected type {cls.type!r}, not {obj.get('type')!r}")
        return cls.from_dict(obj)


# -- terminal → desk ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Customer:
    """Who the ID card says the customer is (sent with a request when read)."""

    name: str
    id_number: str

    def __post_init__(self) -> None:
        _text(self.name, "name", 64)
        _text(self.id_number, "id_number", 18)
        if not _ID_NUMBER.fullmatch(self.id_number):
            raise CallError("'customer.id_number' must be an 18-character ID number")
        self.birth_date()

    def birth_date(self) -> date:
        """The birth date the ID number carries (digits 7-14, GB 11643)."""
        digits = self.id_number[6:14]
        try:
            return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
        except ValueError:
            raise CallError(f"'customer.id_number' holds no valid birth date {digits!r}") from None

    def age(self, today: date) -> int:
        """Whole years on ``today`` (pure: the caller's clock)."""
        born = self.birth_date()
        return today.year - born.year - ((today.month, today.day) < (born.month, born.day))

    @classmethod
    def from_dict(cls, raw: object) -> Customer:
        if not isinstance(raw, dict):
            raise CallError("'customer' must be an object")
        return cls(raw.get("name"), raw.get("id_number"))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Request(_Message):
    type: ClassVar[str] = "request"
    request_id: str
    business: str
    language: str = "cmn"
    elderly: bool = False
    customer: Customer | None = None
    #: The ID card read before queueing, signed for this request (see the module's notes).
    id_read: StepResult | None = None

    def __post_init__(self) -> None:
        _text(self.request_id, "request_id", 32)
        if not _REQUEST_ID.fullmatch(self.request_id):
            raise CallError("'request_id' must be 32 lowercase hex digits")
        read = self.id_read
        if read is not None:
            if not isinstance(read, StepResult) or read.step != "id_card_read":
                raise CallError("'id_read' must be an id_card_read step result")
            bound = (before_queue_session(self.request_id), self.request_id)
            if (read.session, read.nonce) != bound:
                raise CallError("'id_read' was not made for this request")
        if not isinstance(self.elderly, bool):
            raise CallError("'elderly' must be true or false")
        if self.customer is not None and not isinstance(self.customer, Customer):
            raise CallError("'customer' must be an object")
        _text(self.business, "business", 64)
        _text(self.language, "language", 16)

    def to_dict(self) -> Json:
        obj: Json = {
            "type": self.type,
            "request_id": self.request_id,
            "business": self.business,
            "language": self.language,
            "elderly": self.elderly,
        }
        if self.customer is not None:
            obj["customer"] = {"name": self.customer.name, "id_number": self.customer.id_number}
        if self.id_read is not None:
            obj["id_read"] = self.id_read.to_dict()
        return obj

    @classmethod
    def from_dict(cls, obj: Json) -> Request:
        raw = obj.get("customer")
        customer = None if raw is None else Customer.from_dict(raw)
        read = obj.get("id_read")
        if read is not None and not isinstance(read, dict):
            raise CallError("'id_read' must be an object")
        return cls(
            obj.get("request_id"),  # type: ignore[arg-type]
            obj.get("business"),  # type: ignore[arg-type]
            obj.get("language"),  # type: ignore[arg-type]
            obj.get("elderly", False),
            customer,
            None if read is None else StepResult.from_dict(read),
        )


@dataclass(frozen=True, slots=True)
class Cancel(_Message):
    type: ClassVar[str] = "cancel"
    session: str
    cause: str = "customer left"

    def __post_init__(self) -> None:
        _text(self.session, "session", 64)
        _text(self.cause, "cause", 200)

    def to_dict(self) -> Json:
        return {"type": self.type, "session": self.session, "cause": self.cause}

    @classmethod
    def from_dict(cls, obj: Json) -> Cancel:
        return cls(obj.get("session"), obj.get("cause", "customer left"))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class HangUp(_Message):
    type: ClassVar[str] = "hang_up"
    session: str
    cause: str = "customer ended"

    def __post_init__(self) -> None:
        _text(self.session, "session", 64)
        _text(self.cause, "cause", 200)

    def to_dict(self) -> Json:
        return {"type": self.type, "session": self.session, "cause": self.cause}

    @classmethod
    def from_dict(cls, obj: Json) -> HangUp:
        return cls(obj.get("session"), obj.get("cause", "customer ended"))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Liveness(_Message):
    """The agent's liveness verdict, carried as the agent made it (the desk stores it)."""

    type: ClassVar[str] = "liveness"
    session: str
    verdict: dict[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.verdict, dict) or not self.verdict:
            raise CallError("'verdict' must be a non-empty object")
        _text(self.session, "session", 64)

    def to_dict(self) -> Json:
        return {"type": self.type, "session": self.session, "verdict": self.verdict}

    @classmethod
    def from_dict(cls, obj: Json) -> Liveness:
        return cls(obj.get("session"), obj.get("verdict"))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Rating(_Message):
    type: ClassVar[str] = "rating"
    session: str
    score: int

    def __post_init__(self) -> None:
        score = self.score
        if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
            raise CallError("'score' must be an integer 1-5")
        _text(self.session, "session", 64)

    def to_dict(self) -> Json:
        return {"type": self.type, "session": self.session, "score": self.score}

    @classmethod
    def from_dict(cls, obj: Json) -> Rating:
        return cls(obj.get("session"), obj.get("score"))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RingBack(_Message):
    """The waiting customer asked to be called back and may have stepped away."""

    type: ClassVar[str] = "ring_back"
    session: str

    def __post_init__(self) -> None:
        _text(self.session, "session", 64)

    def to_dict(self) -> Json:
        return {"type": self.type, "session": self.session}

    @classmethod
    def from_dict(cls, obj: Json) -> RingBack:
        return cls(obj.get("session"))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class StepResult(_Message):
    """What the terminal did for one step request, signed with its device key."""

    type: ClassVar[str] = "step_result"
    session: str
    step: str
    nonce: str
    #: When the terminal finished the step: ISO 8601 UTC with offset.
    time: str
    #: passed, failed (the step ran and its answer is no: expired card, no match), error
    #: (the device could not do it: reader missing, timeout)
    outcome: str
    reason: str
    masked: dict[str, Any]
    digest: str
    signature: str
    certificate: str
    full: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _text(self.session, "session", 64)
        _step_fields(self.step, self.nonce)
        if not isinstance(self.time, str):
            raise CallError("'time' must be an ISO 8601 time with offset")
        self.at  # noqa: B018 - checks it parses
        if self.outcome not in STEP_OUTCOMES:
            raise CallError(f"'outcome' must be one of {sorted(STEP_OUTCOMES)}")
        if not isinstance(self.reason, str) or len(self.reason) > 200:
            raise CallError("'reason' must be a string of at most 200 characters")
        if not isinstance(self.masked, dict):
            raise CallError("'masked' must be an object")
        if self.full is not None and not isinstance(self.full, dict):
            raise CallError("'full' must be an object or absent")
        if not isinstance(self.digest, str) or not _DIGEST.fullmatch(self.digest):
            raise CallError("'digest' must be 64 lowercase hex digits (SHA-256)")
        _text(self.signature, "signature", 200)
        _text(self.certificate, "certificate", 4096)

    @property
    def at(self) -> dt.datetime:
        try:
            at = dt.datetime.fromisoformat(self.time)
        except ValueError:
            raise CallError("'time' must be an ISO 8601 time with offset") from None
        if at.tzinfo is None:
            raise CallError("'time' must carry its UTC offset")
        return at

    def signing_input(self) -> bytes:
        return signing_input(
            self.session, self.step, self.nonce, self.time, self.digest,
            self.outcome, shown_digest(self.reason, self.masked),
        )  # fmt: skip

    def to_dict(self) -> Json:
        obj: Json = {
            "type": self.type,
            "session": self.session,
            "step": self.step,
            "nonce": self.nonce,
            "time": self.time,
            "outcome": self.outcome,
            "reason": self.reason,
            "masked": self.masked,
            "digest": self.digest,
            "signature": self.signature,
            "certificate": self.certificate,
        }
        if self.full is not None:
            obj["full"] = self.full
        return obj

    @classmethod
    def from_dict(cls, obj: Json) -> StepResult:
        keys = ("session", "step", "nonce", "time", "outcome", "reason", "masked", "digest",
                "signature", "certificate")  # fmt: skip
        for key in keys:
            if key not in obj:
                raise CallError(f"step_result without {key!r}")
        return cls(**{k: obj[k] for k in keys}, full=obj.get("full"))


def signing_input(
    session: str, step: str, nonce: str, time: str, digest: str, outcome: str, shown: str
) -> bytes:
    """The exact bytes a step result's signature covers (one field a line, labelled);
    ``shown`` is ``shown_digest(reason, masked)``."""
    parts = (session, step, nonce, time, digest, outcome, shown)
    return b"\n".join((_SIGNING_LABEL, *(part.encode() for part in parts)))


def signing_input_v1(session: str, step: str, nonce: str, time: str, digest: str) -> bytes:
    """The bytes the first format signed (no outcome, reason or masked data): only for
    checking evidence packages sealed before v2."""
    parts = (session, step, nonce, time, digest)
    return b"\n".join((SIGNING_LABEL_V1, *(part.encode() for part in parts)))


def shown_digest(reason: str, masked: dict[str, Any]) -> str:
    """SHA-256 (hex) of a step result's ``reason`` and ``masked`` as canonical JSON."""
    return result_digest({"reason": reason, "masked": masked})


def _step_fields(step: object, nonce: object) -> None:
    if step not in DEVICE_STEPS:
        raise CallError(f"'step' must be a device step, one of {list(DEVICE_STEPS)}")
    if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
        raise CallError("'nonce' must be 32 lowercase hex digits")


SessionMessage = Request | Cancel | HangUp | Liveness | Rating | RingBack | StepResult

# -- desk → terminal ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Queued(_Message):
    """Where a request stands; the first one also names the terminal's ``request_id``."""

    type: ClassVar[str] = "queued"
    session: str
    position: int | None = None
    #: seconds; None when no teller on duty can serve the request at all
    expected_wait: float | None = None
    ring: int | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        _text(self.session, "session", 64)
        _optional_number(self.position, "position", int)
        _optional_number(self.expected_wait, "expected_wait", (int, float))
        _optional_number(self.ring, "ring", int)
        if self.request_id is not None:
            _text(self.request_id, "request_id", 32)

    def to_dict(self) -> Json:
        obj: Json = {
            "type": self.type,
            "session": self.session,
            "position": self.position,
            "expected_wait": self.expected_wait,
            "ring": self.ring,
        }
        if self.request_id is not None:
            obj["request_id"] = self.request_id
        return obj

    @classmethod
    def from_dict(cls, obj: Json) -> Queued:
        return cls(
            obj.get("session"),  # type: ignore[arg-type]
            obj.get("position"),
            obj.get("expected_wait"),
            obj.get("ring"),
            obj.get("request_id"),
        )


@dataclass(frozen=True, slots=True)
class Refused(_Message):
    """A request the desk will not queue (unknown business, no desk, a bad message …)."""

    type: ClassVar[str] = "refused"
    request_id: str
    reason: str = ""

    def __post_init__(self) -> None:
        # up to 64: the desk answers a malformed request by the id it sent, hex or not
        _text(self.request_id, "request_id", 64)
        if not isinstance(self.reason, str):
            raise CallError("'reason' must be a string")

    def to_dict(self) -> Json:
        return {"type": self.type, "request_id": self.request_id, "reason": self.reason}

    @classmethod
    def from_dict(cls, obj: Json) -> Refused:
        return cls(obj.get("request_id"), obj.get("reason", ""))  # type: ignore[arg-type]


def absolute_janus_url(janus_url: str, cloud_url: str | None) -> str:
    """A grant's Janus URL made absolute. A path (``/media/janus/<node>``, the cloud's
    signalling gate, which a secured cloud hands out) lies on the cloud address the
    participant already uses: the teller page's origin, a terminal's enrolment URL
    (``cloud_url``, its path prefix kept). A full http(s) URL is used as it is."""
    if janus_url.startswith(("http://", "https://")):
        return janus_url
    if not janus_url.startswith("/"):
        raise CallError(f"'janus_url' must be an http(s) URL or a path, not {janus_url!r}")
    if not cloud_url:
        raise CallError(
            f"the grant's Janus URL {janus_url!r} is on the cloud, and this terminal knows "
            "no cloud address (no factory claim with an enrolment URL)"
        )
    return cloud_url.rstrip("/") + janus_url


@dataclass(frozen=True, slots=True)
class Grant:
    """Everything one participant needs to join the call's room: the terminal gets it as
    ``connect``, a teller or a guest as an HTTP answer (``message()``)."""

    session: str
    role: str
    janus_url: str
    token: str
    room: str
    feed: str  # publish as this
    peer_feed: str  # subscribe to this
    ice_servers: tuple[dict[str, Any], ...] = ()
    #: a guest's further feeds to subscribe to (the teller's, besides the customer's)
    watch: tuple[str, ...] = field(default=())
    #: the room's join PIN (``cloud.media.pool.room_pin``): every join carries it; empty
    #: for a room without one
    pin: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        _text(self.session, "session", 64)
        if self.role not in ROLES:
            raise CallError(f"'role' must be one of {sorted(ROLES)}, not {self.role!r}")
        for key in ("janus_url", "token", "room", "feed", "peer_feed"):
            _nonempty(getattr(self, key), key)
        if not isinstance(self.ice_servers, tuple) or not all(
            isinstance(s, dict) for s in self.ice_servers
        ):
            raise CallError("'ice_servers' must be a list of objects")
        if not isinstance(self.watch, tuple) or not all(
            isinstance(w, str) and w for w in self.watch
        ):
            raise CallError("'watch' must be a list of feed names")
        if not isinstance(self.pin, str) or len(self.pin) > 128:
            raise CallError("'pin' must be a string of at most 128 characters")

    def message(self) -> Json:
        """The ``connect`` message (to the terminal; the teller gets it as an HTTP answer)."""
        return Connect(self).to_dict()

    @classmethod
    def from_message(cls, obj: Json) -> Grant:
        for key in ("session", "role", "janus_url", "token", "room", "feed", "peer_feed"):
            if key not in obj:
                raise CallError(f"connect without {key!r}")
        servers = obj.get("ice_servers") or []
        watch = obj.get("watch") or []
        if not isinstance(servers, list):
            raise CallError("'ice_servers' must be a list of objects")
        if not isinstance(watch, list):
            raise CallError("'watch' must be a list of feed names")
        return cls(
            obj["session"], obj["role"], obj["janus_url"], obj["token"], obj["room"],
            obj["feed"], obj["peer_feed"], tuple(servers), tuple(watch), obj.get("pin", ""),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Connect(_Message):
    """A grant for the terminal: join the call's room."""

    type: ClassVar[str] = "connect"
    grant: Grant

    @property
    def session(self) -> str:
        return self.grant.session

    def to_dict(self) -> Json:
        g = self.grant
        return {
            "type": self.type,
            "session": g.session,
            "role": g.role,
            "janus_url": g.janus_url,
            "token": g.token,
            "room": g.room,
            "feed": g.feed,
            "peer_feed": g.peer_feed,
            "ice_servers": list(g.ice_servers),
            **({"watch": list(g.watch)} if g.watch else {}),
            **({"pin": g.pin} if g.pin else {}),
        }

    @classmethod
    def from_dict(cls, obj: Json) -> Connect:
        return cls(Grant.from_message(obj))


@dataclass(frozen=True, slots=True)
class Ended(_Message):
    type: ClassVar[str] = "ended"
    session: str
    cause: str = ""

    def __post_init__(self) -> None:
        _text(self.session, "session", 64)
        if not isinstance(self.cause, str):
            raise CallError("'cause' must be a string")

    def to_dict(self) -> Json:
        return {"type": self.type, "session": self.session, "cause": self.cause}

    @classmethod
    def from_dict(cls, obj: Json) -> Ended:
        return cls(obj.get("session"), obj.get("cause", ""))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Failed(_Message):
    type: ClassVar[str] = "failed"
    session: str
    cause: str = ""

    def __post_init__(self) -> None:
        _text(self.session, "session", 64)
        if not isinstance(self.cause, str):
            raise CallError("'cause' must be a string")

    def to_dict(self) -> Json:
        return {"type": self.type, "session": self.session, "cause": self.cause}

    @classmethod
    def from_dict(cls, obj: Json) -> Failed:
        return cls(obj.get("session"), obj.get("cause", ""))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Guest(_Message):
    """A third party (supervisor, customer manager) joined or left the call."""

    type: ClassVar[str] = "guest"
    session: str
    guest: str
    present: bool

    def __post_init__(self) -> None:
        _text(self.session, "session", 64)
        _text(self.guest, "guest", 64)
        if not isinstance(self.present, bool):
            raise CallError("'present' must be true or false")

    def to_dict(self) -> Json:
        return {
            "type": self.type,
            "session": self.session,
            "guest": self.guest,
            "present": self.present,
        }

    @classmethod
    def from_dict(cls, obj: Json) -> Guest:
        return cls(obj.get("session"), obj.get("guest"), obj.get("present"))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class StepRequest(_Message):
    """The desk asks the terminal to perform one device step, with a fresh nonce."""

    type: ClassVar[str] = "step"
    session: str
    step: str
    nonce: str
    #: step inputs, e.g. the business's face-match threshold; never personal data
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _text(self.session, "session", 64)
        _step_fields(self.step, self.nonce)
        if not isinstance(self.params, dict):
            raise CallError("'params' must be an object")

    def to_dict(self) -> Json:
        return {
            "type": self.type,
            "session": self.session,
            "step": self.step,
            "nonce": self.nonce,
            "params": self.params,
        }

    @classmethod
    def from_dict(cls, obj: Json) -> StepRequest:
        return cls(obj.get("session"), obj.get("step"), obj.get("nonce"), obj.get("params", {}))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class StepOutcome(_Message):
    """The cloud's verdict on a device step's result, with the customer screen's words."""

    type: ClassVar[str] = "step_outcome"
    session: str
    step: str
    passed: bool
    text: str = ""

    def __post_init__(self) -> None:
        _text(self.session, "session", 64)
        if self.step not in DEVICE_STEPS:
            raise CallError(f"'step' must be a device step, one of {list(DEVICE_STEPS)}")
        if not isinstance(self.passed, bool):
            raise CallError("'passed' must be true or false")
        if not isinstance(self.text, str) or len(self.text) > 200:
            raise CallError("'text' must be a string of at most 200 characters")

    def to_dict(self) -> Json:
        return {
            "type": self.type,
            "session": self.session,
            "step": self.step,
            "passed": self.passed,
            "text": self.text,
        }

    @classmethod
    def from_dict(cls, obj: Json) -> StepOutcome:
        return cls(obj.get("session"), obj.get("step"), obj.get("passed"), obj.get("text", ""))  # type: ignore[arg-type]


DeskMessage = Queued | Refused | Connect | Ended | Failed | Guest | StepRequest | StepOutcome

# -- parsing -----------------------------------------------------------------------------

_SESSION: Final[dict[str, Callable[[Json], SessionMessage]]] = {
    c.type: c.from_dict for c in (Request, Cancel, HangUp, Liveness, Rating, RingBack, StepResult)
}
_DESK: Final[dict[str, Callable[[Json], DeskMessage]]] = {
    c.type: c.from_dict
    for c in (Queued, Refused, Connect, Ended, Failed, Guest, StepRequest, StepOutcome)
}


def _object(payload: bytes) -> Json:
    try:
        return json_object(payload, MAX_BYTES)
    except CallError:
        raise
    except WireError as err:
        raise CallError(str(err)) from err


def _pick(table: dict[str, Callable[[Json], T]], obj: Json) -> T:
    kind = obj.get("type")
    parser = table.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise CallError(f"unknown type {kind!r}")
    return parser(obj)


def session_from_dict(obj: Json) -> SessionMessage:
    """A terminal → desk message from its JSON object."""
    return _pick(_SESSION, obj)


def desk_from_dict(obj: Json) -> DeskMessage:
    """A desk → terminal message from its JSON object (the desk's outbox holds these)."""
    return _pick(_DESK, obj)


def parse_session(payload: bytes) -> SessionMessage:
    """One terminal → desk message; CallError on anything the contract does not allow."""
    return session_from_dict(_object(payload))


def parse_desk(payload: bytes) -> DeskMessage:
    """One desk → terminal message; CallError on anything the contract does not allow."""
    return desk_from_dict(_object(payload))


def to_bytes(message: SessionMessage | DeskMessage) -> bytes:
    """The message as the wire carries it (``parse_*(to_bytes(m)) == m``)."""
    return message.to_bytes()
