"""The core adapter against the core simulator as a real process with its own SQLite:
exactly-once posting when answers are lost, reconciliation, refusals, the PIN-try lock."""

from __future__ import annotations

import asyncio
import json
import sys

import pytest

from corebank import (
    CoreBankClient,
    CorePending,
    CoreRefused,
    Posting,
    PostResult,
    idempotency_key,
)
from cuntong.servers.corebank import CoreBankServer
from tests.helpers import eventually
from tests.transactions.parts import account, admin


def withdrawal(acct: str, session: str = "", amount: int = 20_000) -> Posting:
    return Posting(
        session_id=session or f"S-{acct}",
        business="withdrawal",
        kind="debit",
        account=acct,
        card_masked="6217***********5672",
        amount_fen=amount,
        proofs={"arqc_verified": True, "atc": 43, "pin_verified": True},
    )


def test_the_key_comes_from_session_business_and_kind() -> None:
    key = idempotency_key("S-1", "withdrawal", "debit")
    assert key == withdrawal("A", session="S-1").key
    assert key != idempotency_key("S-2", "withdrawal", "debit")
    assert key != idempotency_key("S-1", "deposit", "debit")


async def test_a_post_whose_answer_is_lost_is_retried_and_applied_once(
    core_server: CoreBankServer, core: CoreBankClient
) -> None:
    acct = await account(core_server, "A-lost")
    # the core commits, then holds its answer past the client's 0.5 s timeout, twice
    await admin(core_server, "POST", "/v1/faults", {"delay_answer_s": 1.5, "count": 1})
    result = await core.post(withdrawal(acct))
    assert result.duplicate and result.attempts == 2  # the retry found the first one applied
    assert result.reference.startswith("CB")
    state = await admin(core_server, "GET", f"/v1/accounts/{acct}")
    assert (state["balance_fen"], state["postings"]) == (80_000, 1)


CLIENT = """
import asyncio, json, sys
from corebank import CoreBankClient, Posting
url, secret, posting = sys.argv[1], sys.argv[2], Posting(**json.loads(sys.argv[3]))
async def main():
    async with CoreBankClient(url, secret, timeout=60, attempts=1) as core:
        await core.post(posting)
asyncio.run(main())
"""


async def test_a_client_killed_after_sending_leaves_one_posting(
    core_server: CoreBankServer, core: CoreBankClient
) -> None:
    acct = await account(core_server, "A-killed")
    posting = withdrawal(acct)
    # the core commits, then holds the answer 5 s: the client is killed while it waits
    await admin(core_server, "POST", "/v1/faults", {"delay_answer_s": 5, "count": 1})
    args = json.dumps({k: v for k, v in posting.body().items() if k != "idempotency_key"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, core_server.url, core_server.secret, args
    )
    try:
        for _ in range(300):
            if await core.reconcile(posting.key) is not None:
                break
            await asyncio.sleep(0.05)
        assert proc.returncode is None  # still waiting for its answer
    finally:
        proc.kill()
        await proc.wait()
    # the worker that takes over posts the same business of the same session again
    result = await core.post(posting)
    assert result.duplicate
    state = await admin(core_server, "GET", f"/v1/accounts/{acct}")
    assert (state["balance_fen"], state["postings"]) == (80_000, 1)


async def test_an_outage_before_applying_is_retried(
    core_server: CoreBankServer, core: CoreBankClient
) -> None:
    acct = await account(core_server, "A-503")
    await admin(core_server, "POST", "/v1/faults", {"fail_before": 2})
    result = await core.post(withdrawal(acct))
    assert (result.duplicate, result.attempts) == (False, 3)
    state = await admin(core_server, "GET", f"/v1/accounts/{acct}")
    assert (state["balance_fen"], state["postings"]) == (80_000, 1)


async def test_a_pending_post_is_resolved_by_reconciliation(core_server: CoreBankServer) -> None:
    acct = await account(core_server, "A-rec")
    posting = withdrawal(acct, session="S-rec")
    async with CoreBankClient(core_server.url, core_server.secret, timeout=0.3, attempts=1) as c:
        assert await c.reconcile(posting.key) is None  # never sent: safe to post
        await admin(core_server, "POST", "/v1/faults", {"delay_answer_s": 1.0})
        with pytest.raises(CorePending) as err:
            await c.post(posting)
        assert err.value.key == posting.key
        settled = await c.reconcile(err.value.key)
        assert settled is not None and settled.reference.startswith("CB")
        # a worker that restarts and posts again gets the same reference, no second debit
        again = await c.post(posting)
        assert (again.reference, again.duplicate) == (settled.reference, True)
    state = await admin(core_server, "GET", f"/v1/accounts/{acct}")
    assert (state["balance_fen"], state["postings"]) == (80_000, 1)


async def test_a_hung_core_applies_nothing_until_released_then_each_key_once(
    core_server: CoreBankServer,
) -> None:
    """The hold switch: postings wait inside the core (nothing applied, nothing answered),
    the inquiry still answers "never arrived", a second post under the key waits too;
    released, the held postings go on and the key is applied once."""
    acct = await account(core_server, "A-hung")
    posting = withdrawal(acct, session="S-hung")
    await admin(core_server, "POST", "/v1/faults", {"hold": True})
    try:
        async with CoreBankClient(core_server.url, core_server.secret, timeout=0.3,
                                  attempts=1) as c:  # fmt: skip
            with pytest.raises(CorePending):
                await c.post(posting)
            with pytest.raises(CorePending):
                await c.post(posting)  # the same key again: held as well
            assert (await admin(core_server, "GET", "/v1/faults"))["held"] == 2
            assert await c.reconcile(posting.key) is None  # not applied while hung
            state = await admin(core_server, "GET", f"/v1/accounts/{acct}")
            assert (state["balance_fen"], state["postings"]) == (100_000, 0)
            released = await admin(core_server, "POST", "/v1/faults", {"hold": False})
            assert released["hold"] is False

            async def settled() -> PostResult | None:
                held = (await admin(core_server, "GET", "/v1/faults"))["held"]
                return await c.reconcile(posting.key) if held == 0 else None

            found = await eventually(settled, timeout=15)
            assert found.reference.startswith("CB")
    finally:
        await admin(core_server, "POST", "/v1/faults", {})
    state = await admin(core_server, "GET", f"/v1/accounts/{acct}")
    assert (state["balance_fen"], state["postings"]) == (80_000, 1)


async def test_refusals_are_answers_and_are_not_retried(
    core_server: CoreBankServer, core: CoreBankClient
) -> None:
    acct = await account(core_server, "A-poor", balance_fen=1_000)
    with pytest.raises(CoreRefused) as err:
        await core.post(withdrawal(acct))
    assert (err.value.reason, err.value.status) == ("insufficient_funds", 422)
    with pytest.raises(CoreRefused) as err:
        await core.post(withdrawal("A-nobody", session="S-x"))
    assert err.value.reason == "account_unknown"
    await account(core_server, "A-rich")
    await core.post(withdrawal("A-rich", session="S-y"))
    with pytest.raises(CoreRefused) as err:  # same key, other content
        await core.post(withdrawal("A-rich", session="S-y", amount=1))
    assert (err.value.reason, err.value.status) == ("idempotency_conflict", 409)
    with pytest.raises(CoreRefused) as err:
        bad = Posting("S-z", "withdrawal", "debit", "A-rich", "6217002870012345672")
        await core.post(bad)  # a clear card number is refused by the core's schema
    assert err.value.status == 422 and "card_masked" in err.value.detail


async def test_three_wrong_pins_lock_the_card(
    core_server: CoreBankServer, core: CoreBankClient
) -> None:
    acct = await account(core_server, "A-pin")
    assert (await core.record_pin_check(acct, ok=False)).tries_left == 2
    assert (await core.record_pin_check(acct, ok=True)).tries_left == 3  # a right PIN resets
    assert (await core.record_pin_check(acct, ok=False)).tries_left == 2
    assert (await core.record_pin_check(acct, ok=False)).tries_left == 1
    third = await core.record_pin_check(acct, ok=False)
    assert (third.tries_left, third.locked) == (0, True)
    with pytest.raises(CoreRefused) as err:
        await core.record_pin_check(acct, ok=True)
    assert (err.value.reason, err.value.status) == ("card_locked", 423)
    with pytest.raises(CoreRefused) as err:
        await core.post(withdrawal(acct, session="S-pin"))
    assert err.value.reason == "card_locked"


async def test_a_stranger_is_refused(core_server: CoreBankServer) -> None:
    async with CoreBankClient(core_server.url, "wrong-secret") as stranger:
        with pytest.raises(CoreRefused) as err:
            await stranger.post(withdrawal("A"))
    assert (err.value.reason, err.value.status) == ("unauthorised", 401)
