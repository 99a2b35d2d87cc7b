"""An ID read made before queueing (先刷身份证) is held in the database, not in the desk's
memory: a desk restarted while the customer waits still takes it as the session's
``id_card_read``, with the card's age and elderly flag; it is used once (across replicas:
the claim is a conditional delete), expires and is deleted.

The process test runs the cloud API as a child process (Janus, mTLS Mosquitto, an enrolled
terminal on MQTT) and restarts it (SIGTERM, a new process on the same database and broker)
between the request and the teller's answer. The read is made by the terminal's own step
runner over the serial ID-card simulator and signed with the key enrolment gave it, as
``TellerClient.read_id_first`` does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from cloud.db import close_db, open_db
from cloud.sessions import store
from cloud.sessions.models import HeldIdRead
from common import procs
from common.wire import call as wire
from cuntong.servers.postgres import Postgres
from edge.steps.runner import StepRunner
from firmware_adapters.idcard.simulator import sample_card
from provisioning.device import Identity
from tests.helpers import create_account, fresh_database
from tests.steps_rig import id_reader
from tests.teller.service_rig import Teller
from tests.teller.test_desk_restart import _desk_up, _env_of, _restart
from tests.teller.test_service import PASSWORD, Service, service  # noqa: F401 - the fixture

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    EXECUTOR_CACHE.clear()  # tortoise caches SQL per table name, not per dialect
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path / 'held.sqlite3'}"
    else:
        pg: Postgres = request.getfixturevalue("postgres_server")
        url = await fresh_database(pg, "held")
    await open_db(url)  # the migrations, 6 included
    try:
        yield url
    finally:
        await close_db()


def _held(request_id: str, session_id: str) -> store.HeldRead:
    return store.HeldRead(request_id, session_id, "SX-HR-01", "c2VhbGVk", {"age": 68})


async def test_a_held_read_is_taken_once_and_expires(db: str) -> None:
    ttl = dt.timedelta(minutes=10)
    assert await store.hold_id_read(_held("r1", "s1"), NOW, NOW + ttl)
    # the same request id again (a replay reaching another replica): refused
    assert not await store.hold_id_read(_held("r1", "s9"), NOW, NOW + ttl)
    assert (await store.held_id_read("s1", NOW)).masked == {"age": 68}  # type: ignore[union-attr]
    # two replicas (or two clicks) claim at once: exactly one gets it
    taken = await asyncio.gather(*(store.take_id_read("s1", NOW) for _ in range(4)))
    assert [t.request_id for t in taken if t is not None] == ["r1"]
    assert await store.take_id_read("s1", NOW) is None  # a second use
    assert not await HeldIdRead.exists()
    # one never taken expires: not shown, not taken, and deleted by the next hold
    assert await store.hold_id_read(_held("r2", "s2"), NOW, NOW + ttl)
    later = NOW + ttl + dt.timedelta(seconds=1)
    assert await store.held_id_read("s2", later) is None
    assert await store.take_id_read("s2", later) is None
    assert await store.hold_id_read(_held("r3", "s3"), later, later + ttl)
    assert [r.request_id for r in await HeldIdRead.all()] == ["r3"]
    # the desk's sweep deletes what has expired, and only that
    assert await store.drop_expired_id_reads(later) == 0
    assert await store.drop_expired_id_reads(later + ttl) == 1
    assert not await HeldIdRead.exists()


async def test_the_read_survives_a_desk_restart_and_is_used_once(
    service: Service,  # noqa: F811
    tmp_path: Path,
) -> None:
    old = service.cloud
    await _desk_up(old.url)
    env = _env_of(old)
    await (await service.teller("qian")).close()  # the account, with its skills; not on duty
    tid = "SX-HR-02"
    new = None
    async with (
        service.terminal(tid) as term,
        id_reader(tmp_path, sample_card(0)) as reader,  # 王*娜, born 1958
    ):
        identity = Identity(tmp_path / "terminals" / tid / "identity")
        runner = StepRunner(
            lambda: (identity.key(), identity.cert_path.read_text()),
            {"id_card_read": reader},
            lambda: datetime.now(UTC),
        )
        request_id = wire.new_request_id()
        ask = wire.StepRequest(
            wire.before_queue_session(request_id),
            "id_card_read",
            request_id,
            {"before_queue": True},
        )
        read = await runner.run(ask)  # as TellerClient.read_id_first makes it
        assert read.outcome == "passed" and read.masked["elderly"] is True
        # the customer asked for card loss without pressing 老年: the card says it
        request = wire.Request(request_id, "card_loss", elderly=False, id_read=read)
        await term.send(request.to_bytes())
        session = (await term.expect("queued"))["session"]

        # nobody answered yet; the desk restarts (its memory is gone)
        await asyncio.to_thread(procs.stop, old.proc)
        new = await asyncio.to_thread(_restart, service, env, tmp_path)
        try:
            await _desk_up(new.url)
            teller = await Teller.login(new.url, "qian", PASSWORD)
            await teller.open()
            await teller.post("/me/state", {"state": "available"})
            offer = await teller.event("offer", timeout=30)
            assert offer["session"] == session and offer["elderly"] is True
            panel = await teller.get(f"/sessions/{session}")
            assert panel["id_read"] == {"name": "王*娜", "id_number": panel["id_read"]["id_number"],
                                        "age": 68, "elderly": True}  # fmt: skip
            assert panel["id_read"]["id_number"].endswith(read.masked["id_number"][-4:])
            await teller.post(f"/sessions/{session}/accept")
            await term.expect("connect")

            flow = f"/api/v1/workflow/{session}"
            assert (
                await teller.http.post(f"{flow}/start", json={"business": "card_loss"})
            ).is_success
            r = await teller.http.post(f"{flow}/steps", json={"step": "dual_recording"})
            assert r.is_success, r.text
            r = await teller.http.post(f"{flow}/steps/id_card_read/ask")
            assert r.status_code == 200, r.text
            taken = r.json()
            assert taken["notice"] == "the ID card read before queueing was taken"
            step = next(d for d in taken["done"] if d["step"] == "id_card_read")
            assert step["passed"] and step["actor"] == f"terminal:{tid}"
            assert (step["detail"]["age"], step["detail"]["elderly"]) == (68, True)
            assert step["detail"]["nonce"] == request_id
            # taken: no longer held, and no step request went to the terminal
            assert "id_read" not in await teller.get(f"/sessions/{session}")
            assert all(m.get("type") != "step_request" for m in _drain(term.inbox))

            # a second use: the same signed request sent again is a replay; the desk
            # queues the customer but refuses the read (no card age, nothing held)
            await term.send(request.to_bytes())
            again = await term.expect("queued", timeout=30)
            assert again["session"] != session
            boss = await _login(service, new.url, "boss-hr", "supervisor")
            second = (await boss.get(f"/api/v1/teller/sessions/{again['session']}")).json()
            assert "id_read" not in second and second["elderly"] is False, second
            await boss.aclose()
            await teller.close()
        finally:
            await asyncio.to_thread(procs.stop, new.proc)


def _drain(inbox: asyncio.Queue[dict[str, object]]) -> list[dict[str, object]]:
    out = []
    while not inbox.empty():
        out.append(inbox.get_nowait())
    return out


async def _login(svc: Service, url: str, account: str, role: str) -> httpx.AsyncClient:
    db_url = f"sqlite://{svc.tmp / 'cloud.sqlite3'}"
    await asyncio.to_thread(create_account, db_url, account, PASSWORD, role)
    async with httpx.AsyncClient(base_url=url) as http:
        r = await http.post("/api/v1/auth/login", json={"username": account, "password": PASSWORD})
    token = r.json()["token"]
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"})
