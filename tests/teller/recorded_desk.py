"""A desk on a real Janus node that records and archives, for the end-to-end call tests:
what the desk told participants (``inbox``), and each archived room's result."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloud.media.archive import Archiver
from cloud.media.errors import RecordingError
from cloud.media.pool import JanusPool, NodeAccess
from cloud.media.recording import RecordingResult
from cloud.sessions.desk import Desk
from cloud.sessions.grants import Message
from cloud.sessions.routing import Board
from cuntong.servers.janus import Janus


@dataclass
class RecordedDesk:
    desk: Desk
    archiver: Archiver
    inbox: list[tuple[str, Message]] = field(default_factory=list)
    archived: dict[str, RecordingResult] = field(default_factory=dict)

    def last(self, address: str, kind: str) -> Message:
        """The latest message of that type sent to ``address``."""
        return [m for a, m in self.inbox if a == address and m["type"] == kind][-1]

    async def archive(self) -> None:
        """Run the archiver until every finished call is archived."""
        worker = asyncio.create_task(self.archiver.run())
        await asyncio.wait_for(self.archiver.queue.join(), 30)
        worker.cancel()


@contextlib.asynccontextmanager
async def recorded_desk(
    janus: Janus, tmp_path: Path, board: Board, **desk_options: Any
) -> AsyncIterator[RecordedDesk]:
    """A desk over ``JanusPool`` on ``janus``, recording into ``tmp_path/rec`` and
    archiving into ``tmp_path/archive``; an archiving failure fails the test."""
    rec_dir = tmp_path / "rec"
    rec_dir.mkdir()
    node = NodeAccess("j1", janus.url, janus.admin_url, janus.cfg.admin_secret,
                      janus.cfg.room_admin_key, str(rec_dir))  # fmt: skip
    inbox: list[tuple[str, Message]] = []
    archived: dict[str, RecordingResult] = {}

    async def notify(address: str, message: Message) -> None:
        inbox.append((address, message))

    async def on_done(room: str, result: RecordingResult) -> None:
        archived[room] = result

    async def on_error(room: str, err: RecordingError) -> None:
        raise AssertionError(f"{room}: {err}")

    async with JanusPool([node]) as pool:
        archiver = Archiver(pool.rec_dir, tmp_path / "archive", on_done, on_error)
        desk = Desk(board, pool, notify, lambda: datetime.now(UTC),
                    after_call=archiver.after_call, **desk_options)  # fmt: skip
        yield RecordedDesk(desk, archiver, inbox, archived)
