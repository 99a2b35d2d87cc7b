"""Subscribe-time ACLs and a misbehaving terminal, against the real secured stack: an
mTLS Mosquitto with the dynamic-security plugin, the cloud API with ingest, and
VictoriaMetrics. Terminals enrol through the cloud's enrolment API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.security import broker_services
from common import envelope
from common.settings import CloudSettings
from common.topics import Channel, subscription, topic
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from edge.agent import Agent
from tests.helpers import CloudProcess, enrolled_link, eventually, secured_cloud
from tests.integration.agents import agent_settings, new_id

pytestmark = pytest.mark.servers

NOT_AUTHORIZED = 0x87


@pytest.fixture
def stack(tmp_path: Path, victoria: VictoriaMetrics) -> Iterator[tuple[Path, Broker, CloudProcess]]:
    extra = {
        "CUNTONG_FLEET_MISBEHAVIOUR_REJECTS": "3",
        "CUNTONG_FLEET_MISBEHAVIOUR_FLAPS": "0",
        "CUNTONG_FLEET_ALERT_INTERVAL_S": "0.3",
    }
    with secured_cloud(tmp_path, victoria.url, broker_services("api"), **extra) as s:
        yield s


def mqtt(broker: Broker, tls: ssl.SSLContext) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        broker.cfg.port,
        tls_context=tls,
        protocol=aiomqtt.ProtocolVersion.V5,
        timeout=5,
    )


def codes(granted: Any) -> list[int]:
    return [int(getattr(c, "value", c)) for c in granted]


def sample(tid: str, seq: int) -> bytes:
    """A telemetry sample made with the terminal's own codec."""
    return envelope.Telemetry(
        terminal_id=tid,
        seq=seq,
        # A second apart: the store keeps one sample per series and timestamp.
        ts_ms=int(time.time() * 1000) - 60_000 + seq * 1000,
        metrics={"cpu_pct": 10.0 + seq},
        peripherals={},
        versions={"agent": "test"},
    ).to_bytes()


async def stored_samples(victoria: VictoriaMetrics, tid: str) -> int:
    """Samples the store holds for ``tid`` (VictoriaMetrics' export API)."""
    async with httpx.AsyncClient(timeout=10) as http:
        await http.get(f"{victoria.url}/internal/force_flush")
        r = await http.get(
            f"{victoria.url}/api/v1/export", params={"match[]": f'{{terminal_id="{tid}"}}'}
        )
    r.raise_for_status()
    return sum(len(json.loads(line)["values"]) for line in r.text.splitlines() if line)


async def misbehaving_alerts(http: Any, within_s: float) -> list[dict[str, Any]]:
    """The fleet's open ``misbehaving`` alerts, once there is at least one."""

    async def alert() -> list[dict[str, Any]] | None:
        r = await http.get("/api/v1/fleet/alerts")
        found = [a for a in r.json() if a["kind"] == "misbehaving"]
        return found or None

    return await eventually(alert, timeout=within_s)


async def test_hijacking_subscriber_is_refused_and_no_telemetry_is_lost(
    tmp_path: Path, stack: tuple[Path, Broker, CloudProcess], victoria: VictoriaMetrics
) -> None:
    _, broker, cloud = stack
    thief_id, honest_id = new_id("HJ"), new_id("OK")
    thief = await enrolled_link(cloud.url, tmp_path / thief_id, thief_id)
    honest = await enrolled_link(cloud.url, tmp_path / honest_id, honest_id)
    group = CloudSettings().ingest_group
    async with mqtt(broker, thief.tls) as t, mqtt(broker, honest.tls) as h:
        # Refused at SUBSCRIBE: ingest's share group, everyone's telemetry, everything,
        # another terminal's commands. Its own command subtree is granted.
        for refused in (
            subscription(Channel.TELEMETRY, group),
            subscription(Channel.TELEMETRY),
            "#",
            f"cuntong/v1/t/{honest_id}/cmd/#",
        ):
            assert codes(await t.subscribe(refused, qos=1)) == [NOT_AUTHORIZED], refused
        assert codes(await t.subscribe(f"cuntong/v1/t/{thief_id}/cmd/#", qos=1)) == [1]
        # Nor may it publish into another terminal's subtree (the broker drops it).
        await t.publish(topic(honest_id, Channel.TELEMETRY), sample(honest_id, 999), qos=1)
        sent = 20
        for seq in range(1, sent + 1):
            await h.publish(topic(honest_id, Channel.TELEMETRY), sample(honest_id, seq), qos=1)

        async def all_stored() -> int | None:
            n = await stored_samples(victoria, honest_id)
            return n if n >= sent else None

        # Every sample the honest terminal sent is stored, none diverted to the thief's
        # (refused) share, and the forged one is not among them.
        assert await eventually(all_stored, timeout=20) == sent
        await asyncio.sleep(1)
        assert await stored_samples(victoria, honest_id) == sent

    # With default settings (no debug log), the broker's refusal plugin reported each
    # refused filter: ingest counted them, and the alert names the thief.
    async with cloud.client() as http:
        (found,) = await misbehaving_alerts(http, within_s=30)
        assert found["terminal_id"] == thief_id
        assert found["message"].startswith("4 refused requests (subscribe_refused 4)"), found


async def _disconnected(client: aiomqtt.Client) -> bool:
    """True once the broker has dropped ``client``."""
    try:
        async with asyncio.timeout(10):
            async for _ in client.messages:
                pass
    except aiomqtt.MqttError:
        return True
    except TimeoutError:
        return False  # still connected after 10 s
    return True  # the message stream ended: the connection is gone


async def test_operator_disables_and_enables_a_terminal_at_the_broker(
    tmp_path: Path, stack: tuple[Path, Broker, CloudProcess]
) -> None:
    _, broker, cloud = stack
    tid = new_id("DIS")
    link = await enrolled_link(cloud.url, tmp_path / tid, tid)
    own = f"cuntong/v1/t/{tid}/cmd/#"
    async with cloud.client() as http:
        state = (await http.get(f"/api/v1/fleet/terminals/{tid}/broker")).json()
        assert state["enabled"] is True, state
        assert (await http.get("/api/v1/fleet/terminals/NOPE-1/broker")).status_code == 404
        assert (await http.get("/api/v1/fleet/terminals/a.b/broker")).status_code == 422
        async with httpx.AsyncClient(base_url=cloud.url) as anonymous:
            r = await anonymous.post(f"/api/v1/fleet/terminals/{tid}/broker/disable")
            assert r.status_code == 401

        client = mqtt(broker, link.tls)
        await client.__aenter__()
        try:
            assert codes(await client.subscribe(own, qos=1)) == [1]
            r = await http.post(f"/api/v1/fleet/terminals/{tid}/broker/disable")
            assert r.status_code == 200, r.text
            assert r.json()["enabled"] is False
            assert await _disconnected(client)  # dropped at once, no broker reload
        finally:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
        # Its certificate still connects, but it may do nothing.
        async with mqtt(broker, link.tls) as again:
            assert codes(await again.subscribe(own, qos=1)) == [NOT_AUTHORIZED]

        r = await http.post(f"/api/v1/fleet/terminals/{tid}/broker/enable")
        assert r.status_code == 200 and r.json()["enabled"] is True, r.text
        async with mqtt(broker, link.tls) as back:
            assert codes(await back.subscribe(own, qos=1)) == [1]

    with sqlite3.connect(tmp_path / "cloud.sqlite3") as db:
        rows = db.execute(
            "select action, target from audit_entry where action like 'fleet_broker_%' order by id"
        ).fetchall()
    assert rows == [("fleet_broker_disable", tid), ("fleet_broker_enable", tid)]


async def test_misbehaving_terminal_raises_an_alert_naming_it_and_the_evidence(
    tmp_path: Path, stack: tuple[Path, Broker, CloudProcess]
) -> None:
    _, broker, cloud = stack
    bad_id, good_id = new_id("BAD"), new_id("GOOD")
    bad = await enrolled_link(cloud.url, tmp_path / bad_id, bad_id)
    good = await enrolled_link(cloud.url, tmp_path / good_id, good_id)
    async with mqtt(broker, bad.tls) as b, mqtt(broker, good.tls) as g:
        await g.publish(topic(good_id, Channel.TELEMETRY), b"{not json", qos=1)  # one: fine
        for _ in range(2):
            await b.publish(topic(bad_id, Channel.TELEMETRY), b"{not json", qos=1)
        await b.publish(topic(bad_id, Channel.TELEMETRY), sample(good_id, 1), qos=1)
    async with cloud.client() as http:
        (found,) = await misbehaving_alerts(http, within_s=20)
        assert found["terminal_id"] == bad_id
        assert found["message"].startswith("3 rejected messages (malformed 3)"), found
        await asyncio.sleep(1)  # the good terminal stays below the threshold
        kinds = {
            (a["kind"], a["terminal_id"]) for a in (await http.get("/api/v1/fleet/alerts")).json()
        }
        assert ("misbehaving", good_id) not in kinds


async def test_bad_macs_and_quarantined_messages_count_toward_the_alert(
    tmp_path: Path, stack: tuple[Path, Broker, CloudProcess]
) -> None:
    """The other rejected kinds reach the alert too: two events whose MAC does not verify
    and a sample ten years ahead (quarantined), sent on the terminal's own topics with its
    own certificate, name it with the evidence split by kind."""
    _, broker, cloud = stack
    tid = new_id("MACQ")
    link = await enrolled_link(cloud.url, tmp_path / tid, tid)
    now = int(time.time() * 1000)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("mac", "not-the-mac")]
    async with mqtt(broker, link.tls) as t:
        for seq in (1, 2):
            forged = envelope.Event(tid, seq, now, "card_inserted", {}).to_bytes()
            await t.publish(topic(tid, Channel.EVENT), forged, qos=1, properties=props)
        ahead = now + 10 * 365 * 86_400_000
        future = envelope.Telemetry(tid, 3, ahead, {"cpu_pct": 1.0}, {}, {}).to_bytes()
        await t.publish(topic(tid, Channel.TELEMETRY), future, qos=1)
    async with cloud.client() as http:
        (found,) = await misbehaving_alerts(http, within_s=30)
    assert found["terminal_id"] == tid
    assert found["message"].startswith("3 rejected messages (bad_mac 2, quarantined 1)"), found


@pytest.fixture
def watched_stack(
    tmp_path: Path, victoria: VictoriaMetrics
) -> Iterator[tuple[Path, Broker, CloudProcess]]:
    """The secured stack with the broker logging refusals, followed by the fleet, and
    automatic disable on."""
    extra = {
        "CUNTONG_FLEET_MISBEHAVIOUR_REJECTS": "3",
        "CUNTONG_FLEET_MISBEHAVIOUR_FLAPS": "0",
        "CUNTONG_FLEET_ALERT_INTERVAL_S": "0.3",
        "CUNTONG_FLEET_MISBEHAVIOUR_AUTO_DISABLE": "true",
    }
    with secured_cloud(
        tmp_path, victoria.url, broker_services("api"), refusal_log=True, **extra
    ) as s:
        yield s


async def test_refused_subscriptions_raise_the_alert_and_auto_disable_cuts_the_terminal_off(
    tmp_path: Path, watched_stack: tuple[Path, Broker, CloudProcess]
) -> None:
    _, broker, cloud = watched_stack
    thief_id, honest_id = new_id("SUB"), new_id("FINE")
    thief = await enrolled_link(cloud.url, tmp_path / thief_id, thief_id)
    honest = await enrolled_link(cloud.url, tmp_path / honest_id, honest_id)
    group = CloudSettings().ingest_group
    async with mqtt(broker, honest.tls) as h:
        # One refused subscribe from an honest terminal stays below the threshold.
        assert codes(await h.subscribe("#", qos=1)) == [NOT_AUTHORIZED]
        client = mqtt(broker, thief.tls)
        await client.__aenter__()
        try:
            assert codes(await client.subscribe(f"cuntong/v1/t/{thief_id}/cmd/#", qos=1)) == [1]
            for refused in (subscription(Channel.TELEMETRY, group), "#"):
                assert codes(await client.subscribe(refused, qos=1)) == [NOT_AUTHORIZED]
            # A second SUBSCRIBE, mixing a granted and a refused filter.
            mixed = await client.subscribe(
                [(f"cuntong/v1/t/{thief_id}/desk", 1), (f"cuntong/v1/t/{honest_id}/cmd/#", 1)]
            )
            assert codes(mixed) == [1, NOT_AUTHORIZED]
            async with cloud.client() as http:
                (found,) = await misbehaving_alerts(http, within_s=30)
                assert found["terminal_id"] == thief_id
                assert found["message"].startswith("3 refused requests (subscribe_refused 3)"), (
                    found
                )
                # Automatic disable (the setting is on): dropped at once, and its valid
                # certificate can do nothing when it comes back.
                assert await _disconnected(client)
                state = (await http.get(f"/api/v1/fleet/terminals/{thief_id}/broker")).json()
                assert state["enabled"] is False, state
                honest_state = (
                    await http.get(f"/api/v1/fleet/terminals/{honest_id}/broker")
                ).json()
                assert honest_state["enabled"] is True, honest_state
        finally:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
        async with mqtt(broker, thief.tls) as again:
            own = f"cuntong/v1/t/{thief_id}/cmd/#"
            assert codes(await again.subscribe(own, qos=1)) == [NOT_AUTHORIZED]

    with sqlite3.connect(tmp_path / "cloud.sqlite3") as db:
        rows = db.execute(
            "select actor, action, target, detail from audit_entry"
            " where action like 'fleet_broker_%' order by id"
        ).fetchall()
    assert [r[:3] for r in rows] == [("system:misbehaviour", "fleet_broker_disable", thief_id)]
    detail = json.loads(rows[0][3])
    assert detail["auto"] is True and "subscribe_refused 3" in detail["evidence"]


@pytest.fixture
def flap_stack(
    tmp_path: Path, victoria: VictoriaMetrics
) -> Iterator[tuple[Path, Broker, CloudProcess]]:
    """The secured stack counting online/offline changes only (rejects off)."""
    extra = {
        "CUNTONG_FLEET_MISBEHAVIOUR_REJECTS": "0",
        "CUNTONG_FLEET_MISBEHAVIOUR_FLAPS": "4",
        "CUNTONG_FLEET_ALERT_INTERVAL_S": "0.3",
    }
    with secured_cloud(tmp_path, victoria.url, broker_services("api"), **extra) as s:
        yield s


async def test_a_terminal_whose_connection_flaps_raises_the_alert_naming_it(
    tmp_path: Path, flap_stack: tuple[Path, Broker, CloudProcess]
) -> None:
    """A real enrolled agent whose link is cut again and again (another client presenting
    its certificate takes its client id over, as a cloned terminal would): ingest sees its
    presence go offline (the will) and online (the reconnect), and past the threshold the
    fleet raises a misbehaving alert naming it and the count. A steady agent stays quiet."""
    _, broker, cloud = flap_stack
    flappy_id, steady_id = new_id("FLP"), new_id("STD")
    agents: list[Agent] = []
    for tid in (flappy_id, steady_id):
        settings = agent_settings(
            tmp_path, 1, tid, simulate=False, telemetry_interval_s=3600, backoff_base_s=0.1
        )
        link = await enrolled_link(cloud.url, settings.state_dir, tid)
        agents.append(Agent(settings, link=link))
    flappy, steady = agents
    runs = [asyncio.create_task(a.run()) for a in agents]
    try:
        for a in agents:
            await asyncio.wait_for(a.connected.wait(), 20)
        assert flappy.link is not None
        for _ in range(3):
            flappy.connected.clear()
            async with mqtt(broker, flappy.link.tls):
                pass  # the broker drops the agent's link for this one, then this one leaves
            await asyncio.wait_for(flappy.connected.wait(), 20)
        async with cloud.client() as http:
            (found,) = await misbehaving_alerts(http, within_s=30)
            assert found["terminal_id"] == flappy_id
            assert "online/offline changes" in found["message"], found
            kinds = {
                (a["kind"], a["terminal_id"])
                for a in (await http.get("/api/v1/fleet/alerts")).json()
            }
            assert ("misbehaving", steady_id) not in kinds
            assert steady.connected.is_set()
    finally:
        for a in agents:
            a.stop()
        await asyncio.gather(*runs, return_exceptions=True)
