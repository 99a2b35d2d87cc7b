"""The real cloud app (``create_app``) served by uvicorn on loopback, with a desk over
in-memory media (``desk_rig``) and tellers who are oversight accounts."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI
from tortoise.backends.base.executor import EXECUTOR_CACHE

from cloud.api import deps
from cloud.auth import service
from cloud.catalogue import load_catalogue
from cloud.evidence.keys import EvidenceKeys
from cloud.oversight import Oversight
from cloud.sessions import store
from cloud.sessions.desk import SessionFacts
from cloud.sessions.outbox import Outbox
from cloud.sessions.state import Transition
from common import procs
from common import suite as suite_lib
from common.settings import CloudSettings
from cuntong.app import create_app
from tests.teller.desk_rig import Rig, rig

PASSWORD = "correct horse battery"
#: Argon2id with tiny cost: the tests check behaviour, not hashing strength.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class TellerCloud:
    app: FastAPI
    rig: Rig
    outbox: Outbox
    url: str
    http: httpx.AsyncClient

    async def login(self, account: str, *roles: str) -> httpx.AsyncClient:
        """A client logged in as a new account holding ``roles``."""
        await service.create_account(
            account, PASSWORD, roles, dt.datetime.now(dt.UTC), hasher=FAST_HASHER
        )
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {await self.token(account)}"}
        )

    async def token(self, account: str) -> str:
        r = await self.http.post(
            "/api/v1/auth/login", json={"username": account, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


@contextlib.asynccontextmanager
async def teller_cloud(tmp_path: Path, *tellers: str) -> AsyncIterator[TellerCloud]:
    EXECUTOR_CACHE.clear()  # another test may have used PostgreSQL under the same name
    ov = Oversight(
        load_catalogue(),
        EvidenceKeys.generate(),
        tmp_path / "evidence",
        suite_lib.Suite.STANDARD,
        hasher=FAST_HASHER,
    )
    settings = CloudSettings(db_url=f"sqlite://{tmp_path / 'cloud.sqlite3'}", ingest=False)
    app = create_app(settings, oversight=ov)
    r = rig(*tellers)
    keep = r.desk.persist
    assert keep is not None

    async def persist(record: Transition, facts: SessionFacts) -> None:
        await keep(record, facts)  # the rig's own list, for assertions
        await store.save(record, facts)

    r.desk.persist = persist
    outbox = Outbox()
    r.desk.notify = outbox.notify
    port = procs.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event
                await asyncio.sleep(0.02)
        app.dependency_overrides[deps.desk_or_none] = lambda: r.desk
        app.dependency_overrides[deps.outbox_or_none] = lambda: outbox
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url) as http:
            yield TellerCloud(app, r, outbox, url, http)
    finally:
        server.should_exit = True
        await serving
