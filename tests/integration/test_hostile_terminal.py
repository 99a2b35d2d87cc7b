"""One compromised terminal, holding its own valid certificate and MAC key, must not hurt
the fleet: not stop ingestion, not pin its records in the future, not poison its dedup
mark, not write into another terminal's series (issue 21)."""

from __future__ import annotations

import asyncio
import base64
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.security import broker_services
from cloud.tsdb import TelemetryReader
from common import envelope
from common.wire import ack as stored_ack
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from edge.identity import SecureLink
from tests.helpers import CloudProcess, enrolled_link, eventually, secured_cloud
from tests.integration.agents import new_id

Stack = tuple[Path, Broker, CloudProcess]
TEN_YEARS_MS = 10 * 365 * 86_400_000


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, victoria: VictoriaMetrics) -> Iterator[Stack]:
    """One secured broker and cloud for the module (each start is a few seconds, more on a
    loaded machine): the tests keep apart by terminal id, and each hostile terminal's
    harm must stay its own anyway. Enrolment's per-address limit is raised: every test
    enrols from 127.0.0.1 within the same minute."""
    tmp = tmp_path_factory.mktemp("hostile")
    extra = {"CUNTONG_CLOUD_ENROL_PER_MINUTE": "1000"}
    with secured_cloud(tmp, victoria.url, broker_services("api"), **extra) as stack:
        yield stack


def _now_ms() -> int:
    return int(time.time() * 1000)


class Terminal:
    """A terminal's own mTLS link, publishing whatever bytes it likes (with true MACs)."""

    def __init__(self, tid: str, link: SecureLink, mqtt: aiomqtt.Client) -> None:
        self.tid, self.link, self.mqtt = tid, link, mqtt

    async def event(self, payload: bytes) -> None:
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("mac", self.link.event_tag(payload))]
        await self.mqtt.publish(f"cuntong/v1/t/{self.tid}/event", payload, qos=1, properties=props)

    async def telemetry(self, payload: bytes) -> None:
        await self.mqtt.publish(f"cuntong/v1/t/{self.tid}/telemetry", payload, qos=1)


@asynccontextmanager
async def terminal(tmp_path: Path, stack: Stack, prefix: str) -> AsyncIterator[Terminal]:
    _, broker, cloud = stack
    tid = new_id(prefix)
    link = await enrolled_link(cloud.url, tmp_path / tid, tid)
    async with aiomqtt.Client(
        "127.0.0.1",
        broker.cfg.port,
        identifier=tid,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=link.tls,
    ) as mqtt:
        yield Terminal(tid, link, mqtt)


def _raw_event(tid: str, seq: int, ts: int) -> bytes:
    """An event the way the envelope encodes one, with numbers it would not accept."""
    body = {"type": "card_inserted", "data": {}}
    return orjson.dumps({"v": 1, "kind": "event", "tid": tid, "seq": seq, "ts": ts, "body": body})


def _rows(stack: Stack, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(stack[0].parent / "cloud.sqlite3")  # next to the cloud's PKI
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _dead_letters(stack: Stack, tid: str) -> list[tuple[str, str]]:
    sql = "SELECT kind, reason FROM ingest_dead_letter WHERE terminal_id = ? ORDER BY id"
    try:
        return [(k, r) for k, r in _rows(stack, sql, tid)]
    except sqlite3.OperationalError:  # no such table: the old code has none
        return []


async def _events(cloud: CloudProcess, tid: str) -> list[dict[str, Any]]:
    async with cloud.client() as http:
        r = await http.get(f"/api/v1/terminals/{tid}/events", params={"limit": 1000})
    return list(r.json()) if r.status_code == 200 else []


async def test_a_poison_event_does_not_stop_other_terminals(tmp_path: Path, secured: Stack) -> None:
    _, _, cloud = secured
    async with (
        terminal(tmp_path, secured, "EVIL") as evil,
        terminal(tmp_path, secured, "GOOD") as good,
    ):
        now = _now_ms()
        await evil.event(_raw_event(evil.tid, 2**63, now))
        await evil.event(_raw_event(evil.tid, 7, 10**15))
        for seq in range(1, 6):
            await good.event(envelope.Event(good.tid, seq, now, "card_inserted", {}).to_bytes())

        async def all_landed() -> list[int] | None:
            seqs = sorted(e["seq"] for e in await _events(cloud, good.tid))
            return seqs if seqs == [1, 2, 3, 4, 5] else None

        await eventually(all_landed, timeout=20)
        await eventually(lambda: _async(len(_dead_letters(secured, evil.tid)) == 2))
    assert _dead_letters(secured, evil.tid) == [("event", "malformed")] * 2
    async with cloud.client() as http:
        health = await http.get("/healthz")
    assert health.status_code == 200 and health.json()["ingest"] == "ok"


async def test_far_future_timestamps_are_quarantined_not_trusted(
    tmp_path: Path, secured: Stack
) -> None:
    _, _, cloud = secured
    async with terminal(tmp_path, secured, "FUT") as evil:
        now = _now_ms()
        ahead = now + TEN_YEARS_MS
        await evil.event(envelope.Event(evil.tid, 1, ahead, "card_inserted", {}).to_bytes())
        await evil.telemetry(
            envelope.Telemetry(evil.tid, 2, ahead, {"cpu_pct": 1}, {}, {}).to_bytes()
        )
        # An honest message after them: once it lands, both were handled.
        await evil.event(envelope.Event(evil.tid, 3, now, "card_removed", {}).to_bytes())

        async def honest_landed() -> list[dict[str, Any]] | None:
            rows = await _events(cloud, evil.tid)
            return rows if any(e["seq"] == 3 for e in rows) else None

        rows = await eventually(honest_landed, timeout=20)
        assert [e["seq"] for e in rows] == [3]
        await eventually(lambda: _async(len(_dead_letters(secured, evil.tid)) == 2))
    assert sorted(_dead_letters(secured, evil.tid)) == [
        ("event", "ts_window"),
        ("telemetry", "ts_window"),
    ]
    received = _rows(
        secured, "SELECT received_at FROM ingest_dead_letter WHERE terminal_id = ?", evil.tid
    )
    assert all(str(r[0]).startswith(time.strftime("%Y", time.gmtime())) for r in received)
    health_at = _rows(secured, "SELECT health_at FROM terminal WHERE id = ?", evil.tid)
    assert health_at in ([], [(None,)])


async def test_a_huge_seq_does_not_poison_the_dedup_mark(
    tmp_path: Path, secured: Stack, victoria: VictoriaMetrics
) -> None:
    async with terminal(tmp_path, secured, "SEQ") as evil:
        now = _now_ms()
        forged = envelope.Telemetry(evil.tid, 5 * 10**15, now, {"cpu_pct": 99}, {}, {})
        await evil.telemetry(forged.to_bytes())
        for seq in (1, 2, 3):
            sample = envelope.Telemetry(evil.tid, seq, now + seq, {"cpu_pct": seq}, {}, {})
            await evil.telemetry(sample.to_bytes())
        reader = TelemetryReader(victoria.url)
        try:

            async def real_samples() -> list[int] | None:
                series = await reader.export(f'terminal_cpu_pct{{terminal_id="{evil.tid}"}}')
                stamps = sorted(t for s in series for t in s["timestamps"])
                return stamps if len(stamps) >= 3 else None

            stamps = await eventually(real_samples, timeout=20)
        finally:
            await reader.close()
    assert stamps == [now + 1, now + 2, now + 3]

    async def mark() -> list[tuple[Any, ...]] | None:
        rows = _rows(secured, "SELECT telemetry_seq FROM terminal WHERE id = ?", evil.tid)
        return rows if rows == [(3,)] else None

    await eventually(mark)  # the mark a restarted ingest starts from is the real one
    assert _dead_letters(secured, evil.tid) == [("telemetry", "seq_jump")]


async def test_a_peripheral_name_cannot_write_another_terminals_point(
    tmp_path: Path, secured: Stack, victoria: VictoriaMetrics
) -> None:
    async with (
        terminal(tmp_path, secured, "INJ") as evil,
        terminal(tmp_path, secured, "VIC") as victim,
    ):
        now = _now_ms()
        # Ends the record, writes one in the victim's series, then restarts its own.
        name = (
            f"x=0 1\nterminal,terminal_id={victim.tid} cpu_pct=99 {now}\n"
            f"terminal,terminal_id={evil.tid} y"
        )
        forged = envelope.Telemetry(evil.tid, 1, now, {"cpu_pct": 1}, {name: "ok"}, {})
        await evil.telemetry(forged.to_bytes())
        honest = envelope.Telemetry(evil.tid, 2, now + 1, {"cpu_pct": 2}, {}, {})
        await evil.telemetry(honest.to_bytes())
        reader = TelemetryReader(victoria.url)
        try:

            async def evil_landed() -> list[int] | None:
                series = await reader.export(f'terminal_cpu_pct{{terminal_id="{evil.tid}"}}')
                stamps = [t for s in series for t in s["timestamps"]]
                return stamps if now + 1 in stamps else None

            await eventually(evil_landed, timeout=20)
            victim_series = await reader.export(f'{{terminal_id="{victim.tid}"}}')
        finally:
            await reader.close()
    assert victim_series == []


async def test_a_bad_mac_is_kept_once_and_confirmed_and_garbage_kept_whole(
    tmp_path: Path, secured: Stack
) -> None:
    """An event whose MAC does not verify is never stored as an event; it is dead-lettered
    (once, however often it comes) and its seq confirmed, so a terminal with a wrong key
    does not loop. Bytes with no readable seq are kept exactly, and cannot be confirmed."""
    _, _, cloud = secured
    async with terminal(tmp_path, secured, "MAC") as evil:
        await evil.mqtt.subscribe(f"cuntong/v1/t/{evil.tid}/ack", qos=1)
        now = _now_ms()
        forged = envelope.Event(evil.tid, 5, now, "card_inserted", {}).to_bytes()
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("mac", "not-the-mac")]
        topic_name = f"cuntong/v1/t/{evil.tid}/event"
        for _ in range(2):
            await evil.mqtt.publish(topic_name, forged, qos=1, properties=props)
        garbage = b"\xff\x00 not json"
        await evil.event(garbage)
        await evil.event(envelope.Event(evil.tid, 6, now, "card_removed", {}).to_bytes())

        confirmed: set[int] = set()
        async with asyncio.timeout(30):
            async for message in evil.mqtt.messages:
                assert isinstance(message.payload, bytes)
                confirmed.update(stored_ack.parse(message.payload).seqs())
                if {5, 6} <= confirmed:
                    break
        await eventually(lambda: _async(len(_dead_letters(secured, evil.tid)) == 2))
        assert [e["seq"] for e in await _events(cloud, evil.tid)] == [6]
    rows = _rows(
        secured,
        "SELECT seq, reason, payload FROM ingest_dead_letter WHERE terminal_id = ? ORDER BY id",
        evil.tid,
    )
    assert [(seq, reason) for seq, reason, _ in rows] == [(5, "bad_mac"), (None, "malformed")]
    assert rows[0][2] == forged.decode()
    assert base64.b64decode(rows[1][2].removeprefix("base64:")) == garbage


async def _async(value: bool) -> bool:
    return value
