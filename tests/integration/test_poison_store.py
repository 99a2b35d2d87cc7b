"""Issue 21's poison isolation where the *store* refuses a row the envelope accepts: the
real cloud API with ingest on PostgreSQL, whose JSONB cannot hold a NUL character
(``\\u0000``), so an event carrying one fails the batch it is in. Ingest splits the batch
until that row stands alone, dead-letters it with the reason, and lands every other
event, the poisoned terminal's included."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg
import httpx
import pytest

from common import envelope, procs
from common.topics import Channel, topic
from cuntong.servers.mosquitto import Broker
from cuntong.servers.postgres import Postgres
from cuntong.servers.victoria import VictoriaMetrics
from tests.helpers import CloudProcess, eventually, fresh_database, start_cloud
from tests.integration.agents import new_id

pytestmark = pytest.mark.servers


@pytest.fixture
async def pg_url(postgres_server: Postgres) -> str:
    return await fresh_database(postgres_server, "poison")


@pytest.fixture
def pg_cloud(
    tmp_path: Path, pg_url: str, broker: Broker, victoria: VictoriaMetrics
) -> Iterator[CloudProcess]:
    # A long flush, so the poisoned event shares its batch with the others.
    c = start_cloud(
        tmp_path, pg_url, broker.cfg.port, victoria.url, CUNTONG_CLOUD_INGEST_FLUSH_MS="1000"
    )
    try:
        yield c
    finally:
        procs.stop(c.proc)


async def _rows(url: str, sql: str, *args: object) -> list[Any]:
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def test_a_row_the_database_refuses_is_dead_lettered_and_the_rest_lands(
    pg_cloud: CloudProcess, pg_url: str, broker: Broker
) -> None:
    evil, good = new_id("NUL"), new_id("OKP")
    now = int(time.time() * 1000)
    async with aiomqtt.Client(
        "127.0.0.1", broker.cfg.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as mqtt:
        for seq in range(1, 6):
            data = {"note": "a\x00b"} if seq == 3 else {"n": str(seq)}
            event = envelope.Event(evil, seq, now + seq, "card_inserted", data)
            await mqtt.publish(topic(evil, Channel.EVENT), event.to_bytes(), qos=1)
            honest = envelope.Event(good, seq, now + seq, "card_inserted", {})
            await mqtt.publish(topic(good, Channel.EVENT), honest.to_bytes(), qos=1)

    async def landed() -> dict[str, list[int]] | None:
        rows = await _rows(
            pg_url,
            "SELECT terminal_id, seq FROM terminal_event WHERE terminal_id = ANY($1)",
            [evil, good],
        )
        seqs: dict[str, list[int]] = {evil: [], good: []}
        for r in rows:
            seqs[r["terminal_id"]].append(r["seq"])
        done = sorted(seqs[good]) == [1, 2, 3, 4, 5] and len(seqs[evil]) >= 4
        return {k: sorted(v) for k, v in seqs.items()} if done else None

    stored = await eventually(landed, timeout=30)
    assert stored == {evil: [1, 2, 4, 5], good: [1, 2, 3, 4, 5]}

    async def dead() -> list[Any] | None:
        rows = await _rows(
            pg_url,
            "SELECT seq, kind, reason, detail FROM ingest_dead_letter WHERE terminal_id = $1",
            evil,
        )
        return rows or None

    (row,) = await eventually(dead, timeout=20)
    assert (row["seq"], row["kind"]) == (3, "event")
    assert row["reason"] == "store_refused", dict(row)
    async with pg_cloud.client() as http:
        health = await http.get("/healthz")
    assert health.status_code == 200 and health.json()["ingest"] == "ok", health.text


def _fast_stop(pg: Postgres) -> None:
    """PostgreSQL's fast shutdown (SIGINT): it ends the cloud's open sessions instead of
    waiting for them, as a smart shutdown (SIGTERM) would until it is killed."""
    assert pg.proc is not None
    os.killpg(pg.proc.pid, signal.SIGINT)
    pg.proc.wait(30)
    pg.proc = None


@pytest.fixture
def own_pg() -> Iterator[Postgres]:
    """A PostgreSQL of this test's own, to stop under a running ingest (not under pytest's
    root-only tmp: the server runs as ``postgres``)."""
    base = Path(tempfile.mkdtemp(prefix="cuntong-pgdown-"))
    pg = Postgres(procs.free_port(), base / "data").start()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


async def test_database_down_turns_healthz_degraded_and_the_event_lands_once_back(
    tmp_path: Path, own_pg: Postgres, broker: Broker, victoria: VictoriaMetrics
) -> None:
    """The database (not the telemetry store) goes away under a running ingest: the write
    fails as an outage, not as a bad row, so nothing is dead-lettered; /healthz says
    degraded; the event stays unacknowledged and lands once the database is back."""
    url = await fresh_database(own_pg, "down")
    cloud = start_cloud(tmp_path, url, broker.cfg.port, victoria.url)
    tid = new_id("PGDOWN")
    try:
        _fast_stop(own_pg)
        async with aiomqtt.Client(
            "127.0.0.1", broker.cfg.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as mqtt:
            event = envelope.Event(tid, 1, int(time.time() * 1000), "card_inserted", {})
            await mqtt.publish(topic(tid, Channel.EVENT), event.to_bytes(), qos=1)
        async with httpx.AsyncClient(base_url=cloud.url, timeout=10) as http:

            async def degraded() -> dict[str, Any] | None:
                # Other parts may say degraded first (the cloud's own database check);
                # wait for ingest's write to have failed.
                r = await http.get("/healthz")
                body = r.json()
                ingest_down = str(body.get("ingest", "")).startswith("degraded")
                return body if r.status_code == 503 and ingest_down else None

            body = await eventually(degraded, timeout=30)
            assert body["status"] == "degraded", body
            own_pg.start()

            async def landed() -> list[Any] | None:
                rows = await _rows(
                    url, "SELECT seq FROM terminal_event WHERE terminal_id = $1", tid
                )
                return rows or None

            rows = await eventually(landed, timeout=30)
            assert [r["seq"] for r in rows] == [1]

            async def ok() -> bool:
                return (await http.get("/healthz")).status_code == 200

            await eventually(ok, timeout=30)
        dead = await _rows(url, "SELECT reason FROM ingest_dead_letter WHERE terminal_id = $1", tid)
        assert dead == []
    finally:
        procs.stop(cloud.proc)
