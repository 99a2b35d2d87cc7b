"""A desk wired to an in-memory media fake and a movable clock, for the desk and store tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cloud.media.errors import JanusError
from cloud.media.nodes import Node
from cloud.sessions.desk import Desk, SessionFacts
from cloud.sessions.estimate import HandleTimes
from cloud.sessions.grants import Message, TurnConfig
from cloud.sessions.routing import Board, TellerState
from cloud.sessions.skills import Skills
from cloud.sessions.state import Event, Transition

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
A = TellerState.AVAILABLE
DEPOSITS = Skills.of({"cash_deposit": 4, "pension": 4}, {"cmn"})


@dataclass
class FakeMedia:
    """Rooms and tokens in memory; ``broken`` makes room creation fail like a dead node."""

    rooms: set[str] = field(default_factory=set)
    tokens: set[str] = field(default_factory=set)
    room_of: dict[str, str] = field(default_factory=dict)  # token -> the room it joins
    closed: list[str] = field(default_factory=list)
    kicked: list[tuple[str, str]] = field(default_factory=list)
    broken: bool = False
    node: Node = field(default_factory=lambda: Node("j1", "http://j1/janus", "http://j1/a", 10))

    async def open_room(self, room: str) -> Node:
        if self.broken:
            raise JanusError("connection refused")
        self.rooms.add(room)
        return self.node

    async def close_room(self, room: str) -> Node | None:
        self.rooms.discard(room)
        self.closed.append(room)
        return self.node

    async def grant(self, node: Node, room: str, token: str) -> None:
        assert room in self.rooms, f"grant into {room}, which is not open"
        self.tokens.add(token)
        self.room_of[token] = room

    async def revoke(self, node: Node, room: str, token: str) -> None:
        self.tokens.discard(token)
        self.room_of.pop(token, None)

    def room_pin(self, node: Node, room: str) -> str:
        return f"pin-{room}"

    async def kick(self, node: Node, room: str, feed: str) -> None:
        self.kicked.append((room, feed))


@dataclass
class Rig:
    desk: Desk
    media: FakeMedia
    inbox: list[tuple[str, Message]]
    records: list[Transition]
    after: list[str]
    now: list[datetime]

    def advance(self, seconds: float) -> None:
        self.now[0] += timedelta(seconds=seconds)

    def messages(self, address: str, kind: str | None = None) -> list[Message]:
        return [m for a, m in self.inbox if a == address and kind in (None, m["type"])]

    def events(self, session_id: str) -> list[Event]:
        return [r.event for r in self.records if r.session_id == session_id]


def rig(*tellers: str, turn: TurnConfig | None = None) -> Rig:
    now = [T0]
    board = Board()
    for n, teller_id in enumerate(tellers):
        board.add_teller(teller_id, DEPOSITS, T0.timestamp())
        board.set_state(teller_id, A, T0.timestamp() - 100 + n)  # first listed idles longest
    inbox: list[tuple[str, Message]] = []
    records: list[Transition] = []
    after: list[str] = []
    media = FakeMedia()

    async def notify(address: str, message: Message) -> None:
        inbox.append((address, message))

    async def persist(record: Transition, facts: SessionFacts) -> None:
        assert facts.terminal_id.startswith("T")
        records.append(record)

    async def after_call(room: str, node: Node) -> None:
        after.append(f"{room}@{node.name}")

    desk = Desk(
        board,
        media,
        notify,
        lambda: now[0],
        persist=persist,
        after_call=after_call,
        turn=turn,
        times=HandleTimes(min_samples=1),
    )
    return Rig(desk, media, inbox, records, after, now)
