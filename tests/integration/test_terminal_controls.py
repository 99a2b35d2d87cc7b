"""The fleet's terminal controls acting on real agents over a real broker (issue 18).

Reboot through the supervisor, live configuration measured on the wire, wipe, redacted
logs, the flap guard, the spool-full alarm, one command at a time per component, and a
missing camera reported as a fault.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from common import backoff, envelope, procs
from common.errors import SpoolFull
from common.topics import Channel, topic
from common.wire import ack, live_config
from cuntong.servers.mosquitto import Broker
from cuntong.supervisor import Child, Restarts, Supervisor
from edge import alarms, commands
from edge.agent import Agent
from edge.peripherals import Peripherals
from edge.teller.media import CallMedia, CameraMissing
from fleet import alerts as al
from tests.helpers import eventually
from tests.integration.agents import agent_settings, new_id

ID_NUMBER = "11010119900307777X"
CARD = "6222021234567890123"
NAME = "张秀英"


@pytest.fixture
async def cloud_side(broker: Broker) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(
        "127.0.0.1", broker.cfg.port, protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        yield client


async def command(
    client: aiomqtt.Client, tid: str, name: str, args: dict[str, Any], wait_s: float = 15
) -> dict[str, Any]:
    """Send one command as the fleet sender does (response topic, correlation data) and
    wait for its reply."""
    reply_topic = f"cuntong/v1/t/{tid}/cmd-reply/{uuid.uuid4().hex[:8]}"
    await client.subscribe(reply_topic, qos=1)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = reply_topic
    props.CorrelationData = uuid.uuid4().bytes
    await client.publish(
        f"cuntong/v1/t/{tid}/cmd/{name}", json.dumps(args).encode(), qos=1, properties=props
    )
    async with asyncio.timeout(wait_s):
        async for message in client.messages:
            if str(message.topic) == reply_topic:
                await client.unsubscribe(reply_topic)
                return json.loads(message.payload)  # type: ignore[arg-type,no-any-return]
    raise AssertionError("no reply")


async def running(agent: Agent) -> asyncio.Task[None]:
    task = asyncio.create_task(agent.run())
    await asyncio.wait_for(agent.connected.wait(), 10)
    return task


# --- reboot through the supervisor -----------------------------------------------------


def _agent_child(tmp_path: Path, port: int, tid: str, notify: str) -> Child:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    env |= {
        "CUNTONG_AGENT_TERMINAL_ID": tid,
        "CUNTONG_AGENT_BROKER_PORT": str(port),
        "CUNTONG_AGENT_STATE_DIR": str(tmp_path / tid),
        "CUNTONG_AGENT_TELEMETRY_INTERVAL_S": "1",
        "CUNTONG_AGENT_KEEPALIVE_S": "5",
        "CUNTONG_AGENT_SIMULATE": "true",
        "NOTIFY_SOCKET": notify,
        "WATCHDOG_USEC": "1000000",
    }
    argv = [sys.executable, "-m", "cuntong", "agent"]
    return Child(tid, argv, tmp_path / f"{tid}.log", env, Restarts(base_s=30, cap_s=30))


async def test_reboot_restarts_the_agent_through_the_supervisor(
    tmp_path: Path, broker: Broker, cloud_side: aiomqtt.Client
) -> None:
    tid = new_id("RB")
    # The supervisor's end of the systemd notify protocol: the agent says READY=1 and pets
    # the watchdog (WATCHDOG_USEC=1 s: every half second).
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"cuntong-test-{uuid.uuid4().hex}"
    listener.bind("\0" + name)
    listener.setblocking(False)
    heard: list[str] = []

    def drain() -> None:
        while True:
            try:
                heard.append(listener.recv(256).decode())
            except BlockingIOError:
                return

    sup = Supervisor()
    child = sup.add(_agent_child(tmp_path, broker.cfg.port, tid, "@" + name), time.monotonic())
    try:
        first = child.proc
        assert first is not None

        async def ready() -> bool:
            drain()
            return "READY=1" in heard and heard.count("WATCHDOG=1") >= 2

        await eventually(ready, timeout=30)
        reply = await command(cloud_side, tid, "reboot", {})
        assert reply["ok"] and reply["result"]["scheduled"] == "reboot"

        async def restarted() -> bool:
            sup.tick(time.monotonic(), 0.5)
            return child.restarted == 1 and child.proc is not first

        await eventually(restarted, timeout=20)
        # The agent asked for the restart (exit 75): started again at once, although the
        # child's backoff would otherwise have waited 15 s (base 30 s, draw 0.5).
        assert first.returncode == procs.RESTART_EXIT
        assert child.restarts.failures == 0
        reply = await command(cloud_side, tid, "ping", {}, wait_s=30)
        assert reply["ok"], reply  # the new process answers
        async with aiomqtt.Client(
            "127.0.0.1", broker.cfg.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as fresh:
            await fresh.subscribe(f"cuntong/v1/t/{tid}/status", qos=1)
            async with asyncio.timeout(10):
                status = envelope.parse_status(
                    (await anext(aiter(fresh.messages))).payload  # type: ignore[arg-type]
                )
        assert status.online  # the retained presence: back online
    finally:
        sup.stop(10)
        listener.close()


def test_a_crashing_child_still_backs_off() -> None:
    restarts = Restarts(base_s=2, cap_s=30, stable_s=60)
    assert restarts.after_exit(0, 1, 0.5, returncode=1) == pytest.approx(2.0)
    assert restarts.after_exit(1, 2, 0.5, returncode=procs.RESTART_EXIT) == 2
    assert restarts.failures == 1  # the asked-for restart did not count as a crash


# --- live configuration ----------------------------------------------------------------


async def _gaps(client: aiomqtt.Client, tid: str, count: int) -> list[float]:
    """Seconds between consecutive telemetry samples' timestamps, as they arrive."""
    stamps: list[int] = []
    async with asyncio.timeout(60):
        async for message in client.messages:
            if str(message.topic) == f"cuntong/v1/t/{tid}/telemetry":
                stamps.append(envelope.parse_telemetry(message.payload).ts_ms)  # type: ignore[arg-type]
                if len(stamps) > count:
                    break
    return [(b - a) / 1000 for a, b in itertools.pairwise(stamps)]


async def test_shadow_changes_the_telemetry_interval_on_the_wire(
    tmp_path: Path, broker: Broker, cloud_side: aiomqtt.Client
) -> None:
    tid = new_id("LC")
    agent = Agent(agent_settings(tmp_path, broker.cfg.port, tid, telemetry_interval_s=1.5))
    task = await running(agent)
    try:
        await cloud_side.subscribe(f"cuntong/v1/t/{tid}/telemetry", qos=1)
        before = sorted(await _gaps(cloud_side, tid, 3))
        refused = await command(
            cloud_side, tid, "shadow_delta", {"version": 1, "delta": {"telemetry_interval_s": 0}}
        )
        assert refused["ok"] is False
        assert refused["result"]["error"].startswith("telemetry_interval_s:")
        unknown = await command(
            cloud_side, tid, "shadow_delta", {"version": 1, "delta": {"volume": 3}}
        )
        assert unknown["ok"] is False and unknown["result"]["error"].startswith("volume:")
        delta = {"telemetry_interval_s": 0.3, "log_level": "DEBUG", "link_kbps": 250}
        applied = await command(cloud_side, tid, "shadow_delta", {"version": 2, "delta": delta})
        assert applied["ok"], applied
        assert applied["result"] == {"version": 2, "reported": delta}
        await _gaps(cloud_side, tid, 2)  # samples already on their way
        after = sorted(await _gaps(cloud_side, tid, 6))
        # Medians: 1.5 s before, 0.3 s after (loose bounds: the machine is shared).
        assert before[len(before) // 2] > 1.0, before
        assert after[len(after) // 2] < 0.7, after
        assert agent.media.link_kbps == 250
        # Kept across a restart, and applied at start.
        assert agent.mdm.config == {"version": 2, "state": delta}
    finally:
        agent.stop()
        await task


def test_live_config_schema_names_the_field() -> None:
    with pytest.raises(live_config.InvalidConfig) as err:
        live_config.check({"screen": {"locked": "perhaps"}})
    assert err.value.field == "screen.locked"
    ok = live_config.check({"screen": {"locked": True, "message": "维护中"}})
    assert live_config.reported(ok) == {"screen": {"locked": True, "message": "维护中"}}


# --- wipe --------------------------------------------------------------------------------


def _holding(root: Path, needles: list[bytes]) -> list[str]:
    """Files under ``root`` whose raw bytes contain any of ``needles``."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            if any(n in raw for n in needles):
                found.append(str(path.relative_to(root)))
    return found


async def test_wipe_leaves_nothing_about_customers(
    tmp_path: Path, broker: Broker, cloud_side: aiomqtt.Client
) -> None:
    tid = new_id("WP")
    agent = Agent(agent_settings(tmp_path, broker.cfg.port, tid))
    state = tmp_path / tid
    task = await running(agent)
    try:
        await cloud_side.subscribe(topic(tid, Channel.EVENT), qos=1)
        customer = {"name": NAME, "id_number": ID_NUMBER, "card_number": CARD}
        for i in range(5):
            agent.emit_event("account_opened", {**customer, "n": i})
        # Play ingest: take the events off the broker, then confirm them as stored.
        seqs: list[int] = []
        async with asyncio.timeout(15):
            async for message in cloud_side.messages:
                assert isinstance(message.payload, bytes)
                seqs.append(envelope.parse_event(message.payload, tid, 65536).seq)
                if len(seqs) == 5:
                    break
        await cloud_side.publish(topic(tid, Channel.ACK), bytes(ack.Stored.of(seqs)), qos=1)

        async def delivered() -> bool:
            return agent.spool.pending_events() == 0

        await eventually(delivered)
        (state / "data").mkdir(exist_ok=True)
        (state / "data" / "id-front.jpg").write_bytes(b"\xff\xd8" + NAME.encode() + b"\xff\xd9")
        (state / "logs").mkdir(exist_ok=True)
        (state / "logs" / "agent.log.1").write_text(f"old agent line {ID_NUMBER}\n")
        needles = [ID_NUMBER.encode(), CARD.encode(), NAME.encode()]
        # Delivered and acknowledged, the payloads are still on disk (WAL, photos, logs).
        assert _holding(state, needles), "the test would prove nothing"
        reply = await command(cloud_side, tid, "wipe", {})
        assert reply["ok"], reply
        assert _holding(state, needles) == []
        assert agent.spool.depth() == 0 or agent.spool.pending_events() == 0
        # The terminal keeps working after the wipe.
        assert (await command(cloud_side, tid, "ping", {}))["ok"]
    finally:
        agent.stop()
        await task


# --- logs ----------------------------------------------------------------------------------


async def test_collect_logs_arrive_redacted_and_bounded(
    tmp_path: Path, broker: Broker, cloud_side: aiomqtt.Client
) -> None:
    tid = new_id("LG")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
    env |= {
        "CUNTONG_AGENT_TERMINAL_ID": tid,
        "CUNTONG_AGENT_BROKER_PORT": str(broker.cfg.port),
        "CUNTONG_AGENT_STATE_DIR": str(tmp_path / tid),
        "CUNTONG_AGENT_SIMULATE": "true",
    }
    logs = tmp_path / tid / "logs"
    logs.mkdir(parents=True)
    # A rotated file from an agent that wrote before redaction existed.
    (logs / "agent.log.1").write_text(f"holder={NAME} card {CARD} id {ID_NUMBER}\n")
    proc = procs.start([sys.executable, "-m", "cuntong", "agent"], tmp_path / "agent.out", env)
    try:
        await cloud_side.subscribe(f"cuntong/v1/t/{tid}/status", qos=1)

        async def online() -> bool:
            return (await command(cloud_side, tid, "ping", {}, wait_s=2))["ok"]  # type: ignore[no-any-return]

        await eventually(_quiet(online), timeout=30)
        # The agent logs the screen message it applies: a customer's details in it.
        message = f"姓名：{NAME} 身份证 {ID_NUMBER} 卡号 6222 0212 3456 7890 123"
        reply = await command(
            cloud_side,
            tid,
            "set_config",
            {"config": {"screen": {"locked": True, "message": message}}},
        )
        assert reply["ok"], reply
        got = await command(cloud_side, tid, "collect_logs", {})
        assert got["ok"], got
        text = got["result"]["log"]
        assert "configuration applied" in text and "[ID]" in text and "[CARD]" in text
        for secret in (ID_NUMBER, CARD, "6222 0212", NAME):
            assert secret not in text
        assert "holder=[NAME]" in text  # the old file was redacted on the way out
        # The live file on disk is redacted as written.
        assert ID_NUMBER not in (logs / "agent.log").read_text()
        small = await command(cloud_side, tid, "collect_logs", {"max_bytes": 200})
        assert small["result"]["bytes"] <= 200 and small["result"]["truncated"] is True
        bad = await command(cloud_side, tid, "collect_logs", {"max_bytes": "lots"})
        assert bad["ok"] is False and "max_bytes" in bad["result"]["error"]
    finally:
        procs.stop(proc)


def _quiet(probe: Any) -> Any:
    async def run() -> bool:
        try:
            return bool(await probe())
        except TimeoutError:
            return False

    return run


# --- robustness ----------------------------------------------------------------------------


def test_flap_guard_keeps_climbing_until_the_link_is_stable() -> None:
    attempt = -1
    for _ in range(4):  # connects, drops after 1 s: a flap
        attempt = backoff.next_attempt(attempt, 1.0, stable_s=60)
    assert attempt == 3
    assert backoff.next_attempt(attempt, None, 60) == 4  # never came up
    assert backoff.next_attempt(attempt, 61.0, 60) == 0  # stayed up: start over


async def test_a_flapping_link_is_slowed_and_alerted(tmp_path: Path, broker: Broker) -> None:
    tid = new_id("FL")
    settings = agent_settings(
        tmp_path, broker.cfg.port, tid, backoff_base_s=0.05, backoff_cap_s=5, link_stable_s=30
    )
    agent = Agent(settings, draw=lambda: 0.5)
    task = await running(agent)
    waits: list[float] = []
    try:
        for _ in range(5):
            agent.connected.clear()
            # A client taking over the terminal's id: the broker drops the agent's link.
            async with aiomqtt.Client(
                "127.0.0.1", broker.cfg.port, identifier=tid, protocol=aiomqtt.ProtocolVersion.V5
            ):
                pass
            await asyncio.wait_for(agent.connected.wait(), 15)
            waits.append(agent.link_backoff_s)
        # Each drop came before the link was stable: the wait doubled every time.
        assert waits == [0.025, 0.05, 0.1, 0.2, 0.4], waits
        metrics = agent.sampler.sample()
        assert metrics[alarms.LINK_FLAPS] >= 4
        # The cloud's alert rule, fed the agent's own telemetry sample.
        state = al.TerminalState(tid, True, None, metrics, {})
        rules = al.Rules(_minutes(30), 90, 70, flaps=4)
        assert (al.Kind.LINK_FLAPPING, tid, "") in al.conditions(state, _now(), rules)
    finally:
        agent.stop()
        await task


def _minutes(n: int) -> Any:
    import datetime as dt

    return dt.timedelta(minutes=n)


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)


async def test_spool_full_raises_an_alarm_in_telemetry(tmp_path: Path) -> None:
    tid = new_id("SF")
    # Offline (nothing listens on the port): events pile up to the hard limit (10 × 10).
    agent = Agent(agent_settings(tmp_path, procs.free_port(), tid, spool_max_rows=10))
    for i in range(100):
        agent.emit_event("card_inserted", {"n": i})
    with pytest.raises(SpoolFull):
        agent.emit_event("card_inserted", {"n": 100})
    sample = agent.spool.peek(1000)[-1]
    assert sample.kind.value == "telemetry"
    assert sample.body["metrics"][alarms.SPOOL_REFUSED] == 1.0
    state = al.TerminalState(tid, True, None, sample.body["metrics"], {})
    active = al.conditions(state, _now(), al.Rules(_minutes(30), 90, 70))
    assert (al.Kind.SPOOL_FULL, tid, "") in active
    agent.spool.close()


async def test_commands_for_one_component_run_one_at_a_time() -> None:
    inside: dict[str, int] = {"config": 0, "most": 0}
    release = asyncio.Event()

    async def slow(args: dict[str, Any]) -> dict[str, Any]:
        inside["config"] += 1
        inside["most"] = max(inside["most"], inside["config"])
        await release.wait()
        inside["config"] -= 1
        return {}

    async def ping(args: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True}

    handlers = {"set_config": slow, "shadow_delta": slow, "ping": ping}
    serial = commands.Serial()
    first = asyncio.create_task(commands.run(handlers, "set_config", {}, serial))
    second = asyncio.create_task(commands.run(handlers, "shadow_delta", {}, serial))
    await asyncio.sleep(0.05)
    assert serial.busy("config") and inside["config"] == 1
    # Another component is not held up.
    assert (await commands.run(handlers, "ping", {}, serial)).ok
    release.set()
    await asyncio.gather(first, second)
    assert inside["most"] == 1
    assert commands.component_of("ota_install", {"component": "agent"}) == "ota:agent"


async def test_a_missing_camera_is_a_fault_never_a_fake_picture() -> None:
    from edge.vision.roi import encoder_settings

    periph = Peripherals({}, None)  # a real terminal with no camera configured
    assert periph.states() == {"camera": "fault"}
    results = await periph.self_test()
    assert [(r["name"], r["passed"]) for r in results] == [("camera", False)]
    media = CallMedia(False, None)
    media.settings = encoder_settings(400)
    with pytest.raises(CameraMissing):
        media.tracks()
