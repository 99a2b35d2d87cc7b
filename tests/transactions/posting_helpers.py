"""Shared by the core-posting tests and bench/core_posting.py: walk a card_loss session's
steps over the API, and ask the real core simulator what it holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from tortoise.backends.base.executor import EXECUTOR_CACHE

from cloud.catalogue import load_catalogue
from cloud.evidence.keys import EvidenceKeys
from cloud.oversight import Oversight
from common import suite as suite_lib
from common.settings import CloudSettings
from cuntong.app import create_app
from cuntong.servers.corebank import CoreBankServer
from tests.oversight.conftest import FAST_HASHER, Clock, Cloud


@asynccontextmanager
async def cloud_with_core(
    tmp: Path,
    core: CoreBankServer | None,
    oversight: dict[str, Any] | None = None,
    **settings: object,
) -> AsyncIterator[Cloud]:
    """The real cloud app in-process on SQLite, talking to the real core simulator
    (``oversight``: more ``Oversight`` fields, e.g. ``device_issuers`` and ``cards``)."""
    EXECUTOR_CACHE.clear()
    clock = Clock(dt.datetime.now(dt.UTC))
    ov = Oversight(load_catalogue(), EvidenceKeys.generate(), tmp / "evidence",
                   suite_lib.Suite.STANDARD, clock=clock, hasher=FAST_HASHER,
                   **(oversight or {}))  # fmt: skip
    if core is not None:
        settings |= {"core_url": core.url, "core_secret_file": core.state_dir / "core.secret"}
    cfg = CloudSettings(db_url=f"sqlite://{tmp / 'cloud.sqlite3'}", ingest=False, **settings)  # type: ignore[arg-type]
    app = create_app(cfg, oversight=ov)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cloud") as http:
            yield Cloud(app, ov, clock, http)


#: card_loss's steps in catalogue order; the supervisor records the last.
CARD_LOSS_STEPS = ("dual_recording", "id_card_read", "id_online_check", "face_match", "liveness",
                   "e_signature")  # fmt: skip


async def walk_card_loss(teller: httpx.AsyncClient, sup: httpx.AsyncClient, session: str) -> None:
    """The teller starts dual recording; the device steps (which pass only on a terminal's
    signed result, and there is no terminal here) a supervisor overrides with a reason —
    these tests are about posting at completion, not about the device steps."""
    url = f"/api/v1/workflow/{session}"
    started = await teller.post(f"{url}/start", json={"business": "card_loss"})
    assert started.status_code == 201, started.text
    for step in CARD_LOSS_STEPS:
        if step == "dual_recording":
            r = await teller.post(f"{url}/steps", json={"step": step})
        else:
            reason: dict[str, Any] = {"reason": "posting test: no terminal"}
            r = await sup.post(f"{url}/steps/{step}/override", json=reason)
        assert r.status_code == 200, r.text
    r = await sup.post(f"{url}/steps", json={"step": "supervisor_authorisation"})
    assert r.status_code == 200, r.text


def core_http(core: CoreBankServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=core.url, headers={"Authorization": f"Bearer {core.secret}"}, timeout=10
    )


async def open_account(core: CoreBankServer, account: str, balance_fen: int = 0) -> None:
    async with core_http(core) as http:
        r = await http.post("/v1/accounts", json={"account": account, "balance_fen": balance_fen})
        assert r.status_code == 201, r.text


async def core_account(core: CoreBankServer, account: str) -> dict[str, Any]:
    async with core_http(core) as http:
        r = await http.get(f"/v1/accounts/{account}")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data


async def set_faults(core: CoreBankServer, **faults: float) -> None:
    async with core_http(core) as http:
        r = await http.post("/v1/faults", json=faults)
        assert r.status_code == 200, r.text
