"""The ``card_read`` and ``pin_entry`` steps in a call, every part real: the terminal's own
handlers (``edge.steps.card``) read the emulated card through pcscd + vpcd with GENERATE AC
over the desk's nonce, and take the PIN on the pad simulator over a pty; the terminal signs
with its enrolled key; the cloud verifies the signature, then asks the HSM service (ARQC,
PIN) and the core simulator (account, PVV, wrong-PIN count); the teller's confirm posts once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest

from cloud.workflow import service, steps
from cloud.workflow.cardcheck import LOCKED_TEXT, MISMATCH_TEXT, WRONG_PIN_TEXT
from cloud.workflow.errors import StepInputError
from cloud.workflow.models import CorePostingRow, WorkflowState
from common import procs
from common.masking import mask_pan
from corebank import CoreBankClient
from cuntong.servers.corebank import CoreBankServer
from cuntong.servers.hsm import HsmServer
from edge.steps.card import AGAIN_TEXT, CURRENT_TEXT, NEW_TEXT, PinStep
from edge.steps.paperwork import delivered_result
from edge.steps.runner import StepRunner
from edge.steps.sign import Done
from firmware_adapters.iccard.card import PbocCard
from firmware_adapters.iccard.pcscd import READER_NAME
from firmware_adapters.iccard.vpcd import VirtualCardSlot
from firmware_adapters.pty_server import PtyServer
from hsm import HsmClient
from tests.integration.agents import make_agent
from tests.oversight.conftest import Cloud
from tests.steps_rig import Terminal
from tests.transactions import card_rig
from tests.transactions.card_rig import (
    PIN,
    TELLER,
    TID,
    WRONG,
    Bank,
    answer,
    card_step,
    insert,
    start,
)
from tests.transactions.card_rig import ask as ask_step
from tests.transactions.parts import customer_types, pad
from tests.transactions.posting_helpers import core_account


@pytest.fixture
async def terminal_and_cloud(
    tmp_path: Path, bank: Bank, core_server: CoreBankServer
) -> AsyncIterator[tuple[Terminal, Cloud]]:
    async with card_rig.terminal_and_cloud(tmp_path, bank, core_server) as both:
        yield both


async def test_card_and_pin_pass_only_on_the_hsm_and_core_and_the_confirm_posts_once(
    tmp_path: Path,
    bank: Bank,
    terminal_and_cloud: tuple[Terminal, Cloud],
    pinpad_pty: PtyServer,
    card_slot: VirtualCardSlot,
    core_server: CoreBankServer,
    hsm_server: HsmServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    terminal, cloud = terminal_and_cloud
    session = f"S-{uuid.uuid4().hex[:8]}"
    teller = await start(cloud, session, "loan_repayment")  # card_read, pin_entry, e_signature
    await insert(card_slot, bank.card)
    cards = card_step()

    # A forged cryptogram (the terminal signs it, but the HSM recomputes the ARQC).
    request = await ask_step(cloud, session, "card_read")
    done = await cards(request)
    forged_ac = format(int(done.full["arqc"], 16) ^ 1, "016X")
    forged = Done(done.outcome, done.reason, done.masked, {**done.full, "arqc": forged_ac}, True)
    verified, passed = await answer(cloud, terminal, request, forged)
    assert not passed and "does not verify" in verified.reason

    # A genuine cryptogram, but made for another request's nonce.
    second = await ask_step(cloud, session, "card_read")
    verified, passed = await answer(cloud, terminal, second, await cards(request))
    assert not passed and "another request" in verified.reason

    # The genuine answer to this request, over the amount the teller entered, passes; the
    # account comes from the core.
    third = await ask_step(cloud, session, "card_read", 20_000)
    assert third.params["amount_fen"] == 20_000
    verified, passed = await answer(cloud, terminal, third, await cards(third))
    assert passed, verified.reason
    assert verified.masked["amount_fen"] == 20_000
    pan = bank.card.profile.pan
    assert verified.masked["card_masked"] == mask_pan(pan) and pan[4:-4] not in mask_pan(pan)
    assert verified.masked["account"] == bank.account and "card_token" not in verified.masked

    # PIN: a wrong one fails with the tries left on the customer's screen; the right passes.
    async with pad(pinpad_pty) as p:
        pins = PinStep(lambda: p, cards.pans.get)
        customer_types(pinpad_pty, WRONG + "#")
        ask = await ask_step(cloud, session, "pin_entry")
        assert ask.params["pin"] == "verify"
        verified, passed = await answer(cloud, terminal, ask, await pins(ask))
        assert not passed and verified.masked["tries_left"] == 2
        assert verified.masked["customer_text"] == "密码错误,请重新输入。还可尝试2次"
        customer_types(pinpad_pty, PIN + "#")
        ask = await ask_step(cloud, session, "pin_entry")
        done = await pins(ask)
        assert set(done.full) == {"pin_block", "format", "key_slot"}  # only the ciphertext
        verified, passed = await answer(cloud, terminal, ask, done)
    assert passed and verified.masked["tries_left"] == 3, verified.reason

    signature = {"signature": {"sha256": "ab" * 32, "strokes": 3}}
    sign = await ask_step(cloud, session, "e_signature")
    _, passed = await answer(cloud, terminal, sign, delivered_result("e_signature", signature))
    assert passed

    # The card token stays on the server: the step record keeps it (the PIN check above
    # and the posting below find the account by it), the teller's view does not show it.
    token = _private(await WorkflowState.get(session_id=session), "card_read", "card_token")
    view = await teller.get(f"/api/v1/workflow/{session}")
    assert view.status_code == 200 and token not in view.text and "card_token" not in view.text
    card_done = next(d for d in view.json()["done"] if d["step"] == "card_read" and d["passed"])
    assert card_done["detail"]["account"] == bank.account  # what the teller may see stays

    before = await core_account(core_server, bank.account)
    url = f"/api/v1/workflow/{session}/confirm"
    done_r = await teller.post(url, json={"amount_fen": 20_000})
    assert token not in done_r.text
    assert done_r.status_code == 200, done_r.text
    assert done_r.json()["posting"]["status"] == "applied"
    after = await core_account(core_server, bank.account)
    assert after["postings"] == before["postings"] + 1
    assert after["balance_fen"] == before["balance_fen"] - 20_000
    row = await CorePostingRow.get(session_id=session)
    assert row.body["account"] == bank.account
    assert row.body["proofs"] == {"arqc_verified": True, "atc": verified_atc(row),
                                  "pin_verified": True, "arqc_amount_fen": 20_000}  # fmt: skip

    # No clear PIN and no clear card number outside the pad, the HSM and the sealed result.
    state = await WorkflowState.get(session_id=session)
    places = {
        "timeline": orjson.dumps(state.events),
        "posting": orjson.dumps(row.body),
        "cloud log": caplog.text.encode(),
        "cloud db": (tmp_path / "cloud.sqlite3").read_bytes(),
        "hsm log": (hsm_server.state_dir / "hsm.log").read_bytes(),
        "core log": (core_server.state_dir / "corebank.log").read_bytes(),
        **{f"core {f.name}": f.read_bytes() for f in core_server.state_dir.glob("*.sqlite3*")},
        **{
            f"evidence {f.name}": f.read_bytes()
            for f in cloud.ov.evidence_dir.rglob("*")
            if f.is_file()
        },
    }
    for where, data in places.items():
        assert PIN.encode() not in data and WRONG.encode() not in data, where
        assert pan.encode() not in data, where
        if where == "timeline" or where.startswith("evidence"):
            assert token.encode() not in data, where
    assert any(name.startswith("evidence") for name in places)  # the package was sealed


def _private(state: WorkflowState, step: str, key: str) -> str:
    """A value the session's passed ``step`` record keeps for the server only."""
    record = next(r for r in reversed(state.records) if r["step"] == step and r["passed"])
    value = record["detail"][key]
    assert isinstance(value, str) and value
    return value


def verified_atc(row: CorePostingRow) -> int:
    atc = row.body["proofs"]["atc"]
    assert isinstance(atc, int) and atc > 0x29
    return atc


async def test_three_wrong_pins_lock_the_card_in_the_core_and_the_screen_says_so(
    bank: Bank,
    terminal_and_cloud: tuple[Terminal, Cloud],
    pinpad_pty: PtyServer,
    card_slot: VirtualCardSlot,
    core_server: CoreBankServer,
) -> None:
    terminal, cloud = terminal_and_cloud
    session = f"S-{uuid.uuid4().hex[:8]}"
    await start(cloud, session, "loan_repayment")
    await insert(card_slot, bank.card)
    cards = card_step()
    request = await ask_step(cloud, session, "card_read")
    _, passed = await answer(cloud, terminal, request, await cards(request))
    assert passed
    customer_types(pinpad_pty, WRONG + "#")
    words = []
    async with pad(pinpad_pty) as p:
        pins = PinStep(lambda: p, cards.pans.get)
        for _ in range(3):
            ask = await ask_step(cloud, session, "pin_entry")
            verified, passed = await answer(cloud, terminal, ask, await pins(ask))
            assert not passed
            assert "customer_text" in verified.masked, verified.reason
            words.append(verified.masked["customer_text"])
        assert words[:2] == ["密码错误,请重新输入。还可尝试2次", "密码错误,请重新输入。还可尝试1次"]
        assert words[2] == LOCKED_TEXT and verified.masked["locked"] is True
        assert (await core_account(core_server, bank.account))["locked"] is True
        # Locked: even the right PIN does not pass now.
        customer_types(pinpad_pty, PIN + "#")
        ask = await ask_step(cloud, session, "pin_entry")
        verified, passed = await answer(cloud, terminal, ask, await pins(ask))
    assert not passed and verified.masked["customer_text"] == LOCKED_TEXT
    loaded = await service.get(cloud.ov, session)
    assert loaded.workflow.next_step == "pin_entry" and loaded.workflow.outcome is None
    checks = [e.data for e in loaded.timeline.events if e.kind == "card_check"]
    assert [c["passed"] for c in checks] == [True, False, False, False, False]


async def test_the_cryptogram_covers_the_amount_the_teller_entered_and_only_it_posts(
    bank: Bank,
    terminal_and_cloud: tuple[Terminal, Cloud],
    card_slot: VirtualCardSlot,
    pinpad_pty: PtyServer,
    core_server: CoreBankServer,
) -> None:
    """loan_repayment moves money: the teller enters the amount before the card is read,
    the card's GENERATE AC covers it (9F02 in the CDOL1 data), the HSM verifies the ARQC
    over it, and the confirm posts that amount and no other. A card asked over another
    amount, an amount rewritten after the card signed it, and a confirm with another
    amount are each refused by name."""
    terminal, cloud = terminal_and_cloud
    session = f"S-{uuid.uuid4().hex[:8]}"
    teller = await start(cloud, session, "loan_repayment")
    await insert(card_slot, bank.card)
    cards = card_step()

    # Where the core is attached, the card is not asked without the amount (the API says so).
    with pytest.raises(StepInputError, match="enter the amount"):
        await steps.ask(cloud.ov, session, "card_read", TELLER, TID, cloud.clock(),
                        amount_required=True)  # fmt: skip
    with pytest.raises(StepInputError, match="positive whole number"):
        await ask_step(cloud, session, "card_read", -5)

    # The terminal had the card sign another amount than the teller entered (its own
    # GENERATE AC, a genuine cryptogram over 1 fen): refused, naming both amounts.
    asked = await ask_step(cloud, session, "card_read", 35_000)
    other = dataclasses.replace(asked, params={**asked.params, "amount_fen": 100})
    verified, passed = await answer(cloud, terminal, asked, await cards(other))
    assert not passed
    assert verified.reason == (
        "the card's cryptogram covers 100 fen, not the 35000 fen the teller entered"
    )
    # The amount rewritten in the CDOL1 data after the card signed 1 fen: the HSM's ARQC
    # over the rewritten data does not verify.
    asked = await ask_step(cloud, session, "card_read", 35_000)
    done = await cards(dataclasses.replace(asked, params={**asked.params, "amount_fen": 100}))
    data = done.full["cdol1_data"]
    rewritten = data.replace(f"{100:012d}", f"{35_000:012d}", 1)
    assert rewritten != data
    forged = Done(done.outcome, done.reason, done.masked, {**done.full, "cdol1_data": rewritten},
                  True)  # fmt: skip
    verified, passed = await answer(cloud, terminal, asked, forged)
    assert not passed and "does not verify" in verified.reason

    # Over the entered amount: passes, and the step record says what the card covers.
    asked = await ask_step(cloud, session, "card_read", 35_000)
    verified, passed = await answer(cloud, terminal, asked, await cards(asked))
    assert passed and verified.masked["amount_fen"] == 35_000, verified.reason
    customer_types(pinpad_pty, PIN + "#")
    async with pad(pinpad_pty) as p:
        pin = await ask_step(cloud, session, "pin_entry")
        _, passed = await answer(
            cloud, terminal, pin, await PinStep(lambda: p, cards.pans.get)(pin)
        )
    assert passed
    signature = {"signature": {"sha256": "ef" * 32, "strokes": 4}}
    sign = await ask_step(cloud, session, "e_signature")
    _, passed = await answer(cloud, terminal, sign, delivered_result("e_signature", signature))
    assert passed

    # The confirm: another amount is refused and nothing is posted; none given posts the
    # card's amount.
    before = await core_account(core_server, bank.account)
    url = f"/api/v1/workflow/{session}/confirm"
    wrong = await teller.post(url, json={"amount_fen": 53_000})
    assert wrong.status_code == 422, wrong.text
    assert "differs from the 35000 fen the card's cryptogram covers" in wrong.text
    assert (await core_account(core_server, bank.account))["postings"] == before["postings"]
    done_r = await teller.post(url, json={})
    assert done_r.status_code == 200 and done_r.json()["posting"]["status"] == "applied"
    after = await core_account(core_server, bank.account)
    assert after["balance_fen"] == before["balance_fen"] - 35_000
    row = await CorePostingRow.get(session_id=session)
    assert row.body["amount_fen"] == 35_000 and row.body["proofs"]["arqc_amount_fen"] == 35_000


async def test_a_cloned_card_replaying_an_old_counter_is_refused(
    bank: Bank,
    terminal_and_cloud: tuple[Terminal, Cloud],
    card_slot: VirtualCardSlot,
) -> None:
    """The card is used once; a copy of it (same PAN and key) whose counter is behind
    answers a fresh request with a cryptogram that verifies, but its ATC was seen."""
    terminal, cloud = terminal_and_cloud
    first, second = f"S-{uuid.uuid4().hex[:8]}", f"S-{uuid.uuid4().hex[:8]}"
    teller = await start(cloud, first, "loan_repayment")
    await insert(card_slot, bank.card)
    request = await ask_step(cloud, first, "card_read")
    _, passed = await answer(cloud, terminal, request, await card_step()(request))
    assert passed
    await asyncio.to_thread(card_slot.remove)
    clone = PbocCard(dataclasses.replace(bank.card.profile, atc=bank.card.profile.atc - 5))
    await start(cloud, second, "loan_repayment", teller)
    await insert(card_slot, clone)
    request = await ask_step(cloud, second, "card_read")
    verified, passed = await answer(cloud, terminal, request, await card_step()(request))
    assert not passed and "seen before" in verified.reason


#: password_reset's identity steps: tested for real in tests/oversight/test_device_steps.py
#: and the all-parts test; here a supervisor passes them so the test is about card and PIN.
IDENTITY = ("id_card_read", "id_online_check", "face_match", "liveness", "active_liveness")
NEW_PIN = "482915"


async def test_password_reset_sets_the_new_pin_in_the_core_once_and_lifts_the_lock(
    bank: Bank,
    terminal_and_cloud: tuple[Terminal, Cloud],
    pinpad_pty: PtyServer,
    card_slot: VirtualCardSlot,
    core_server: CoreBankServer,
    core_for_steps: CoreBankClient,
    hsm: HsmClient,
) -> None:
    terminal, cloud = terminal_and_cloud
    for _ in range(3):  # the customer forgot the PIN and locked the card at an ATM
        await core_for_steps.record_pin_check(bank.account, False)
    assert (await core_account(core_server, bank.account))["locked"] is True
    session = f"S-{uuid.uuid4().hex[:8]}"
    teller = await start(cloud, session, "password_reset")
    sup = await cloud.client("sup", "supervisor")
    url = f"/api/v1/workflow/{session}"
    r = await teller.post(f"{url}/steps", json={"step": "dual_recording"})
    assert r.status_code == 200, r.text
    for step in IDENTITY:
        r = await sup.post(f"{url}/steps/{step}/override", json={"reason": "card/PIN test"})
        assert r.status_code == 200, r.text

    await insert(card_slot, bank.card)
    cards = card_step()
    request = await ask_step(cloud, session, "card_read")
    verified, passed = await answer(cloud, terminal, request, await cards(request))
    assert passed and verified.masked["locked"] is True  # a locked card may reset its PIN

    second_entry: list[str] = []

    async def screen(text: str | None) -> None:
        if text == AGAIN_TEXT and second_entry:
            customer_types(pinpad_pty, second_entry.pop() + "#")

    async with pad(pinpad_pty) as p:
        pins = PinStep(lambda: p, cards.pans.get, screen)
        # The confirmation differs from the new PIN: refused inside the HSM, with words.
        customer_types(pinpad_pty, NEW_PIN + "#")
        second_entry.append("582914")
        ask = await ask_step(cloud, session, "pin_entry")
        assert ask.params["pin"] == "new"
        done = await pins(ask)
        assert set(done.full) == {"pin_block", "confirmation_block", "format", "key_slot"}
        verified, passed = await answer(cloud, terminal, ask, done)
        assert not passed and verified.masked["customer_text"] == MISMATCH_TEXT
        # Twice the same, but all one digit: too weak.
        customer_types(pinpad_pty, "111111#")
        ask = await ask_step(cloud, session, "pin_entry")
        verified, passed = await answer(cloud, terminal, ask, await pins(ask))
        assert not passed and "pin_weak" in verified.reason
        # The new PIN twice.
        customer_types(pinpad_pty, NEW_PIN + "#")
        ask = await ask_step(cloud, session, "pin_entry")
        verified, passed = await answer(cloud, terminal, ask, await pins(ask))
        assert passed, verified.reason
        assert "pvv" not in verified.masked  # neither the teller nor the screen sees it

    signature = {"signature": {"sha256": "cd" * 32, "strokes": 5}}
    sign = await ask_step(cloud, session, "e_signature")
    _, passed = await answer(cloud, terminal, sign, delivered_result("e_signature", signature))
    assert passed
    r = await sup.post(f"{url}/steps", json={"step": "supervisor_authorisation"})
    assert r.status_code == 200, r.text

    # The new PIN's PVV is kept for the posting, never shown (nor the card token).
    state = await WorkflowState.get(session_id=session)
    pvv = _private(state, "pin_entry", "pvv")
    token = _private(state, "card_read", "card_token")
    view = await teller.get(url)
    assert view.status_code == 200
    assert pvv not in view.text and token not in view.text and '"pvv"' not in view.text
    assert pvv not in orjson.dumps(state.events).decode()

    before = (await core_account(core_server, bank.account))["postings"]
    done_r = await teller.post(f"{url}/confirm", json={})
    assert pvv not in done_r.text
    assert done_r.status_code == 200, done_r.text
    assert done_r.json()["posting"]["status"] == "applied"
    assert done_r.json()["workflow"]["outcome"] == "completed"
    again = await teller.post(f"{url}/confirm", json={})
    assert again.status_code == 409  # completed: nothing is posted twice
    after = await core_account(core_server, bank.account)
    assert after["postings"] == before + 1 and after["locked"] is False
    row = await CorePostingRow.get(session_id=session)
    assert row.body["kind"] == "record" and row.body["account"] == bank.account
    assert row.body["proofs"]["arqc_verified"] is True and row.body["proofs"]["new_pvv"] == pvv

    # The core now holds the new PIN's PVV: the new PIN verifies in the HSM, the old does not.
    token = await hsm.card_token(bank.card.profile.pan, bank.card.profile.pan_sequence)
    card = await core_for_steps.card(token)
    assert card.pvv == row.body["proofs"]["new_pvv"] and not card.locked
    pan = bank.card.profile.pan
    async with pad(pinpad_pty) as p:
        customer_types(pinpad_pty, NEW_PIN + "#")
        new_block = (await p.enter_pin(1, "0", pan)).block
        customer_types(pinpad_pty, PIN + "#")
        old_block = (await p.enter_pin(1, "0", pan)).block
    assert await hsm.verify_pin(new_block, pan, bank.tpk, bank.pvk, card.pvv)
    assert not await hsm.verify_pin(old_block, pan, bank.tpk, bank.pvk, card.pvv)


async def test_password_change_verifies_the_current_pin_then_sets_the_new_one_once(
    bank: Bank,
    terminal_and_cloud: tuple[Terminal, Cloud],
    pinpad_pty: PtyServer,
    card_slot: VirtualCardSlot,
    core_server: CoreBankServer,
    core_for_steps: CoreBankClient,
    hsm: HsmClient,
) -> None:
    """PIN change: the current PIN on the pad first (a wrong one counts in the core, with
    the tries left for the screen, and the new PIN is not taken), then the new PIN twice
    (checked in the HSM); the confirm sets the new PVV in the core, once."""
    terminal, cloud = terminal_and_cloud
    session = f"S-{uuid.uuid4().hex[:8]}"
    teller = await start(cloud, session, "password_change")
    sup = await cloud.client("sup", "supervisor")
    url = f"/api/v1/workflow/{session}"
    r = await teller.post(f"{url}/steps", json={"step": "dual_recording"})
    assert r.status_code == 200, r.text
    for step in ("id_card_read", "liveness"):
        r = await sup.post(f"{url}/steps/{step}/override", json={"reason": "card/PIN test"})
        assert r.status_code == 200, r.text

    await insert(card_slot, bank.card)
    cards = card_step()
    request = await ask_step(cloud, session, "card_read")
    verified, passed = await answer(cloud, terminal, request, await cards(request))
    assert passed, verified.reason

    said: list[str | None] = []
    script: list[str] = []  # what the customer types at each of the three entries

    async def screen(text: str | None) -> None:
        said.append(text)
        if text is not None and script:
            customer_types(pinpad_pty, script.pop(0) + "#")

    async with pad(pinpad_pty) as p:
        pins = PinStep(lambda: p, cards.pans.get, screen)
        # A wrong current PIN: counted, the screen hears the tries left, nothing changes.
        script[:] = [WRONG, NEW_PIN, NEW_PIN]
        ask = await ask_step(cloud, session, "pin_entry")
        assert ask.params["pin"] == "change"
        done = await pins(ask)
        assert said == [CURRENT_TEXT, NEW_TEXT, AGAIN_TEXT, None]
        assert set(done.full) == {"pin_block", "new_block", "confirmation_block", "format",
                                  "key_slot"}  # fmt: skip
        verified, passed = await answer(cloud, terminal, ask, done)
        assert not passed and verified.masked["customer_text"] == WRONG_PIN_TEXT.format(left=2)
        assert (await core_account(core_server, bank.account))["pin_failures"] == 1
        # The right current PIN, but the confirmation differs: refused in the HSM, with words.
        script[:] = [PIN, NEW_PIN, "582914"]
        ask = await ask_step(cloud, session, "pin_entry")
        verified, passed = await answer(cloud, terminal, ask, await pins(ask))
        assert not passed and verified.masked["customer_text"] == MISMATCH_TEXT
        assert (await core_account(core_server, bank.account))["pin_failures"] == 0
        # The right current PIN and the new one twice.
        script[:] = [PIN, NEW_PIN, NEW_PIN]
        ask = await ask_step(cloud, session, "pin_entry")
        verified, passed = await answer(cloud, terminal, ask, await pins(ask))
        assert passed, verified.reason
        assert "pvv" not in verified.masked  # neither the teller nor the screen sees it

    signature = {"signature": {"sha256": "cd" * 32, "strokes": 5}}
    sign = await ask_step(cloud, session, "e_signature")
    _, passed = await answer(cloud, terminal, sign, delivered_result("e_signature", signature))
    assert passed

    token = await hsm.card_token(bank.card.profile.pan, bank.card.profile.pan_sequence)
    old_pvv = (await core_for_steps.card(token)).pvv  # unchanged until the confirm
    # The new PIN's PVV is kept for the posting, never shown (nor the card token).
    state = await WorkflowState.get(session_id=session)
    pvv = _private(state, "pin_entry", "pvv")
    token = _private(state, "card_read", "card_token")
    view = await teller.get(url)
    assert view.status_code == 200
    assert pvv not in view.text and token not in view.text and '"pvv"' not in view.text
    assert pvv not in orjson.dumps(state.events).decode()

    before = (await core_account(core_server, bank.account))["postings"]
    done_r = await teller.post(f"{url}/confirm", json={})
    assert pvv not in done_r.text
    assert done_r.status_code == 200, done_r.text
    assert done_r.json()["posting"]["status"] == "applied"
    assert done_r.json()["workflow"]["outcome"] == "completed"
    assert (await teller.post(f"{url}/confirm", json={})).status_code == 409
    after = await core_account(core_server, bank.account)
    assert after["postings"] == before + 1
    row = await CorePostingRow.get(session_id=session)
    proofs = row.body["proofs"]
    assert proofs["pin_verified"] is True and proofs["arqc_verified"] is True
    card = await core_for_steps.card(token)
    assert card.pvv == proofs["new_pvv"] != old_pvv

    # The new PIN verifies in the HSM against the core's PVV, the old one no longer does.
    pan = bank.card.profile.pan
    async with pad(pinpad_pty) as p:
        customer_types(pinpad_pty, NEW_PIN + "#")
        new_block = (await p.enter_pin(1, "0", pan)).block
        customer_types(pinpad_pty, PIN + "#")
        old_block = (await p.enter_pin(1, "0", pan)).block
    assert await hsm.verify_pin(new_block, pan, bank.tpk, bank.pvk, card.pvv)
    assert not await hsm.verify_pin(old_block, pan, bank.tpk, bank.pvk, card.pvv)


async def test_the_agent_with_a_card_reader_and_pin_pad_performs_both_steps(
    tmp_path: Path,
    bank: Bank,
    terminal_and_cloud: tuple[Terminal, Cloud],
    pinpad_pty: PtyServer,
    card_slot: VirtualCardSlot,
) -> None:
    """The agent (``edge.Agent``) built from a peripherals file with the PC/SC reader and
    the PIN pad registers its own card and PIN handlers; its step runner signs them."""
    terminal, cloud = terminal_and_cloud
    config = tmp_path / "peripherals.json"
    config.write_text(json.dumps({
        "pin_pad": {"kind": "pinpad", "port": str(pinpad_pty.link), "baudrate": 9600},
        "card": {"kind": "iccard", "reader": READER_NAME},
    }))  # fmt: skip
    agent = make_agent(tmp_path / "agents", procs.free_port(), TID, peripherals_file=config)
    handlers = agent.step_handlers(None)
    assert {"card_read", "pin_entry"} <= set(handlers)
    runner = StepRunner(
        lambda: (terminal.key, terminal.certificate_pem), handlers, lambda: dt.datetime.now(dt.UTC)
    )
    session = f"S-{uuid.uuid4().hex[:8]}"
    await start(cloud, session, "loan_repayment")
    await insert(card_slot, bank.card)
    pin_pad = agent.peripherals.adapters["pin_pad"]
    async with pin_pad:
        request = await ask_step(cloud, session, "card_read")
        _, verified, passed = await steps.accept(
            cloud.ov, cloud.ov.device_issuers, TID, session, await runner.run(request),
            cloud.clock(), cloud.ov.cards,
        )  # fmt: skip
        assert passed and verified.masked["account"] == bank.account, verified.reason
        customer_types(pinpad_pty, PIN + "#")
        request = await ask_step(cloud, session, "pin_entry")
        result = await runner.run(request)
    assert result.full is not None and set(result.full) == {"pin_block", "format", "key_slot"}
    _, verified, passed = await steps.accept(
        cloud.ov, cloud.ov.device_issuers, TID, session, result, cloud.clock(), cloud.ov.cards
    )
    assert passed, verified.reason
