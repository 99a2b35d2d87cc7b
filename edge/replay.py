"""The replay cache survives a restart: a small append-only journal in the identity folder.

A signed command captured off the wire stays valid until its ``exp`` (at most
``commands.MAX_TTL``). An in-memory cache refuses a replay only until the agent restarts;
after that the same bytes would run again. So every admitted command id is appended to
``replay.jsonl`` (one ``["<id>", "<expiry ISO>"]`` line, fsync-ed) *before* the command
runs, and ``open_replay_cache`` reloads the live ids at start, drops the expired ones and
rewrites the file compact, so it never holds more than the commands of the last
``MAX_TTL``. A journal that cannot be written refuses the command (``replay_journal``):
failing closed beats running a command we could not remember.

Commands are rare (a few an hour), so one small synchronous append per command is cheap.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from common.errors import CommandRefused
from common.wire.commands import ReplayCache
from provisioning.files import write_private

JOURNAL = "replay.jsonl"


def _read(path: Path) -> list[tuple[str, dt.datetime]]:
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            command_id, expiry = json.loads(line)
            when = dt.datetime.fromisoformat(expiry)
        except (ValueError, TypeError):
            continue  # a line torn by a crash mid-append: its command never ran
        if isinstance(command_id, str) and when.tzinfo is not None:
            entries.append((command_id, when))
    return entries


def open_replay_cache(folder: Path, now: dt.datetime) -> ReplayCache:
    """A ReplayCache holding the live ids of earlier runs and journalling new ones."""
    path = folder / JOURNAL
    cache = ReplayCache()
    if path.exists():
        cache.restore(_read(path), now)
    compact = "".join(json.dumps([k, v.isoformat()]) + "\n" for k, v in cache.live(now))
    write_private(path, compact.encode())

    def append(command_id: str, expires_at: dt.datetime) -> None:
        line = (json.dumps([command_id, expires_at.isoformat()]) + "\n").encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            raise CommandRefused("replay_journal", f"cannot record command: {err}") from err

    cache.on_admit = append
    return cache
