"""Crash rigs shared by the tests and bench/crashloss.py: kill the cloud API (and its ingest)
with SIGKILL just after a terminal's message, restart it on the same database, and count what
was stored; and the load and the store probe for killing the broker under real agents."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from cloud.tsdb import TelemetryReader
from common import envelope, procs
from common.topics import Channel, topic
from edge.agent import Agent
from tests.helpers import CloudProcess, start_cloud


@dataclass
class Round:
    kill: int
    event_seq: int
    telemetry_ts: int


@dataclass
class Tally:
    kill: int
    produced: int
    stored: int
    lost: int
    duplicated: int


@dataclass
class CrashRig:
    tmp: Path
    db_path: Path
    broker_port: int
    tsdb_url: str
    tid: str
    cloud: CloudProcess

    @classmethod
    def start(cls, tmp: Path, broker_port: int, tsdb_url: str, tid: str) -> CrashRig:
        db_path = tmp / "crash.sqlite3"
        cloud = start_cloud(tmp, f"sqlite://{db_path}", broker_port, tsdb_url, **_ENV)
        return cls(tmp, db_path, broker_port, tsdb_url, tid, cloud)

    async def kill_after_message(self, kill: int, delay_s: float) -> Round:
        """Publish one event and one telemetry sample at QoS 1 (the broker has them once
        publish returns), SIGKILL the API ``delay_s`` later, start it again."""
        now = int(time.time() * 1000)
        seq = 2 * kill + 1
        event = envelope.Event(self.tid, seq, now, "card_inserted", {"kill": kill})
        sample = envelope.Telemetry(self.tid, seq + 1, now, {"cpu_pct": float(kill)}, {}, {})
        async with aiomqtt.Client(
            "127.0.0.1", self.broker_port, identifier=self.tid, protocol=aiomqtt.ProtocolVersion.V5
        ) as mqtt:
            await mqtt.publish(topic(self.tid, Channel.EVENT), event.to_bytes(), qos=1)
            await mqtt.publish(topic(self.tid, Channel.TELEMETRY), sample.to_bytes(), qos=1)
            await asyncio.sleep(delay_s)
            os.killpg(self.cloud.proc.pid, signal.SIGKILL)
        self.cloud.proc.wait(10)
        self.cloud = await asyncio.to_thread(
            start_cloud,
            self.tmp,
            f"sqlite://{self.db_path}",
            self.broker_port,
            self.tsdb_url,
            False,
            **_ENV,
        )
        return Round(kill, seq, now)

    def stored_events(self) -> dict[int, int]:
        """seq → rows stored for it."""
        db = sqlite3.connect(self.db_path)
        try:
            rows = db.execute(
                "SELECT seq, COUNT(*) FROM terminal_event WHERE terminal_id = ? GROUP BY seq",
                (self.tid,),
            ).fetchall()
        finally:
            db.close()
        return dict(rows)

    async def stored_samples(self) -> list[int]:
        reader = TelemetryReader(self.tsdb_url)
        try:
            series = await reader.export(f'terminal_cpu_pct{{terminal_id="{self.tid}"}}')
        finally:
            await reader.close()
        return [ts for s in series for ts in s["timestamps"]]

    async def tally(self, rounds: list[Round]) -> list[Tally]:
        events = self.stored_events()
        samples = await self.stored_samples()
        out = []
        for r in rounds:
            copies = [events.get(r.event_seq, 0), samples.count(r.telemetry_ts)]
            stored = sum(1 for n in copies if n)
            out.append(Tally(r.kill, 2, stored, 2 - stored, sum(max(0, n - 1) for n in copies)))
        return out

    def stop(self) -> None:
        procs.stop(self.cloud.proc)


async def produce(
    agent: Agent, stop: asyncio.Event, samples: dict[int, int], events: list[int], step_s: float
) -> None:
    """Telemetry (every fourth message an event) through the agent's own API, one per
    ``step_s``, until ``stop``; ``samples`` maps seq → the sample's timestamp."""
    n = 0
    last_ts = 0
    while not stop.is_set():
        if n % 4 == 3:
            events.append(agent.emit_event("card_inserted", {"n": n}))
        else:
            seq = agent.record_telemetry()
            (entry,) = agent.spool.peek_after(seq - 1, 1)
            assert entry.ts_ms > last_ts  # one sample per ms: the store keys points by time
            samples[seq], last_ts = entry.ts_ms, entry.ts_ms
        n += 1
        await asyncio.sleep(step_s)


def stored_stamps(
    reader: TelemetryReader, tid: str, want: set[int]
) -> Callable[[], Awaitable[list[int] | None]]:
    """A probe for ``eventually``: the stored timestamps once all of ``want`` are there."""

    async def probe() -> list[int] | None:
        series = await reader.export(f'terminal_cpu_pct{{terminal_id="{tid}"}}')
        got = [t for s in series for t in s["timestamps"]]
        return got if want <= set(got) else None

    return probe


#: The production flush interval (the issue's figures were taken with it).
_ENV = {"CUNTONG_CLOUD_INGEST_FLUSH_MS": "200"}
