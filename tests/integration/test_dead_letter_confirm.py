"""Messages ingest can never store are kept once and confirmed, not re-sent forever (issue 14).

A real enrolled agent (mTLS, MACs) sends good events with bad messages between them, all
through its own spool and wire encoder: an event too big for ingest, a telemetry sample
with a metric this cloud does not know (a newer agent's), and an event stamped ten years
ahead. Ingest keeps each bad one in the dead-letter table and then confirms its sequence
number on the terminal's ack topic like a stored one, so the spool empties: nothing is lost
(the row has the exact bytes and the reason), nothing loops. Before, the first two were never
confirmed and the agent sent its spool again every ``ack_timeout_s``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.security import broker_services
from common import envelope
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from edge.agent import Agent
from edge.spool import Kind
from tests.helpers import CloudProcess, enrolled_link, eventually, secured_cloud
from tests.integration.agents import agent_settings, new_id

ACK_TIMEOUT_S = 1.0
TEN_YEARS_MS = 10 * 365 * 86_400_000


@pytest.fixture
def secured(
    tmp_path: Path, victoria: VictoriaMetrics
) -> Iterator[tuple[Path, Broker, CloudProcess]]:
    with secured_cloud(tmp_path, victoria.url, broker_services("api")) as stack:
        yield stack


def _dead_letters(tmp_path: Path, tid: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(tmp_path / "cloud.sqlite3")
    try:
        return db.execute(
            "SELECT seq, kind, reason, payload FROM ingest_dead_letter WHERE terminal_id = ?"
            " ORDER BY seq",
            (tid,),
        ).fetchall()
    finally:
        db.close()


async def test_bad_messages_are_dead_lettered_once_and_not_sent_again(
    tmp_path: Path, secured: tuple[Path, Broker, CloudProcess]
) -> None:
    _, _, cloud = secured
    tid = new_id("DLQ")
    settings = agent_settings(
        tmp_path, 1, tid, simulate=False, telemetry_interval_s=3600, ack_timeout_s=ACK_TIMEOUT_S
    )
    agent = Agent(settings, link=await enrolled_link(cloud.url, settings.state_dir, tid))
    run = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 15)
        now = int(time.time() * 1000)
        good = [agent.emit_event("card_inserted", {"n": 1})]
        oversized = agent.emit_event("note", {"blob": "x" * (2 * envelope.MAX_PAYLOAD_BYTES)})
        good.append(agent.emit_event("card_inserted", {"n": 2}))
        unknown_metric = agent.spool.put(
            Kind.TELEMETRY, now, {"metrics": {"cpu_pct": 1.0, "from_a_newer_agent": 1.0}}
        )
        ahead = agent.spool.put(
            Kind.EVENT, now + TEN_YEARS_MS, {"type": "card_removed", "data": {}}
        )
        good.append(agent.emit_event("card_removed", {"n": 3}))

        # Every row leaves the spool only on ingest's confirmation: the bad ones too.
        async def confirmed() -> bool:
            return agent.spool.depth() == 0

        await eventually(confirmed, timeout=60, every=0.2)
        resends = agent.resends
        # Past several ack timeouts: nothing unconfirmed is left to send again.
        await asyncio.sleep(4 * ACK_TIMEOUT_S)
        assert agent.resends == resends
        assert agent.spool.depth() == 0

        async with cloud.client() as http:
            r = await http.get(f"/api/v1/terminals/{tid}/events", params={"limit": 100})
        assert r.status_code == 200, r.text
        assert sorted(e["seq"] for e in r.json()) == good  # each good one once, no bad one

        rows = _dead_letters(tmp_path, tid)
        assert [(seq, kind, reason) for seq, kind, reason, _ in rows] == [
            (oversized, "event", "oversized"),
            (unknown_metric, "telemetry", "malformed"),
            (ahead, "event", "ts_window"),
        ]
        kept = envelope.json_object(rows[0][3].encode(), 10 * envelope.MAX_PAYLOAD_BYTES)
        assert kept["seq"] == oversized and len(kept["body"]["data"]["blob"]) == len(
            "x" * (2 * envelope.MAX_PAYLOAD_BYTES)
        )  # the exact message, kept whole
        async with cloud.client() as http:
            health = (await http.get("/healthz")).json()
        assert health["ingest"] == "ok"
    finally:
        agent.stop()
        await asyncio.gather(run, return_exceptions=True)
