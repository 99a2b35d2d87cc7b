"""The teller's confirm posts the business to the real core simulator, once; the business
completes only when the core confirms, and a lost answer is settled by reconciliation."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path

import pytest

from cloud.workflow.models import WorkflowState
from corebank import idempotency_key
from cuntong.servers.corebank import CoreBankServer
from tests.helpers import eventually
from tests.transactions.posting_helpers import (
    cloud_with_core,
    core_account,
    open_account,
    set_faults,
    walk_card_loss,
)


def _ids() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"S-{tag}", f"ACCT-{tag}"


async def test_card_loss_posts_once_and_completes_on_the_core_answer(
    tmp_path: Path, core_server: CoreBankServer
) -> None:
    session, account = _ids()
    await open_account(core_server, account)
    async with cloud_with_core(tmp_path, core_server) as cloud:
        alice = await cloud.client("alice", "teller")
        sup = await cloud.client("sup", "supervisor")
        await walk_card_loss(alice, sup, session)
        url = f"/api/v1/workflow/{session}"
        # The old finish cannot complete a business that posts: only the core's yes does.
        early = await alice.post(f"{url}/finish", json={})
        assert early.status_code == 409 and "core has not confirmed" in early.text
        missing = await alice.post(f"{url}/confirm", json={})
        assert missing.status_code == 422 and "'account'" in missing.text
        bad = await alice.post(f"{url}/confirm", json={"account": "no spaces allowed"})
        assert bad.status_code == 422 and "account" in bad.text
        assert (await core_account(core_server, account))["postings"] == 0

        done = await alice.post(f"{url}/confirm", json={"account": account})
        assert done.status_code == 200, done.text
        posting, wf = done.json()["posting"], done.json()["workflow"]
        assert posting["status"] == "applied" and posting["reference"].startswith("CB")
        assert wf["outcome"] == "completed"
        assert (await core_account(core_server, account))["postings"] == 1
        # The core's reference is on the sealed evidence timeline.
        state = await WorkflowState.get(session_id=session)
        posted = [e for e in state.events if e["kind"] == "core_posted"]
        assert [e["data"]["reference"] for e in posted] == [posting["reference"]]
        assert posted[0]["data"]["key"] == idempotency_key(session, "card_loss", "record")
        again = await alice.post(f"{url}/confirm", json={"account": account})
        assert again.status_code == 409
        assert (await alice.get(f"{url}/posting")).json()["reference"] == posting["reference"]
        assert (await core_account(core_server, account))["postings"] == 1


async def test_core_refusal_shows_its_reason_and_the_business_stays_open(
    tmp_path: Path, core_server: CoreBankServer
) -> None:
    session, _ = _ids()
    async with cloud_with_core(tmp_path, core_server) as cloud:
        alice = await cloud.client("alice", "teller")
        sup = await cloud.client("sup", "supervisor")
        await walk_card_loss(alice, sup, session)
        url = f"/api/v1/workflow/{session}"
        refused = await alice.post(f"{url}/confirm", json={"account": "ACCT-nobody"})
        assert refused.status_code == 200
        assert refused.json()["posting"]["status"] == "refused"
        assert refused.json()["posting"]["reason"] == "account_unknown"
        assert refused.json()["workflow"]["outcome"] is None
        # Corrected, the same key goes again and the core applies it.
        await open_account(core_server, "ACCT-nobody")
        fixed = await alice.post(f"{url}/confirm", json={"account": "ACCT-nobody"})
        assert fixed.json()["posting"]["status"] == "applied", fixed.text
        state = await WorkflowState.get(session_id=session)
        kinds = [e["kind"] for e in state.events]
        assert kinds.count("core_refused") == 1 and kinds.count("core_posted") == 1


async def test_a_refused_posting_can_be_closed_as_not_done(
    tmp_path: Path, core_server: CoreBankServer
) -> None:
    """Nothing moved at the core: the teller may end the business as not done (a pending
    posting may not: see the timeout test below)."""
    session, account = _ids()
    async with cloud_with_core(tmp_path, core_server) as cloud:
        alice = await cloud.client("alice", "teller")
        sup = await cloud.client("sup", "supervisor")
        await walk_card_loss(alice, sup, session)
        url = f"/api/v1/workflow/{session}"
        refused = await alice.post(f"{url}/confirm", json={"account": account})
        assert refused.json()["posting"]["reason"] == "account_unknown"
        ended = await alice.post(f"{url}/finish", json={"outcome": "abandoned"})
        assert ended.status_code == 200 and ended.json()["outcome"] == "abandoned", ended.text


async def test_core_that_times_out_leaves_the_call_pending_and_nothing_is_lost(
    tmp_path: Path, core_server: CoreBankServer
) -> None:
    """The core commits the posting but answers after the cloud's timeout: the teller sees
    pending (202, 处理中), the workflow stays open and cannot be finished; the next confirm
    asks the core about the key (reconciliation), finds the one posting and completes."""
    session, account = _ids()
    await open_account(core_server, account)
    # Reconciliation only at start-up here, so "pending" stays pending until we confirm.
    async with cloud_with_core(tmp_path, core_server, core_timeout_s=0.3, core_attempts=1,
                      core_reconcile_s=3600) as cloud:  # fmt: skip
        alice = await cloud.client("alice", "teller")
        sup = await cloud.client("sup", "supervisor")
        await walk_card_loss(alice, sup, session)
        url = f"/api/v1/workflow/{session}"
        await set_faults(core_server, delay_answer_s=2.0, count=1)
        pending = await alice.post(f"{url}/confirm", json={"account": account})
        assert pending.status_code == 202, pending.text
        assert pending.json()["posting"]["status"] == "pending"
        assert pending.json()["workflow"]["outcome"] is None
        assert (await alice.get(f"{url}/posting")).json()["status"] == "pending"
        assert (await alice.post(f"{url}/finish", json={})).status_code == 409
        # Nor can it be sealed as not done: the core may have applied it (here it has).
        abandon = await alice.post(f"{url}/finish", json={"outcome": "abandoned"})
        assert abandon.status_code == 409 and "pending at the core" in abandon.text
        assert (await core_account(core_server, account))["postings"] == 1  # committed there

        done = await alice.post(f"{url}/confirm", json={"account": account})
        assert done.status_code == 200 and done.json()["workflow"]["outcome"] == "completed"
        assert done.json()["posting"]["status"] == "applied"
        assert (await core_account(core_server, account))["postings"] == 1
        state = await WorkflowState.get(session_id=session)
        assert [e["kind"] for e in state.events].count("core_posted") == 1


async def test_core_outage_before_arrival_is_posted_again_by_the_reconciler(
    tmp_path: Path, core_server: CoreBankServer
) -> None:
    """Every attempt got a 503 (nothing applied): the reconciler finds no posting under the
    key and sends the same posting again, which the core applies once."""
    session, account = _ids()
    await open_account(core_server, account)
    async with cloud_with_core(tmp_path, core_server, core_timeout_s=1.0, core_attempts=2,
                      core_reconcile_s=0.5) as cloud:  # fmt: skip
        alice = await cloud.client("alice", "teller")
        sup = await cloud.client("sup", "supervisor")
        await walk_card_loss(alice, sup, session)
        url = f"/api/v1/workflow/{session}"
        await set_faults(core_server, fail_before=2)
        pending = await alice.post(f"{url}/confirm", json={"account": account})
        assert pending.status_code == 202, pending.text

        async def settled() -> bool:
            return bool((await alice.get(f"{url}/posting")).json()["status"] == "applied")

        await eventually(settled, timeout=20)
        assert (await core_account(core_server, account))["postings"] == 1


async def test_without_a_core_the_business_cannot_confirm_a_posting(tmp_path: Path) -> None:
    session, account = _ids()
    async with cloud_with_core(tmp_path, None) as cloud:
        alice = await cloud.client("alice", "teller")
        sup = await cloud.client("sup", "supervisor")
        await walk_card_loss(alice, sup, session)
        r = await alice.post(f"/api/v1/workflow/{session}/confirm", json={"account": account})
        assert r.status_code == 503 and "no core is configured" in r.text


async def test_a_slow_confirm_logs_the_phase_that_took_the_time(
    tmp_path: Path, core_server: CoreBankServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The core answers after 1.5 s (within the cloud's timeout): the confirm completes, and
    its log line names each phase with the core post as the slow one; no card data in it."""
    session, account = _ids()
    await open_account(core_server, account)
    async with cloud_with_core(tmp_path, core_server, core_timeout_s=10) as cloud:
        alice = await cloud.client("alice", "teller")
        sup = await cloud.client("sup", "supervisor")
        await walk_card_loss(alice, sup, session)
        await set_faults(core_server, delay_answer_s=1.5, count=1)
        caplog.set_level(logging.WARNING, "cuntong.corepost")
        done = await alice.post(f"/api/v1/workflow/{session}/confirm", json={"account": account})
    assert done.status_code == 200 and done.json()["posting"]["status"] == "applied", done.text
    [line] = [r.getMessage() for r in caplog.records if "slow confirm" in r.getMessage()]
    assert line.startswith(f"slow confirm of {session}: ")
    inside = line.split("(", 1)[1].rstrip(")")
    spent = {n.strip(", "): float(ms) for n, ms in re.findall(r"([a-z ,-]+?) (\d+) ms", inside)}
    assert list(spent) == ["load", "write-ahead row", "core post", "answer on timeline and row",
                           "finish and seal"]  # fmt: skip
    assert spent["core post"] >= 1500 and spent["core post"] == max(spent.values())
    assert account not in line


@pytest.fixture(autouse=True)
async def _no_leftover_faults(core_server: CoreBankServer) -> None:
    """Each test sets its own faults; a failed test must not leave one for the next."""
    await set_faults(core_server, delay_answer_s=0, fail_before=0)
