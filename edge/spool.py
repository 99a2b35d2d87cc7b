"""Store-and-forward spool: every message a terminal sends waits here until the cloud has
stored it.

SQLite on the terminal's disk, so the queue survives an agent restart or a power cut.
Messages leave in the order they entered. Each row's id is the message's sequence number on
the wire. A row is deleted only when ingest confirms it stored that sequence number
(``confirm``, fed by ``common.wire.ack``), not when the broker acknowledges the PUBLISH: a
broker that dies before delivering or saving a message would otherwise lose it. The agent
sends rows again that stay unconfirmed; the cloud drops repeats of a sequence number, so a
message sent twice is stored once.

The spool is bounded. Past ``max_rows`` the oldest half of the telemetry is thinned (every
second sample goes), so the history keeps its span at a coarser step. Business events are
never dropped: when events alone fill the spool, only the newest telemetry sample is kept
beside them, and ``put`` raises ``SpoolFull`` for an event only past a hard limit ten times
the soft bound, which the caller surfaces as an alarm.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from common.errors import SpoolFull


class Kind(StrEnum):
    TELEMETRY = "telemetry"
    EVENT = "event"


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    kind: Kind
    ts_ms: int
    body: dict[str, Any]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    kind  TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    body  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spool_kind ON spool(kind, seq);
"""


class Spool:
    def __init__(self, path: Path, max_rows: int, now_ms: int) -> None:
        self.max_rows = max_rows
        self.hard_limit = max_rows * 10
        self.thinned = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: an event the agent accepted must survive a power cut in a village shop.
        self._db.execute("PRAGMA synchronous=FULL")
        # Acknowledged rows hold customers' business payloads: zero them on delete rather
        # than leave them readable in free pages (the wipe then only has the WAL to clear).
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.executescript(_SCHEMA)
        if fresh:
            # Start sequence numbers at the clock (in microsecond-ish units), so a spool that
            # was wiped and recreated never reuses numbers the cloud has already seen.
            self._db.execute(
                "INSERT INTO sqlite_sequence(name, seq) VALUES ('spool', ?)", (now_ms * 1000,)
            )

    def close(self) -> None:
        self._db.close()

    def put(self, kind: Kind, ts_ms: int, body: dict[str, Any]) -> int:
        """Queue one message and return its sequence number."""
        if self.depth() >= self.max_rows:
            self._thin()
            if kind is Kind.EVENT and self.depth() >= self.hard_limit:
                raise SpoolFull(f"spool holds {self.depth()} messages; broker unreachable?")
            if kind is Kind.TELEMETRY and self.depth() >= self.max_rows:
                # Events fill the spool: keep only the latest health sample beside them.
                gone = self._db.execute(
                    "DELETE FROM spool WHERE kind = ?", (Kind.TELEMETRY.value,)
                ).rowcount
                self.thinned += gone
        cur = self._db.execute(
            "INSERT INTO spool(kind, ts_ms, body) VALUES (?, ?, ?)",
            (kind.value, ts_ms, json.dumps(body, ensure_ascii=False, separators=(",", ":"))),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _thin(self) -> None:
        rows = self._db.execute(
            "SELECT seq FROM spool WHERE kind = ? ORDER BY seq LIMIT ?",
            (Kind.TELEMETRY.value, max(2, self.max_rows // 2)),
        ).fetchall()
        doomed = [(seq,) for i, (seq,) in enumerate(rows) if i % 2 == 1]
        self._db.executemany("DELETE FROM spool WHERE seq = ?", doomed)
        self.thinned += len(doomed)

    def peek(self, limit: int) -> list[Entry]:
        """The oldest ``limit`` messages, in order, without removing them."""
        rows = self._db.execute(
            "SELECT seq, kind, ts_ms, body FROM spool ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [Entry(seq, Kind(kind), ts, json.loads(body)) for seq, kind, ts, body in rows]

    def peek_after(self, seq: int, limit: int) -> list[Entry]:
        """The oldest ``limit`` messages numbered above ``seq``: what a drain that has
        already sent everything up to ``seq`` sends next."""
        rows = self._db.execute(
            "SELECT seq, kind, ts_ms, body FROM spool WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [Entry(seq, Kind(kind), ts, json.loads(body)) for seq, kind, ts, body in rows]

    def oldest(self) -> int | None:
        """The lowest sequence number still held, or None when empty."""
        row = self._db.execute("SELECT min(seq) FROM spool").fetchone()
        return None if row[0] is None else int(row[0])

    def confirm(self, ranges: Iterable[tuple[int, int]]) -> int:
        """Remove the messages the cloud has stored (inclusive ranges of sequence numbers);
        returns how many rows went. Numbers no longer held (thinned, or confirmed twice) are
        ignored."""
        gone = 0
        for lo, hi in ranges:
            gone += self._db.execute(
                "DELETE FROM spool WHERE seq BETWEEN ? AND ?", (lo, hi)
            ).rowcount
        return gone

    def depth(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM spool").fetchone()[0])

    def pending_events(self) -> int:
        return int(
            self._db.execute(
                "SELECT count(*) FROM spool WHERE kind = ?", (Kind.EVENT.value,)
            ).fetchone()[0]
        )

    def wipe(self, drop_pending: bool) -> int:
        """The fleet's 'wipe local data': forget queued telemetry (and, with
        ``drop_pending``, business events not yet delivered), then rewrite the file and
        empty the write-ahead log so no delivered payload survives on disk. Returns the
        number of rows removed."""
        if drop_pending:
            gone = self._db.execute("DELETE FROM spool").rowcount
        else:
            gone = self._db.execute(
                "DELETE FROM spool WHERE kind = ?", (Kind.TELEMETRY.value,)
            ).rowcount
        self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone
