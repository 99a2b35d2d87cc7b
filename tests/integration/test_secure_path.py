"""The secured default, end to end: enrol by claim, mTLS link, signed commands, event MACs."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud.security import broker_services
from cloud.tsdb import TelemetryReader
from common import envelope, procs
from common.wire.commands import Command, sign_command
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from edge.agent import Agent
from provisioning import keys as keys_lib
from provisioning import wiring
from tests.crashrig import produce, stored_stamps
from tests.helpers import (
    FACTORY_TOKEN,
    CloudProcess,
    enrolled_link,
    eventually,
    secured_cloud,
    start_cloud,
)
from tests.integration.agents import agent_settings, new_id, spawn_agent
from tests.provisioning.conftest import probe

TOKEN = FACTORY_TOKEN


@pytest.fixture
def secured(
    tmp_path: Path, victoria: VictoriaMetrics
) -> Iterator[tuple[Path, Broker, CloudProcess]]:
    """A stack of the test's own: for the tests that use up enrolment's per-address limit
    or stop the API and the broker."""
    services = broker_services("api") | {"tester": "cloud"}
    with secured_cloud(tmp_path, victoria.url, services) as stack:
        yield stack


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, victoria: VictoriaMetrics
) -> Iterator[tuple[Path, Broker, CloudProcess]]:
    """One stack for the tests that only enrol their own terminals and talk to them (each
    start is a few seconds, more on a loaded machine); they keep apart by terminal id."""
    services = broker_services("api") | {"tester": "cloud"}
    with secured_cloud(tmp_path_factory.mktemp("secure"), victoria.url, services) as stack:
        yield stack


async def _enrolled_agent(tmp_path: Path, cloud: CloudProcess, tid: str) -> Agent:
    settings = agent_settings(tmp_path, 1, tid, simulate=False)
    link = await enrolled_link(cloud.url, settings.state_dir, tid)
    return Agent(settings, link=link)


async def test_enrolled_agent_links_by_mtls_and_checks_every_command(
    tmp_path: Path, shared: tuple[Path, Broker, CloudProcess]
) -> None:
    pki, broker, cloud = shared
    tid = new_id("SEC")
    agent = await _enrolled_agent(tmp_path, cloud, tid)
    assert agent.link is not None and agent.link.broker_port == broker.cfg.port
    run = asyncio.create_task(agent.run())
    try:
        await asyncio.wait_for(agent.connected.wait(), 10)
        seq = agent.emit_event("pin_entered", {"ok": True})
        async with cloud.client() as http:

            async def stored() -> list[dict[str, Any]] | None:
                r = await http.get(f"/api/v1/terminals/{tid}/events")
                return [e for e in r.json() if e["seq"] == seq] if r.status_code == 200 else None

            await eventually(stored)
            detail = (await http.get(f"/api/v1/terminals/{tid}")).json()
            assert detail["status"] == "online"

        keys = keys_lib.load_or_create(pki)
        now = dt.datetime.now(dt.UTC)

        def signed(name: str, **changes: Any) -> bytes:
            fields = {
                "id": uuid.uuid4().hex,
                "terminal_id": tid,
                "name": name,
                "args": {"n": 1},
                "issued_at": now,
                "expires_at": now + dt.timedelta(minutes=2),
                **changes,
            }
            return sign_command(keys.command_key, Command(**fields))

        good = signed("ping")
        tampered = bytearray(signed("ping"))
        tampered[tampered.index(b'"n":1') + 4] = ord("2")
        requests = [
            ("ping", good, b"c-good"),
            ("ping", good, b"c-replay"),
            ("ping", bytes(tampered), b"c-tampered"),
            ("ping", json.dumps({"n": 1}).encode(), b"c-unsigned"),
            ("ping", signed("ping", terminal_id="SOMEONE-ELSE"), b"c-foreign"),
            (
                "ping",
                signed(
                    "ping",
                    expires_at=now - dt.timedelta(seconds=1),
                    issued_at=now - dt.timedelta(minutes=1),
                ),
                b"c-expired",
            ),
        ]
        tls = wiring.service_tls_context(pki, "tester", now)
        reply_topic = f"cuntong/v1/t/{tid}/cmd-reply"
        replies: dict[bytes, dict[str, Any]] = {}
        async with aiomqtt.Client(
            "127.0.0.1",
            broker.cfg.port,
            identifier="svc.tester",
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=tls,
        ) as cloud_mqtt:
            await cloud_mqtt.subscribe(reply_topic, qos=1)
            for name, payload, corr in requests:
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = reply_topic
                props.CorrelationData = corr
                await cloud_mqtt.publish(
                    f"cuntong/v1/t/{tid}/cmd/{name}", payload, qos=1, properties=props
                )
                await asyncio.sleep(0.05)  # keep the replay after the original
            async with asyncio.timeout(10):
                async for message in cloud_mqtt.messages:
                    key = message.properties.CorrelationData  # type: ignore[union-attr]
                    replies[key] = json.loads(message.payload)  # type: ignore[arg-type]
                    if len(replies) == len(requests):
                        break
        assert replies[b"c-good"]["ok"] is True
        assert replies[b"c-good"]["result"]["echo"] == {"n": 1}
        reasons = {k: v["result"].get("reason") for k, v in replies.items() if not v["ok"]}
        assert reasons == {
            b"c-replay": "replayed",
            b"c-tampered": "bad_signature",
            b"c-unsigned": "malformed",
            b"c-foreign": "wrong_terminal",
            b"c-expired": "expired",
        }
    finally:
        agent.stop()
        await run


async def test_event_without_a_valid_mac_is_refused(
    tmp_path: Path, shared: tuple[Path, Broker, CloudProcess]
) -> None:
    _, broker, cloud = shared
    tid = new_id("MAC")
    agent = await _enrolled_agent(tmp_path, cloud, tid)
    assert agent.link is not None
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    forged = envelope.Event(tid, 10**15, now_ms, "card_loss_reported", {"amount": 1}).to_bytes()
    honest_event = envelope.Event(tid, 10**15 + 1, now_ms, "card_loss_reported", {"amount": 1})
    honest = honest_event.to_bytes()
    props_bad = Properties(PacketTypes.PUBLISH)
    props_bad.UserProperty = [("mac", agent.link.event_tag(honest))]  # tag of other bytes
    props_good = Properties(PacketTypes.PUBLISH)
    props_good.UserProperty = [("mac", agent.link.event_tag(honest))]
    async with aiomqtt.Client(
        "127.0.0.1",
        broker.cfg.port,
        identifier=tid,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=agent.link.tls,
    ) as mqtt:
        await mqtt.publish(f"cuntong/v1/t/{tid}/event", forged, qos=1, properties=props_bad)
        await mqtt.publish(f"cuntong/v1/t/{tid}/event", forged, qos=1)
        await mqtt.publish(f"cuntong/v1/t/{tid}/event", honest, qos=1, properties=props_good)
    async with cloud.client() as http:

        async def stored() -> list[int] | None:
            r = await http.get(f"/api/v1/terminals/{tid}/events")
            return [e["seq"] for e in r.json()] if r.status_code == 200 and r.json() else None

        assert await eventually(stored) == [10**15 + 1]
        stats = (await http.get("/healthz")).json()["ingest_stats"]
    assert stats["rejected"]["bad_mac"] >= 2


async def test_enrolment_is_rate_limited_per_address(
    secured: tuple[Path, Broker, CloudProcess],
) -> None:
    _, _, cloud = secured
    guess = {
        "claim_token": "guessed.token",
        "terminal_id": "GUESS-1",
        "hardware_model": "ZN-E100",
        "region": {"province": "陕西省", "city": "宝鸡市", "county": "陈仓区", "village": "东风村"},
        "csr_pem": "",
    }
    async with cloud.client() as http:
        codes = [(await http.post("/api/v1/enrol", json=guess)).status_code for _ in range(30)]
    assert 429 in codes
    assert set(codes[:5]) <= {403, 422}  # refused on its merits before the limit bites
    assert codes[-1] == 429


async def test_a_replayed_command_stays_refused_after_the_agent_restarts(
    tmp_path: Path, shared: tuple[Path, Broker, CloudProcess]
) -> None:
    """A signed command captured off the wire and republished inside its validity window:
    refused ``replayed`` by the running agent process and, after that process is stopped
    and a new one started on the same state folder, refused again (``edge.replay``)."""
    pki, broker, cloud = shared
    tid = new_id("RPL")
    await enrolled_link(cloud.url, tmp_path / tid, tid)  # first boot: identity on disk
    now = dt.datetime.now(dt.UTC)
    keys = keys_lib.load_or_create(pki)
    captured = sign_command(
        keys.command_key,
        Command(uuid.uuid4().hex, tid, "ping", {"n": 1}, now, now + dt.timedelta(minutes=5)),
    )
    tls = wiring.service_tls_context(pki, "tester", now)
    reply_topic = f"cuntong/v1/t/{tid}/cmd-reply"

    async def send_to_fresh_agent(corr: bytes) -> dict[str, Any]:
        proc = spawn_agent(tmp_path, broker.cfg.port, tid)
        try:
            async with aiomqtt.Client(
                "127.0.0.1",
                broker.cfg.port,
                identifier="svc.tester",
                protocol=aiomqtt.ProtocolVersion.V5,
                tls_context=tls,
            ) as mqtt:
                await mqtt.subscribe(reply_topic, qos=1)
                await mqtt.subscribe(f"cuntong/v1/t/{tid}/status", qos=1)
                async with asyncio.timeout(20):  # the new process is online
                    async for message in mqtt.messages:
                        status = json.loads(message.payload)  # type: ignore[arg-type]
                        if status.get("online") is True:
                            break
                props = Properties(PacketTypes.PUBLISH)
                props.ResponseTopic = reply_topic
                props.CorrelationData = corr
                await mqtt.publish(
                    f"cuntong/v1/t/{tid}/cmd/ping", captured, qos=1, properties=props
                )
                async with asyncio.timeout(20):
                    async for message in mqtt.messages:
                        if message.topic.matches(reply_topic):
                            return json.loads(message.payload)  # type: ignore[no-any-return,arg-type]
            raise AssertionError("no reply")
        finally:
            procs.stop(proc)

    first = await send_to_fresh_agent(b"first")
    assert first["ok"] is True and first["result"]["echo"] == {"n": 1}
    again = await send_to_fresh_agent(b"after-restart")
    assert again["ok"] is False and again["result"]["reason"] == "replayed"


def _reloads(broker: Broker) -> int:
    return (broker.state_dir / "mosquitto.log").read_text().count("Reloading config")


#: API restarts under load: issue 14's test asks for 20, and the suite runs 20 (each restart
#: is a full app start, ~3.5 s quiet, 10-15 s loaded; every restart is a fresh chance for a
#: reload, a broker crash or a lost sample, and the assertions are per restart and in total).
#: ``CUNTONG_TEST_API_RESTARTS=5`` runs fewer while working on this file.
RESTARTS = int(os.environ.get("CUNTONG_TEST_API_RESTARTS", "20"))
#: Seconds between one in-process agent's messages while the API restarts.
LOAD_STEP_S = 0.05


def _restart_api(
    tmp_path: Path, pki: Path, broker: Broker, victoria: VictoriaMetrics
) -> CloudProcess:
    return start_cloud(
        tmp_path,
        f"sqlite://{tmp_path / 'cloud.sqlite3'}",
        broker.cfg.port,
        victoria.url,
        create_operator=False,
        # At load 15 a start has taken 20 s, and the broker's CONNACK to ingest more than
        # its 10 s connect timeout (the link then retries).
        ready_s=120,
        CUNTONG_CLOUD_STATE_DIR=str(pki),
        CUNTONG_CLOUD_ADMIN_TOKEN=FACTORY_TOKEN,
    )


# Each start imports the whole app (about 3 s on a quiet machine, 10-15 s at load 10).
@pytest.mark.timeout(900)
async def test_api_restarts_under_load_lose_no_sample_and_never_reload_the_broker(
    tmp_path: Path, secured: tuple[Path, Broker, CloudProcess], victoria: VictoriaMetrics
) -> None:
    """Two enrolled agents send telemetry and events (every fourth message) every 50 ms;
    one terminal is revoked (one reload, an operator action; its agent process keeps
    knocking); then the API process, with its ingest, is stopped and started ``RESTARTS``
    times (5; 20 on request). The broker neither reloads again nor dies, the revoked
    terminal stays refused, every sample and event the agents produced is stored once, and
    the broker exits cleanly on SIGTERM at the end (its log is complete only then)."""
    pki, broker, cloud = secured
    assert broker.proc is not None
    victim = new_id("REV")
    victim_link = await enrolled_link(cloud.url, tmp_path / victim, victim)
    knocking = spawn_agent(tmp_path, broker.cfg.port, victim)
    agents = []
    for i in range(2):
        tid = new_id(f"LD{i}")
        settings = agent_settings(
            tmp_path, 1, tid, simulate=False, telemetry_interval_s=3600, ack_timeout_s=2.0
        )
        agents.append(Agent(settings, link=await enrolled_link(cloud.url, settings.state_dir, tid)))
    runs = [asyncio.create_task(a.run()) for a in agents]
    stop = asyncio.Event()
    samples: list[dict[int, int]] = [{} for _ in agents]
    events: list[list[int]] = [[] for _ in agents]
    api = cloud
    reader = TelemetryReader(victoria.url)
    try:
        for a in agents:
            await asyncio.wait_for(a.connected.wait(), 15)
        # The sample each agent takes as it starts is part of what it produced.
        await eventually(lambda: _true(all(a.spool.depth() == 0 for a in agents)), timeout=30)
        # Exactly one each (the telemetry interval is an hour); wait until the store shows it.
        baseline = [
            set(await eventually(lambda tid=a.tid: _stamps(reader, tid), timeout=30))
            for a in agents
        ]
        assert [len(b) for b in baseline] == [1] * len(agents)
        loads = [
            asyncio.create_task(produce(a, stop, samples[i], events[i], LOAD_STEP_S))
            for i, a in enumerate(agents)
        ]
        async with httpx.AsyncClient(base_url=cloud.url, timeout=10) as http:
            revoked = await http.post(
                f"/api/v1/provisioning/terminals/{victim}/revoke",
                headers={"Authorization": f"Bearer {FACTORY_TOKEN}"},
            )
            assert revoked.status_code == 200, revoked.text
        assert "revoked" in await probe(broker.cfg.port, victim_link.tls)

        for n in range(RESTARTS):
            await asyncio.to_thread(procs.stop, api.proc)
            assert broker.proc.poll() is None, f"broker died after stop {n}"
            # Ready when healthy (ingest subscribed) and the start's CRL check has run.
            api = await asyncio.to_thread(_restart_api, tmp_path, pki, broker, victoria)
            await eventually(_logged(api.log, "CRL checked"), timeout=30)
        stop.set()
        await asyncio.gather(*loads)
        assert broker.proc.poll() is None, "broker died"

        # The last API drains what is left; every spool empties once ingest confirms it.
        await eventually(
            lambda: _true(all(a.spool.depth() == 0 for a in agents)), timeout=90, every=0.5
        )
        async with api.client() as http:
            for a, produced in zip(agents, events, strict=True):
                r = await http.get(f"/api/v1/terminals/{a.tid}/events", params={"limit": 1000})
                assert r.status_code == 200, r.text
                assert sorted(e["seq"] for e in r.json()) == sorted(produced), a.tid
        for a, produced, before in zip(agents, samples, baseline, strict=True):
            want = before | set(produced.values())
            got = await eventually(stored_stamps(reader, a.tid, want), timeout=30)
            assert len(got) == len(set(got)), "a sample is stored twice"
            assert set(got) == want, f"{a.tid}: stored samples the agent never produced"
        total = sum(len(s) for s in samples)
        assert total > 100 and sum(len(e) for e in events) > 30
        print(
            f"{RESTARTS} API restarts: {total} samples and {sum(len(e) for e in events)} "
            f"events produced and stored, 0 lost, 0 doubled; "
            f"resend passes {sum(a.resends for a in agents)}"
        )
        await asyncio.to_thread(procs.stop, api.proc)
        assert broker.proc.poll() is None, "broker died"
        assert "revoked" in await probe(broker.cfg.port, victim_link.tls)
        assert knocking.poll() is None
        # SIGTERM with persistence and terminals still connected (sessions with expiry and
        # last wills): a clean exit, not a crash.
        assert procs.stop(broker.proc) == 0
    finally:
        stop.set()
        for a in agents:
            a.stop()
        await asyncio.gather(*runs, return_exceptions=True)
        await reader.close()
        procs.stop(knocking)
        procs.stop(api.proc)
    assert _reloads(broker) == 1  # the revocation's, none from the API starts


async def _true(value: bool) -> bool:
    return value


def _logged(log: Path, line: str) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return line in await asyncio.to_thread(log.read_text)

    return probe


async def _stamps(reader: TelemetryReader, tid: str) -> list[int]:
    series = await reader.export(f'terminal_cpu_pct{{terminal_id="{tid}"}}')
    return [t for s in series for t in s["timestamps"]]
