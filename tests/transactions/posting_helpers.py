"""Shared by the core-posting tests and bench/core_posting.py: walk a card_loss session's
steps over the API, and ask the real core simulator what it holds."""

from __future__ import annotations

from typing import Any

import httpx

from cuntong.servers.corebank import CoreBankServer

#: card_loss's steps in catalogue order; the supervisor records the last.
CARD_LOSS_STEPS = ("dual_recording", "id_card_read", "id_online_check", "liveness", "e_signature")


async def walk_card_loss(teller: httpx.AsyncClient, sup: httpx.AsyncClient, session: str) -> None:
    url = f"/api/v1/workflow/{session}"
    started = await teller.post(f"{url}/start", json={"business": "card_loss"})
    assert started.status_code == 201, started.text
    for step in CARD_LOSS_STEPS:
        body: dict[str, Any] = {"step": step}
        if step == "liveness":
            body["liveness_score"] = 95
        r = await teller.post(f"{url}/steps", json=body)
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
