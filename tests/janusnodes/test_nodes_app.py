"""The cloud app with several Janus nodes registered through its settings, against real
Janus servers: concurrent calls spread over the nodes and each one's recording is archived
from its own node's folder; a draining node and a node down at start get no calls; /healthz
shows every node's state."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from pathlib import Path

from cloud.auth.models import AuditEntry
from cloud.sessions.grants import Message
from cloud.sessions.models import TellerSession
from common import procs
from cuntong.servers.janus import Janus
from cuntong.servers.mosquitto import Broker
from janus_client.janus import JanusClient
from janus_client.videoroom import VideoRoom
from tests.helpers import eventually
from tests.janusnodes.cloud_rig import cloud, node_entry
from tests.teller.test_desk_call import Participant

TALK = 1.5  # seconds both sides publish


async def room_exists(grant: Message) -> bool:
    """Ask the node a grant points at, with the grant's own token, for the grant's room."""
    async with (
        JanusClient(grant["janus_url"], grant["token"]) as client,
        client.session() as session,
    ):
        return await (await VideoRoom.attach(session)).exists(grant["room"])


def archived_file(path: Path) -> tuple[int, str, list[tuple[str, str]]]:
    """An archived recording's size, SHA-256 and streams (as ffprobe reads them)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of",
         "json", str(path)],
        check=True, capture_output=True, timeout=30,
    ).stdout  # fmt: skip
    streams = [(s["codec_type"], s["codec_name"]) for s in json.loads(out)["streams"]]
    return path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest(), streams


async def test_concurrent_calls_land_on_different_nodes_and_archive_from_each(
    janus: Janus, second_janus: Janus, broker: Broker, tmp_path: Path
) -> None:
    rec = {"a": tmp_path / "rec-a", "b": tmp_path / "rec-b"}
    servers = {"a": janus, "b": second_janus}
    nodes = [node_entry(name, servers[name], rec[name], capacity=4) for name in ("a", "b")]
    async with cloud(tmp_path, broker, nodes) as c:
        calls = {"s-1": ("T0001", "t1"), "s-2": ("T0002", "t2")}
        grants = {sid: await c.call(sid, *who) for sid, who in calls.items()}
        placed = {sid: c.pool.registry.node_of(sid) for sid in calls}
        assert {n.name for n in placed.values() if n} == {"a", "b"}  # one call on each
        for sid, (teller, connect) in grants.items():
            node = placed[sid]
            assert node is not None
            # Both sides are sent to the node holding the room, and the room is there.
            assert teller["janus_url"] == connect["janus_url"] == servers[node.name].url
            assert await room_exists(teller)

        sides = await asyncio.gather(*(Participant.join(g) for pair in grants.values()
                                       for g in pair))  # fmt: skip
        await asyncio.sleep(TALK)
        for sid in calls:
            await c.desk.hang_up(sid, "customer pressed end")
        for side in sides:
            await side.leave()

        async def archived() -> list[TellerSession] | None:
            rows = await TellerSession.filter(id__in=list(calls)).order_by("id")
            return rows if all(r.recording_path for r in rows) and len(rows) == 2 else None

        rows = await eventually(archived, timeout=60)

    for row in rows:
        node = placed[row.id]
        assert node is not None and row.janus_node == node.name
        other = "b" if node.name == "a" else "a"
        # Janus wrote the call's tracks on its own node only; the archive came from there.
        assert len(list(rec[node.name].glob(f"{row.id}-*.mjr"))) == 4
        assert not list(rec[other].glob(f"{row.id}-*.mjr"))
        path = Path(row.recording_path)
        size, sha256, streams = archived_file(path)
        assert path.parent == tmp_path / "archive" and size > 10_000
        assert sha256 == row.recording_sha256
        assert streams == [("audio", "opus"), ("video", "vp8")] * 2  # customer, teller


async def test_draining_and_down_nodes_get_no_calls(
    janus: Janus, second_janus: Janus, broker: Broker, tmp_path: Path
) -> None:
    down = procs.free_port()  # nothing listens there: the node is down at start
    nodes = [
        node_entry("a", janus, tmp_path / "rec-a", draining=True),
        node_entry("b", second_janus, tmp_path / "rec-b", capacity=10),
        {**node_entry("c", second_janus, tmp_path / "rec-c"),
         "url": f"http://127.0.0.1:{down}/janus", "admin_url": f"http://127.0.0.1:{down}/admin"},
    ]  # fmt: skip
    async with cloud(tmp_path, broker, nodes) as c:
        health = (await c.http.get("/healthz")).json()
        assert health["media_nodes"] == [
            {"name": "a", "healthy": True, "draining": True, "rooms": 0, "capacity": 50},
            {"name": "b", "healthy": True, "draining": False, "rooms": 0, "capacity": 10},
            {"name": "c", "healthy": False, "draining": False, "rooms": 0, "capacity": 50},
        ]
        text = json.dumps(health)
        assert janus.cfg.admin_secret not in text and janus.url not in text
        for i in (1, 2, 3):
            teller, _ = await c.call(f"s-{i}", f"T000{i}", f"t{i}")
            assert teller["janus_url"] == second_janus.url and await room_exists(teller)
            assert c.pool.registry.node_of(f"s-{i}") is c.pool.registry.nodes["b"]
        health = (await c.http.get("/healthz")).json()
        assert [n["rooms"] for n in health["media_nodes"]] == [0, 3, 0]

        # An operator ends a's draining (upgrade done) at run time: the next call goes there.
        ops, teller = await c.login("ops", "fleet_operator"), await c.login("li", "teller")
        undrain = "/api/v1/ops/media/nodes/a/draining"
        assert (
            await c.http.put(undrain, json={"draining": False}, headers=teller)
        ).status_code == 403
        r = await c.http.put(undrain, json={"draining": False}, headers=ops)
        assert r.json() == {"name": "a", "healthy": True, "draining": False, "rooms": 0,
                            "capacity": 50}  # fmt: skip
        await c.call("s-4", "T0004", "t4")
        assert c.pool.registry.node_of("s-4") is c.pool.registry.nodes["a"]
        r = await c.http.get("/api/v1/ops/media/nodes", headers=ops)
        assert [(n["name"], n["rooms"]) for n in r.json()] == [("a", 1), ("b", 3), ("c", 0)]
        missing = await c.http.put("/api/v1/ops/media/nodes/zz/draining", json={"draining": True},
                                   headers=ops)  # fmt: skip
        assert missing.status_code == 404
        entries = await AuditEntry.filter(action="media_undrain")
        assert [(e.actor, e.target) for e in entries] == [("ops", "a")]
