"""Archiving finished calls off the desk's path: a queue and one worker.

The desk's ``after_call`` hook must return at once (the desk is locked while it runs), but
the recording pipeline takes seconds of ffmpeg. ``Archiver.after_call`` only queues the
room; ``Archiver.run`` works through the queue one call at a time (the pipeline is I/O
and CPU heavy; one at a time keeps the Janus host's cores for live calls) and reports each
result or failure through injected callables (e.g. ``store.set_recording`` and a log).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from cloud.media.errors import RecordingError
from cloud.media.nodes import Node
from cloud.media.recording import RecordingResult, finish_recording

OnDone = Callable[[str, RecordingResult], Awaitable[None]]
OnError = Callable[[str, RecordingError], Awaitable[None]]


class Archiver:
    def __init__(
        self,
        rec_dir_of: Callable[[Node], str | Path],
        archive_dir: Path,
        on_done: OnDone,
        on_error: OnError,
        feeds: Sequence[str] = ("customer", "teller"),
        min_seconds: float = 1.0,
    ) -> None:
        self.rec_dir_of = rec_dir_of
        self.archive_dir = archive_dir
        self.on_done = on_done
        self.on_error = on_error
        self.feeds = tuple(feeds)
        self.min_seconds = min_seconds
        self.queue: asyncio.Queue[tuple[str, Path]] = asyncio.Queue()

    async def after_call(self, room: str, node: Node) -> None:
        """The desk's hook: remember the room; the worker archives it later."""
        self.queue.put_nowait((room, Path(self.rec_dir_of(node))))

    async def archive(self, room: str, rec_dir: Path) -> RecordingResult | None:
        """Archive one room now; failures go to ``on_error`` rather than up."""
        try:
            result = await finish_recording(
                rec_dir, room, self.archive_dir, self.feeds, self.min_seconds
            )
        except RecordingError as err:
            await self.on_error(room, err)
            return None
        await self.on_done(room, result)
        return result

    async def run(self) -> None:
        """Work through the queue until cancelled."""
        while True:
            room, rec_dir = await self.queue.get()
            try:
                await self.archive(room, rec_dir)
            finally:
                self.queue.task_done()
