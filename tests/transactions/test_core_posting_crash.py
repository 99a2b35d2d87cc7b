"""card_loss posted once when the cloud process dies after the post is sent but before the
answer: a real API process (``cuntong api``) killed with SIGKILL, the real core simulator
holding the answer; after restart the start-up reconciliation settles the posting."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import httpx

from common import procs
from corebank import idempotency_key
from cuntong.servers.corebank import CoreBankServer
from tests.helpers import CloudProcess, create_account, eventually, start_cloud
from tests.transactions.posting_helpers import (
    core_account,
    core_http,
    open_account,
    set_faults,
    walk_card_loss,
)

PASSWORD = "teller-password-for-tests"


def _login(cloud: CloudProcess, account: str) -> httpx.AsyncClient:
    r = httpx.post(f"{cloud.url}/api/v1/auth/login",
                   json={"username": account, "password": PASSWORD}, timeout=10)  # fmt: skip
    assert r.status_code == 200, r.text
    return httpx.AsyncClient(
        base_url=cloud.url, timeout=60, headers={"Authorization": f"Bearer {r.json()['token']}"}
    )


async def test_card_loss_is_applied_once_after_the_cloud_is_killed_mid_post(
    tmp_path: Path, core_server: CoreBankServer
) -> None:
    tag = uuid.uuid4().hex[:8]
    session, account = f"K-{tag}", f"ACCT-{tag}"
    await open_account(core_server, account)
    db_url = f"sqlite://{tmp_path / 'cloud.sqlite3'}"
    for name, role in (("alice", "teller"), ("sup", "supervisor")):
        await asyncio.to_thread(create_account, db_url, name, PASSWORD, role)
    env = {
        "CUNTONG_CLOUD_INGEST": "false",
        "CUNTONG_CLOUD_CORE_URL": core_server.url,
        "CUNTONG_CLOUD_CORE_SECRET_FILE": str(core_server.state_dir / "core.secret"),
        # Long enough that the process is surely still waiting when it is killed.
        "CUNTONG_CLOUD_CORE_TIMEOUT_S": "60",
        "CUNTONG_CLOUD_CORE_RECONCILE_S": "3600",  # only the start-up beat counts here
    }
    no_broker, no_tsdb = procs.free_port(), "http://127.0.0.1:9"
    cloud = await asyncio.to_thread(start_cloud, tmp_path, db_url, no_broker, no_tsdb, **env)
    try:
        alice, sup = _login(cloud, "alice"), _login(cloud, "sup")
        await walk_card_loss(alice, sup, session)
        url = f"/api/v1/workflow/{session}"
        # The core commits the next posting and holds its answer far past the kill.
        await set_faults(core_server, delay_answer_s=30, count=1)
        confirming = asyncio.create_task(alice.post(f"{url}/confirm", json={"account": account}))

        async def committed() -> bool:
            return bool((await core_account(core_server, account))["postings"] == 1)

        await eventually(committed, timeout=30)
        os.killpg(cloud.proc.pid, signal.SIGKILL)
        await asyncio.to_thread(cloud.proc.wait, 10)
        (lost,) = await asyncio.gather(confirming, return_exceptions=True)
        assert isinstance(lost, httpx.HTTPError)  # no answer: the process died waiting

        cloud = await asyncio.to_thread(
            start_cloud, tmp_path, db_url, no_broker, no_tsdb, False, **env
        )
        alice = _login(cloud, "alice")

        async def settled() -> dict[str, object] | None:
            status: dict[str, object] = (await alice.get(f"{url}/posting")).json()
            return status if status["status"] == "applied" else None

        status = await eventually(settled, timeout=30)
        key = idempotency_key(session, "card_loss", "record")
        async with core_http(core_server) as http:
            held = (await http.get(f"/v1/postings/{key}")).json()
        assert status["reference"] == held["reference"]
        done = await alice.post(f"{url}/confirm", json={"account": account})
        assert done.status_code == 200, done.text
        assert done.json()["workflow"]["outcome"] == "completed"
        assert (await core_account(core_server, account))["postings"] == 1  # exactly once
    finally:
        procs.stop(cloud.proc)
