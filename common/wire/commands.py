"""Signed, replay-proof cloud → terminal commands, and MACs on terminal → cloud events.

A command envelope (JSON, one MQTT payload)::

    {"v": 1, "id": "<unique>", "tid": "<terminal id>", "name": "reboot", "args": {...},
     "iat": <issued, unix ms>, "exp": <expires, unix ms>, "sig": "<base64 signature>"}

The signature (Ed25519 or ECDSA P-256/SHA-256, by the cloud's command key) covers the
canonical JSON of every other field, so the id, target, expiry and arguments are all bound.
The agent verifies with ``verify_command`` and a ``ReplayCache``: a command must be for this
terminal, signed by the cloud, inside its validity window (with ``MAX_TTL`` capping the
window so the cache stays bounded) and never seen before. Every refusal is a
``CommandRefused`` whose ``reason`` the agent reports on ``cmd-reply``.

Events: ``event_tag(suite, key, payload)`` gives a MAC over the exact payload bytes; carry
it in the MQTT 5 user property ``mac`` and check with ``event_tag_valid`` in the cloud.

Pure code: the time is an argument.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from common import suite as suite_lib
from common.errors import CommandRefused

VERSION = 1
MAX_TTL = dt.timedelta(minutes=10)
#: Terminal clocks drift; accept commands issued this far "in the future".
CLOCK_SKEW = dt.timedelta(minutes=2)
_DOMAIN = b"cuntong-command-v1\n"

SigningKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
VerifyKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    terminal_id: str
    name: str
    args: Mapping[str, Any]
    issued_at: dt.datetime
    expires_at: dt.datetime

    def _fields(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "id": self.id,
            "tid": self.terminal_id,
            "name": self.name,
            "args": dict(self.args),
            "iat": _ms(self.issued_at),
            "exp": _ms(self.expires_at),
        }


def _ms(when: dt.datetime) -> int:
    return int(when.timestamp() * 1000)


def _canonical(fields: Mapping[str, Any]) -> bytes:
    return (
        _DOMAIN
        + json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


def sign_command(key: SigningKey, command: Command) -> bytes:
    """The wire bytes of a signed command."""
    fields = command._fields()
    message = _canonical(fields)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(message)
    else:
        signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    fields["sig"] = base64.b64encode(signature).decode()
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


def parse_command(raw: bytes) -> tuple[Command, bytes, bytes]:
    """(command, signed bytes, signature); CommandRefused('malformed') on garbage."""
    try:
        obj = json.loads(raw)
        if not isinstance(obj, dict) or obj.get("v") != VERSION:
            raise ValueError("not a version-1 command")
        signature = base64.b64decode(obj.pop("sig"), validate=True)
        args = obj["args"]
        if not isinstance(args, dict):
            raise ValueError("args must be an object")
        command = Command(
            id=_text(obj["id"]),
            terminal_id=_text(obj["tid"]),
            name=_text(obj["name"]),
            args=args,
            issued_at=dt.datetime.fromtimestamp(int(obj["iat"]) / 1000, dt.UTC),
            expires_at=dt.datetime.fromtimestamp(int(obj["exp"]) / 1000, dt.UTC),
        )
    except (ValueError, KeyError, TypeError, OverflowError) as err:
        raise CommandRefused("malformed", str(err)) from err
    return command, _canonical(obj), signature


def _text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 128:
        raise ValueError("expected a non-empty short string")
    return value


@dataclass
class ReplayCache:
    """Ids of accepted commands, kept until they expire; bounded by ``capacity``.

    Commands live at most ``MAX_TTL``, so an id can be forgotten once its command has
    expired (a replay after that fails the expiry check). When the cache is full of
    unexpired ids, new commands are refused ("fail closed") rather than an id evicted.
    """

    capacity: int = 10_000
    #: Called with each admitted id and its expiry before ``admit`` returns, i.e. before the
    #: command runs. The agent journals it to disk there (``edge.replay``), so a restart
    #: does not forget what it already executed; if the hook raises, the command is refused.
    on_admit: Callable[[str, dt.datetime], None] | None = None
    _expiry: dict[str, dt.datetime] = field(default_factory=dict)

    def restore(self, entries: Iterable[tuple[str, dt.datetime]], now: dt.datetime) -> None:
        """Remember ids admitted before (e.g. by a previous run); expired ones are dropped."""
        self._expiry.update((k, v) for k, v in entries if v > now)

    def live(self, now: dt.datetime) -> list[tuple[str, dt.datetime]]:
        """The ids still worth remembering at ``now``."""
        return [(k, v) for k, v in self._expiry.items() if v > now]

    def admit(self, command_id: str, expires_at: dt.datetime, now: dt.datetime) -> None:
        if command_id in self._expiry:
            raise CommandRefused("replayed", command_id)
        if len(self._expiry) >= self.capacity:
            self._expiry = dict(self.live(now))
            if len(self._expiry) >= self.capacity:
                raise CommandRefused("replay_cache_full", "too many live commands")
        if self.on_admit is not None:
            self.on_admit(command_id, expires_at)
        self._expiry[command_id] = expires_at

    def __len__(self) -> int:
        return len(self._expiry)


def verify_command(
    key: VerifyKey,
    raw: bytes,
    terminal_id: str,
    now: dt.datetime,
    cache: ReplayCache,
    topic_name: str | None = None,
) -> Command:
    """The command, if it is for us, authentic, current and new; else CommandRefused.

    Pass ``topic_name`` (the ``<name>`` level of ``cmd/<name>``): the topic is not signed,
    so a signed harmless command re-published under another command's topic is refused.
    """
    command, message, signature = parse_command(raw)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as err:
        raise CommandRefused("bad_signature", command.id) from err
    if command.terminal_id != terminal_id:
        raise CommandRefused("wrong_terminal", command.terminal_id)
    if topic_name is not None and command.name != topic_name:
        raise CommandRefused("wrong_name", f"{command.name} sent as {topic_name}")
    if command.expires_at - command.issued_at > MAX_TTL:
        raise CommandRefused("ttl_too_long", command.id)
    if command.issued_at > now + CLOCK_SKEW:
        raise CommandRefused("not_yet_valid", command.id)
    if now >= command.expires_at:
        raise CommandRefused("expired", command.id)
    cache.admit(command.id, command.expires_at, now)
    return command


def event_tag(suite: suite_lib.Suite, key: bytes, payload: bytes) -> str:
    """MAC tag for an event payload (MQTT 5 user property ``mac``)."""
    return suite_lib.mac(suite, key, payload)


def event_tag_valid(
    key: bytes,
    payload: bytes,
    tag: str | None,
    accepted: frozenset[suite_lib.Suite] = frozenset(suite_lib.Suite),
) -> bool:
    """True if the event's tag verifies; False if it is missing, unknown or wrong."""
    return tag is not None and suite_lib.verify_mac(key, payload, tag, accepted)
