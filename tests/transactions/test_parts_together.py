"""The three parts composed the way the next round's workflow will drive them, with no cloud
code: PIN from the pad verified in the HSM and counted by the core, the card's ARQC verified,
the business posted once with its proofs. Every part is its real process or simulator."""

from __future__ import annotations

import uuid

import pytest

from corebank import CoreBankClient, CoreRefused, Posting
from cuntong.servers.corebank import CoreBankServer
from firmware_adapters.iccard.adapter import IcCardReader
from firmware_adapters.iccard.pcscd import READER_NAME
from firmware_adapters.iccard.vpcd import VirtualCardSlot
from firmware_adapters.pty_server import PtyServer
from hsm import HsmClient
from tests.transactions.parts import (
    account,
    customer_types,
    desk_transaction,
    issuer_key,
    keyed_pad,
    new_card,
    pad,
    present,
)


async def test_wrong_pins_lock_then_a_good_card_and_pin_post_once(
    pinpad_pty: PtyServer,
    card_slot: VirtualCardSlot,
    hsm: HsmClient,
    core: CoreBankClient,
    core_server: CoreBankServer,
) -> None:
    tag = uuid.uuid4().hex[:8]
    imk_name, imk = await issuer_key(hsm)
    card = new_card(imk)
    pan = card.profile.pan
    acct = await account(core_server, f"A-{tag}")
    async with pad(pinpad_pty) as p:
        tpk, _zpk, pvk = await keyed_pad(p, hsm, tag)
        customer_types(pinpad_pty, "731946#")
        pvv = await hsm.make_pvv((await p.enter_pin(1, "0", pan)).block, pan, tpk, pvk)

        # a right PIN, then the card's cryptogram over the desk's amount and nonce
        block = await p.enter_pin(1, "0", pan)
        verdict = await hsm.verify_pin(block.block, pan, tpk, pvk, pvv)
        assert verdict and (await core.record_pin_check(acct, verdict)).tries_left == 3
        async with IcCardReader("iccard", READER_NAME) as reader:
            await present(reader, card_slot, card)
            proof = await reader.request_cryptogram(desk_transaction(20_000))
        arqc = await hsm.verify_arqc(imk_name, proof)
        assert arqc.verified
        posting = Posting(
            session_id=f"S-{tag}",
            business="withdrawal",
            kind="debit",
            account=acct,
            card_masked=proof.pan_masked,
            amount_fen=20_000,
            proofs={"arqc_verified": arqc.verified, "atc": arqc.atc, "pin_verified": verdict},
        )
        first = await core.post(posting)
        assert first.reference.startswith("CB") and not first.duplicate
        assert (await core.post(posting)).reference == first.reference  # once, however often

        # three wrong PINs: each verdict from the HSM, counted by the core; the third locks
        customer_types(pinpad_pty, "731947#")
        for left in (2, 1, 0):
            wrong = await p.enter_pin(1, "0", pan)
            verdict = await hsm.verify_pin(wrong.block, pan, tpk, pvk, pvv)
            assert not verdict
            assert (await core.record_pin_check(acct, verdict)).tries_left == left
        customer_types(pinpad_pty, "731946#")
        right = await p.enter_pin(1, "0", pan)
    assert await hsm.verify_pin(right.block, pan, tpk, pvk, pvv)  # the PIN is right, but …
    with pytest.raises(CoreRefused) as err:
        await core.record_pin_check(acct, True)
    assert err.value.reason == "card_locked"
    later = Posting(f"S-{tag}-2", "withdrawal", "debit", acct, proof.pan_masked, 100)
    with pytest.raises(CoreRefused):
        await core.post(later)
