"""The cloud app as production wires it (desk, Janus pool from the settings' nodes, MQTT
desk link), run in-process through its lifespan, with the terminals' side on MQTT."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
from fastapi import FastAPI
from tortoise.backends.base.executor import EXECUTOR_CACHE

from cloud.api import deps
from cloud.auth import service
from cloud.catalogue import load_catalogue
from cloud.evidence.keys import EvidenceKeys
from cloud.media.pool import JanusPool
from cloud.oversight import Oversight
from cloud.sessions.desk import Desk
from cloud.sessions.grants import Message
from cloud.sessions.routing import TellerState
from cloud.sessions.skills import Skills
from common import suite as suite_lib
from common import topics
from common.settings import CloudSettings
from cuntong.app import create_app
from cuntong.servers.janus import Janus
from cuntong.servers.mosquitto import Broker
from tests.helpers import eventually
from tests.oversight.conftest import FAST_HASHER, PASSWORD

BUSINESS = "cash_deposit"


def node_entry(name: str, server: Janus, rec_dir: Path, **extra: Any) -> dict[str, Any]:
    """One ``janus_nodes`` entry, as an operator would write it in JSON or TOML."""
    return {
        "name": name,
        "url": server.url,
        "admin_url": server.admin_url,
        "admin_secret": server.cfg.admin_secret,
        "room_key": server.cfg.room_admin_key,
        "rec_dir": str(rec_dir),
        **extra,
    }


@dataclass
class Cloud:
    app: FastAPI
    http: httpx.AsyncClient
    #: Desk messages to terminals, in order of arrival (terminal id, message).
    sent: list[tuple[str, Message]] = field(default_factory=list)

    @property
    def desk(self) -> Desk:
        running = deps.services_of(self.app).desk
        assert running is not None
        return running.desk

    @property
    def pool(self) -> JanusPool:
        running = deps.services_of(self.app).desk
        assert running is not None
        return running.pool

    async def login(self, account: str, role: str) -> dict[str, str]:
        """Headers for a new account holding ``role``."""
        await service.create_account(
            account, PASSWORD, [role], datetime.now(UTC), hasher=FAST_HASHER
        )
        r = await self.http.post(
            "/api/v1/auth/login", json={"username": account, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    async def call(self, session: str, terminal: str, teller: str) -> tuple[Message, Message]:
        """A customer asks, ``teller`` (new on the board, available) accepts: the teller's
        grant and the ``connect`` the terminal received over MQTT."""
        await self.desk.set_skills(teller, Skills.of({BUSINESS: 5}, {"cmn"}))
        await self.desk.teller_state(teller, TellerState.AVAILABLE)
        await self.desk.request(session, terminal, BUSINESS, "cmn", False)
        grant = (await self.desk.accept(teller, session)).message()

        async def connect() -> Message | None:
            got = [m for t, m in self.sent if t == terminal and m["type"] == "connect"]
            return got[-1] if got else None

        return grant, await eventually(connect)


@contextlib.asynccontextmanager
async def cloud(
    tmp_path: Path, broker: Broker, nodes: list[dict[str, Any]]
) -> AsyncIterator[Cloud]:
    """The app with ``janus_nodes`` given as the environment would (a JSON list)."""
    EXECUTOR_CACHE.clear()  # another test may have used PostgreSQL under the same name
    settings = CloudSettings(
        db_url=f"sqlite://{tmp_path / 'cloud.sqlite3'}", ingest=False,
        broker_host=broker.cfg.host, broker_port=broker.cfg.port,
        janus_nodes=json.loads(json.dumps(nodes)), archive_dir=tmp_path / "archive",
    )  # fmt: skip
    ov = Oversight(
        load_catalogue(), EvidenceKeys.generate(), tmp_path / "evidence", suite_lib.Suite.SM,
        hasher=FAST_HASHER,
    )  # fmt: skip
    app = create_app(settings, oversight=ov)
    async with (
        app.router.lifespan_context(app),
        aiomqtt.Client(broker.cfg.host, broker.cfg.port, identifier="terminals",
                       protocol=aiomqtt.ProtocolVersion.V5) as mqtt,
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://cloud") as http,
    ):  # fmt: skip
        await mqtt.subscribe(f"{topics.ROOT}/+/{topics.Channel.DESK.value}", qos=1)
        c = Cloud(app, http)

        async def listen() -> None:
            async for message in mqtt.messages:
                terminal = topics.parse(str(message.topic)).terminal_id
                c.sent.append((terminal, json.loads(message.payload)))  # type: ignore[arg-type]

        reader = asyncio.create_task(listen())

        async def ready() -> bool:
            running = deps.services_of(app).desk
            return running is not None and running.link.ready.is_set()

        try:
            await eventually(ready)
            yield c
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
