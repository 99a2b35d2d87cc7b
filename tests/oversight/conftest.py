"""Oversight fixtures: the real cloud app (create_app) on SQLite and PostgreSQL, a movable
clock, cheap password hashing, and logged-in clients per role."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from tortoise.backends.base.executor import EXECUTOR_CACHE

from cloud.auth import service
from cloud.auth.ratelimit import LoginThrottle
from cloud.catalogue import load_catalogue
from cloud.evidence.keys import EvidenceKeys
from cloud.oversight import Oversight
from common import suite as suite_lib
from common.settings import CloudSettings
from cuntong.app import create_app
from provisioning import ca as ca_lib
from tests.integration.conftest import db_url  # noqa: F401 - the two-backend fixture

PASSWORD = "correct horse battery"
#: Argon2id with tiny cost: the tests check behaviour, not hashing strength.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class Clock:
    now: dt.datetime

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class Cloud:
    app: FastAPI
    ov: Oversight
    clock: Clock
    http: httpx.AsyncClient

    async def client(self, account: str, *roles: str) -> httpx.AsyncClient:
        """An HTTP client logged in as a new account holding ``roles``."""
        await service.create_account(account, PASSWORD, roles, self.clock(), hasher=FAST_HASHER)
        r = await self.http.post(
            "/api/v1/auth/login", json={"username": account, "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        return httpx.AsyncClient(
            transport=self.http._transport,
            base_url="http://cloud",
            headers={"authorization": f"Bearer {r.json()['token']}"},
        )


@pytest.fixture
def terminal_ca(tmp_path: Path) -> ca_lib.CertificateAuthority:
    """The CA that enrols this test's terminals (the cloud trusts its issuing certificate)."""
    return ca_lib.load_or_create(tmp_path / "ca", dt.datetime(2026, 11, 1, tzinfo=dt.UTC))


@pytest.fixture
async def cloud(
    db_url: str,  # noqa: F811
    tmp_path: Path,
    terminal_ca: ca_lib.CertificateAuthority,
    request: pytest.FixtureRequest,
) -> AsyncIterator[Cloud]:
    """The real app; a test that also asks for ``identity_gateway`` (a running simulator)
    gets a cloud whose online identity check goes to it, and one that asks for
    ``card_checks`` a cloud whose card and PIN steps go to that HSM and core."""
    # Tortoise caches each model's INSERT text per connection *name* ("default"), so a
    # process that moves from SQLite ("?") to PostgreSQL ("$1") would reuse the wrong one.
    EXECUTOR_CACHE.clear()
    clock = Clock(dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC))
    ov = Oversight(
        load_catalogue(),
        EvidenceKeys.generate(),
        tmp_path / "evidence",
        suite_lib.Suite.SM,
        clock=clock,
        hasher=FAST_HASHER,
        device_issuers=(terminal_ca.issuing,),
        identity=(
            request.getfixturevalue("identity_gateway")
            if "identity_gateway" in request.fixturenames
            else None
        ),
        cards=(
            request.getfixturevalue("card_checks")
            if "card_checks" in request.fixturenames
            else None
        ),
        # the real limits, with per-account delays short enough for tests
        login_throttle=LoginThrottle(base_delay_s=0.01, max_delay_s=0.05),
    )
    app = create_app(CloudSettings(db_url=db_url, ingest=False), oversight=ov)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            yield Cloud(app, ov, clock, http)
