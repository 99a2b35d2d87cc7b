"""Archiving finished calls off the desk's path: a queue and one worker.

The desk's ``after_call`` hook must return at once (the desk is locked while it runs), but
the recording pipeline takes seconds of ffmpeg. ``Archiver.after_call`` only queues the
room; ``Archiver.run`` works through the queue one call at a time (the pipeline is I/O
and CPU heavy; one at a time keeps the Janus host's cores for live calls) and reports each
result or failure through injected callables (e.g. ``store.set_recording`` and a log).

When a node's recordings are on another host (``source_of`` gives a ``RecordingSource``,
multi-host deployments), the room's ``.mjr`` files are first copied into the node's local
folder (``rec_dir_of``: the staging folder) by ``recfetch.fetch_room``; a failed fetch is
logged with the room and retried after each of ``retry_delays`` before it is reported. The
staged copies are removed once the room is archived or given up; the media host's files are
never deleted (see docs/operations.md, "Recordings on a media host").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from cloud.media.errors import RecordingError
from cloud.media.nodes import Node
from cloud.media.recfetch import RecordingSource, fetch_room
from cloud.media.recording import RecordingResult, finish_recording

log = logging.getLogger("cuntong.cloud.media.archive")
#: Seconds between fetch attempts of one room (then it is reported as failed).
RETRY_DELAYS = (2.0, 10.0, 60.0)

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
        source_of: Callable[[Node], RecordingSource | None] = lambda node: None,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.rec_dir_of = rec_dir_of
        self.archive_dir = archive_dir
        self.on_done = on_done
        self.on_error = on_error
        self.feeds = tuple(feeds)
        self.min_seconds = min_seconds
        self.source_of = source_of
        self.retry_delays = tuple(retry_delays)
        self.queue: asyncio.Queue[tuple[str, Path, RecordingSource | None]] = asyncio.Queue()

    async def after_call(self, room: str, node: Node) -> None:
        """The desk's hook: remember the room; the worker archives it later."""
        self.queue.put_nowait((room, Path(self.rec_dir_of(node)), self.source_of(node)))

    async def archive(
        self, room: str, rec_dir: Path, source: RecordingSource | None = None
    ) -> RecordingResult | None:
        """Archive one room now (fetching its files from ``source`` first, when given);
        failures go to ``on_error`` rather than up."""
        staged: list[Path] = []
        try:
            if source is not None:
                staged = await self._fetch(room, rec_dir, source)
            result = await finish_recording(
                rec_dir, room, self.archive_dir, self.feeds, self.min_seconds
            )
        except RecordingError as err:
            await self.on_error(room, err)
            return None
        finally:
            for path in staged:  # local copies only: the media host keeps its files
                path.unlink(missing_ok=True)
        await self.on_done(room, result)
        return result

    async def _fetch(self, room: str, staging: Path, source: RecordingSource) -> list[Path]:
        for attempt, delay in enumerate((*self.retry_delays, None), 1):
            try:
                return await fetch_room(source, room, staging)
            except RecordingError as err:
                if delay is None:
                    raise
                log.warning(
                    "room %s: fetching its recordings from %s failed (attempt %d, again in"
                    " %.0fs): %s", room, source.url, attempt, delay, err,
                )  # fmt: skip
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def run(self) -> None:
        """Work through the queue until cancelled."""
        while True:
            room, rec_dir, source = await self.queue.get()
            try:
                await self.archive(room, rec_dir, source)
            finally:
                self.queue.task_done()
