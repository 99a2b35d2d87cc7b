"""The teller desk as a running service: the cloud API child process with Janus, an
mTLS-only Mosquitto, an enrolled terminal on MQTT with an aiortc customer, and a teller
logged in as an oversight account on HTTP + WebSocket.

One call end to end (offer, accept, media both ways through Janus, liveness, hang-up,
rating, the archived recording and its SHA-256, the state history); malformed session
messages counted while the link keeps serving; a terminal that goes offline mid-call
failed after its grace period; a teller whose screen disconnects hung up after theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cloud.security import broker_services
from cuntong.servers.janus import Janus
from cuntong.servers.mosquitto import Broker
from cuntong.servers.victoria import VictoriaMetrics
from tests.helpers import CloudProcess, create_account, eventually, secured_cloud
from tests.steps_rig import agent_verdict
from tests.teller.service_rig import Teller, Terminal, terminal
from tests.teller.test_desk_call import TALK, Participant

PASSWORD = "teller-password-for-tests"
GRACE = 2.0


@dataclass
class Service:
    tmp: Path
    broker: Broker
    cloud: CloudProcess

    async def teller(self, account: str, languages: tuple[str, ...] = ("cmn",)) -> Teller:
        """A teller account with every business in ``languages`` (Mandarin unless told),
        via `cuntong accounts`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CUNTONG_")}
        env["CUNTONG_ACCOUNT_PASSWORD"] = PASSWORD
        argv = [
            sys.executable, "-m", "cuntong", "accounts", "--db-url",
            f"sqlite://{self.tmp / 'cloud.sqlite3'}", "create", account, "--role", "teller",
            "--skill", "*=3", *(arg for lang in languages for arg in ("--language", lang)),
        ]  # fmt: skip
        await asyncio.to_thread(subprocess.run, argv, env=env, check=True, timeout=60)
        return await Teller.login(self.cloud.url, account, PASSWORD)

    async def login(self, account: str, role: str) -> httpx.AsyncClient:
        db_url = f"sqlite://{self.tmp / 'cloud.sqlite3'}"
        await asyncio.to_thread(create_account, db_url, account, PASSWORD, role)
        async with httpx.AsyncClient(base_url=self.cloud.url) as http:
            r = await http.post(
                "/api/v1/auth/login", json={"username": account, "password": PASSWORD}
            )
        token = r.json()["token"]
        return httpx.AsyncClient(
            base_url=self.cloud.url, headers={"Authorization": f"Bearer {token}"}
        )

    def terminal(self, tid: str) -> contextlib.AbstractAsyncContextManager[Terminal]:
        return terminal(self.tmp, self.cloud, self.broker.cfg.port, tid)

    async def health(self) -> dict[str, object]:
        async with httpx.AsyncClient(base_url=self.cloud.url) as http:
            return (await http.get("/healthz")).json()  # type: ignore[no-any-return]


@pytest.fixture
async def service(
    tmp_path: Path,
    janus: Janus,
    victoria: VictoriaMetrics,
    service_instances: tuple[str, ...],
    service_env: dict[str, str],
) -> AsyncIterator[Service]:
    media = {
        "CUNTONG_CLOUD_JANUS_URL": janus.url,
        "CUNTONG_CLOUD_JANUS_ADMIN_URL": janus.admin_url,
        "CUNTONG_CLOUD_JANUS_ADMIN_SECRET": janus.cfg.admin_secret,
        "CUNTONG_CLOUD_JANUS_ROOM_KEY": janus.cfg.room_admin_key,
        "CUNTONG_CLOUD_JANUS_REC_DIR": str(tmp_path / "rec"),
        "CUNTONG_CLOUD_ARCHIVE_DIR": str(tmp_path / "archive"),
        "CUNTONG_CLOUD_TERMINAL_GRACE_S": str(GRACE),
        "CUNTONG_CLOUD_TELLER_GRACE_S": str(GRACE),
        **service_env,
    }
    with secured_cloud(
        tmp_path, victoria.url, broker_services(*service_instances), **media
    ) as stack:
        _, broker, cloud = stack
        yield Service(tmp_path, broker, cloud)


async def test_a_call_end_to_end(service: Service) -> None:
    teller = await service.teller("wang")
    await teller.open()
    await teller.post("/me/state", {"state": "available"})
    await eventually(lambda: _link_ready(service))
    async with service.terminal("SX-90001") as term:
        customer_id = {"name": "张三", "id_number": "610102199001011234"}
        request_id = await term.request("card_loss", customer=customer_id)
        queued = await term.expect("queued")
        assert queued["request_id"] == request_id and queued["position"] == 1
        session = queued["session"]
        offer = await teller.event("offer")
        assert (offer["session"], offer["terminal"], offer["business"]) == (
            session, "SX-90001", "card_loss",
        )  # fmt: skip
        panel = await teller.get(f"/sessions/{session}")
        assert panel["customer"] == {"name": "张*", "id_number": "6101**********1234"}
        assert panel["business"]["name_zh"] == "银行卡挂失"

        grant = (await teller.post(f"/sessions/{session}/accept")).json()
        connect = await term.expect("connect")
        assert connect["peer_feed"] == grant["feed"] == "teller-wang"
        # A secured cloud's grants carry its signalling gate: both sides signal through it.
        assert connect["janus_url"] == grant["janus_url"] == "/media/janus/janus-1"
        customer = await Participant.join(connect, service.cloud.url)
        agent = await Participant.join(grant, service.cloud.url)
        heard = await agent.watch(session, "customer")
        seen = await customer.watch(session, connect["peer_feed"])
        verdict = agent_verdict(0.92).masked
        await term.send({"type": "liveness", "session": session, "verdict": verdict})
        assert (await teller.event("liveness"))["verdict"] == verdict
        await asyncio.sleep(TALK)
        for got in (heard, seen):  # media both ways through Janus
            assert got.loudest > 3000 and got.frames["video"] > 10

        await teller.post(f"/sessions/{session}/hang-up", {"cause": "done"})
        assert (await term.expect("ended"))["cause"] == "done"
        for side in (customer, agent):
            await side.leave()
        await teller.post(f"/sessions/{session}/outcome", {"resolved": True})
        await term.send({"type": "rating", "session": session, "score": 5})
        await teller.post("/me/wrap-up-done")

        async def archived() -> dict[str, object] | None:
            p = await teller.get(f"/sessions/{session}")
            return p if p["recording"] and p["rating"] == 5 else None

        panel = await eventually(archived, timeout=60)
    recording = panel["recording"]
    assert isinstance(recording, dict)
    path = Path(recording["path"])
    data = await asyncio.to_thread(path.read_bytes)
    assert path.parent == service.tmp / "archive" and len(data) > 10_000
    assert hashlib.sha256(data).hexdigest() == recording["sha256"]
    assert panel["liveness"] == verdict and panel["resolved"] is True
    assert [h["to"] for h in panel["history"]] == [  # type: ignore[union-attr]
        "requested", "queued", "offered", "connected", "wrap-up", "closed",
    ]  # fmt: skip

    # The supervisor's KPIs and big screen read the real session.
    boss = await service.login("boss", "supervisor")
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()
    kpis = (await boss.get("/api/v1/ops/kpis", params={"since": since})).json()["overall"]
    assert (kpis["offered"], kpis["handled"], kpis["fcr"], kpis["satisfaction"]) == (
        1, 1, 1.0, 5.0,
    )  # fmt: skip
    screen = (await boss.get("/api/v1/ops/overview")).json()
    assert screen["tellers"] == {"available": 1} and screen["queue_now"] == 0
    await boss.aclose()
    await teller.close()


async def test_malformed_messages_are_counted_and_the_link_survives(service: Service) -> None:
    await eventually(lambda: _link_ready(service))
    async with service.terminal("SX-90002") as term:
        await term.send(b"\xff not json")
        await term.send({"type": "dance"})
        await term.send({"type": "request", "request_id": "short", "business": "x"})
        refused = await term.expect("refused")
        assert refused["request_id"] == "short" and "request_id" in refused["reason"]
        await term.request("mortgage")
        assert (await term.expect("refused"))["reason"] == "unknown business"
        await term.send({"type": "hang_up", "session": "someone-elses"})
        request_id = await term.request("pension")
        first = await term.expect("queued")
        assert first["request_id"] == request_id
        # Asking again ends the terminal's old request: its session is no longer theirs.
        again = await term.request("pension")
        second = await term.expect("queued")
        assert second["request_id"] == again and second["session"] != first["session"]
        refused_before = (await service.health())["desk_stats"]["refused"]  # type: ignore[index]
        await term.send({"type": "cancel", "session": first["session"]})

        async def refused_again() -> bool:
            stats = (await service.health())["desk_stats"]
            return stats["refused"] == refused_before + 1  # type: ignore[index,no-any-return]

        await eventually(refused_again)
    stats = (await service.health())["desk_stats"]
    assert isinstance(stats, dict)
    assert stats["malformed"] == 3 and stats["refused"] >= 4 and stats["requests"] == 2


async def test_grace_periods_for_a_lost_terminal_and_a_lost_teller(service: Service) -> None:
    teller = await service.teller("li")
    await teller.open()
    await teller.post("/me/state", {"state": "available"})
    await eventually(lambda: _link_ready(service))
    async with service.terminal("SX-90003") as term:
        # The terminal drops mid-call: the call fails once the grace period is over.
        await term.request()
        session = (await term.expect("queued"))["session"]
        await teller.event("offer")
        await teller.post(f"/sessions/{session}/accept")
        await term.status(online=False)  # what the broker publishes as its last will
        gone = time.monotonic()
        failed = await teller.event("failed", timeout=GRACE + 10)
        assert failed == {"type": "failed", "session": session, "cause": "terminal link lost"}
        assert time.monotonic() - gone >= GRACE - 0.5
        await term.status(online=True)

        # The teller's screen closes mid-call: hung up after the grace, not before; a
        # reconnect within the grace keeps the call.
        await term.request()
        session = (await term.expect("queued"))["session"]
        await teller.event("offer")
        await teller.post(f"/sessions/{session}/accept")
        await term.expect("connect")
        await teller.close()
        await asyncio.sleep(GRACE / 2)
        await teller.open()  # a reload
        await teller.close()
        closed = time.monotonic()
        ended = await term.expect("ended", timeout=GRACE + 10)
        assert ended == {"type": "ended", "session": session, "cause": "teller disconnected"}
        assert time.monotonic() - closed >= GRACE - 0.5
    history = (await teller.get(f"/sessions/{session}"))["history"]
    assert [h["event"] for h in history][-2:] == ["accept", "hang_up"]  # type: ignore[index]


async def _link_ready(service: Service) -> bool:
    return (await service.health()).get("desk_link") == "ok"
