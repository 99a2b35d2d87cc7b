"""The Janus VideoRoom plugin's requests, on one attached handle.

A teller session uses one room (id = session id; the Janus config sets ``string_ids``):
the terminal and the teller each publish one audio+video feed and subscribe to the other's.
Only the backend creates and destroys rooms (they need the room admin key); with
``record`` on, Janus writes one ``.mjr`` file per published stream into ``rec_dir``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from janus_client.errors import VideoRoomError
from janus_client.janus import JanusEvent, JanusSession

PLUGIN = "janus.plugin.videoroom"
Json = dict[str, Any]


def record_base(room: str, feed: str) -> str:
    """The recording ``filename`` a publisher gets; Janus appends ``-<kind>-<mindex>.mjr``."""
    return f"{room}-{feed}"


@dataclass(frozen=True, slots=True)
class RoomSpec:
    """What a teller-session room looks like; kept as data so the service can log it."""

    room: str
    record: bool = False
    rec_dir: str | None = None
    publishers: int = 2
    audiocodec: str = "opus"
    videocodec: str = "vp8"
    #: Upper bound for each publisher's video, bits/s (rural uplinks are thin).
    bitrate: int = 512_000
    #: Ask publishers for a keyframe this often (s), so a late subscriber sees video quickly.
    fir_freq: int = 5
    description: str = ""
    #: Needed to edit, kick from or destroy the room: only the backend holds it, so a
    #: participant's token is good for joining, never for managing the room.
    secret: str | None = field(default=None, repr=False)
    #: The room's access list: with it (even empty), a publisher's join must carry one of
    #: these tokens (``VideoRoom.allow`` adds more later). Janus 1.1.2 does not check it for
    #: subscribers: ``pin`` covers those. None: no list (tests, tools).
    allowed: tuple[str, ...] | None = field(default=None, repr=False)
    #: Needed to join the room at all, as publisher or subscriber (Janus checks the access
    #: list on publishers only): the desk gives it to the room's participants alone.
    pin: str | None = field(default=None, repr=False)

    def create_body(self, admin_key: str | None) -> Json:
        body: Json = {
            "request": "create",
            "room": self.room,
            "permanent": False,
            "is_private": True,
            "description": self.description or f"teller session {self.room}",
            "publishers": self.publishers,
            "audiocodec": self.audiocodec,
            "videocodec": self.videocodec,
            "bitrate": self.bitrate,
            "fir_freq": self.fir_freq,
            "record": self.record,
        }
        if self.rec_dir is not None:
            body["rec_dir"] = self.rec_dir
        if self.secret is not None:
            body["secret"] = self.secret
        if self.allowed is not None:
            body["allowed"] = list(self.allowed)
        if self.pin is not None:
            body["pin"] = self.pin
        if admin_key is not None:
            body["admin_key"] = admin_key
        return body


@dataclass(frozen=True, slots=True)
class Joined:
    """A publisher in a room: its feed id and Janus's SDP answer to its offer."""

    feed: str
    private_id: int | None
    answer: Json
    publishers: list[Json]


def _check(event: JanusEvent, expect: str) -> Json:
    data = event.data
    if "error_code" in data:
        raise VideoRoomError(str(data.get("error", "")), int(data["error_code"]))
    if data.get("videoroom") != expect:
        raise VideoRoomError(f"expected {expect!r}, got {data!r}")
    return data


class VideoRoom:
    """One handle attached to the VideoRoom plugin."""

    def __init__(self, session: JanusSession, handle_id: int) -> None:
        self.session = session
        self.handle_id = handle_id

    @classmethod
    async def attach(cls, session: JanusSession) -> VideoRoom:
        return cls(session, await session.attach(PLUGIN))

    async def _ask(self, body: Json, jsep: Json | None = None, wait: float = 10.0) -> JanusEvent:
        return await self.session.message(self.handle_id, body, jsep, wait)

    async def create_room(self, spec: RoomSpec, admin_key: str | None = None) -> str:
        data = _check(await self._ask(spec.create_body(admin_key)), "created")
        return str(data["room"])

    async def destroy_room(self, room: str, secret: str | None = None) -> None:
        body: Json = {"request": "destroy", "room": room}
        if secret is not None:
            body["secret"] = secret
        _check(await self._ask(body), "destroyed")

    async def allow(
        self, room: str, tokens: list[str], secret: str | None = None, add: bool = True
    ) -> None:
        """Add ``tokens`` to (or, ``add=False``, remove them from) the room's access list."""
        body: Json = {
            "request": "allowed",
            "room": room,
            "action": "add" if add else "remove",
            "allowed": tokens,
        }
        if secret is not None:
            body["secret"] = secret
        _check(await self._ask(body), "success")

    def _with_token(self, body: Json) -> Json:
        # A room with an access list admits a join only with a listed token in the body;
        # ours is the one this session already uses on the Janus API.
        token = self.session.client.token
        return body if token is None else {**body, "token": token}

    async def exists(self, room: str) -> bool:
        data = _check(await self._ask({"request": "exists", "room": room}), "success")
        return bool(data["exists"])

    async def participants(self, room: str) -> list[Json]:
        data = await self._ask({"request": "listparticipants", "room": room})
        return list(_check(data, "participants")["participants"])

    async def publish(
        self, room: str, feed: str, offer: Json, display: str = "", pin: str | None = None
    ) -> Joined:
        """Join as publisher ``feed`` (e.g. "customer") with an SDP offer; returns Janus's
        answer, which arrives as an event on the long poll."""
        body: Json = {
            "request": "joinandconfigure",
            "ptype": "publisher",
            "room": room,
            "id": feed,
            "display": display or feed,
            # Only used when the room records: names the .mjr files after room and role.
            "filename": record_base(room, feed),
        }
        if pin is not None:
            body["pin"] = pin
        event = await self._ask(self._with_token(body), offer)
        data = _check(event, "joined")
        if event.jsep is None:
            raise VideoRoomError("joined without an SDP answer")
        return Joined(str(data["id"]), data.get("private_id"), event.jsep, data["publishers"])

    async def subscribe(
        self,
        room: str,
        feeds: list[str],
        private_id: int | None = None,
        pin: str | None = None,
    ) -> Json:
        """Join as subscriber to these feeds; returns Janus's SDP offer to answer via start."""
        body: Json = {
            "request": "join",
            "ptype": "subscriber",
            "room": room,
            "streams": [{"feed": f} for f in feeds],
        }
        if private_id is not None:
            body["private_id"] = private_id
        if pin is not None:
            body["pin"] = pin
        event = await self._ask(self._with_token(body))
        _check(event, "attached")
        if event.jsep is None:
            raise VideoRoomError("attached without an SDP offer")
        return event.jsep

    async def start(self, answer: Json) -> None:
        """Complete a subscription with the subscriber's SDP answer."""
        data = _check(await self._ask({"request": "start"}, answer), "event")
        if data.get("started") != "ok":
            raise VideoRoomError(f"subscription not started: {data!r}")

    async def kick(self, room: str, feed: str, secret: str | None = None) -> None:
        """Throw participant ``feed`` out of the room (its media is hung up, its subscribers
        hear it leave). A room created with a secret needs it."""
        body: Json = {"request": "kick", "room": room, "id": feed}
        if secret is not None:
            body["secret"] = secret
        _check(await self._ask(body), "success")

    async def leave(self) -> None:
        await self._ask({"request": "leave"})

    async def detach(self) -> None:
        await self.session.detach(self.handle_id)
