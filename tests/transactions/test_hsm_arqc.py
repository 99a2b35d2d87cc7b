"""Card presence: the emulated PBOC card behind the real pcscd + vpcd answers GENERATE AC with
a real ARQC; the HSM service recomputes it from the issuer master key inside SoftHSM2."""

from __future__ import annotations

import dataclasses
import logging
import os

import pytest

from firmware_adapters.iccard import apdu, emv
from firmware_adapters.iccard.adapter import IcCardReader
from firmware_adapters.iccard.card import CDOL1, PDOL, CardProfile, PbocCard
from firmware_adapters.iccard.pcscd import READER_NAME
from firmware_adapters.iccard.vpcd import VirtualCardSlot
from hsm import HsmClient, HsmRefused
from tests.transactions.parts import desk_transaction, issuer_key, kcv, new_card, present


async def test_arqc_from_the_card_verifies_and_forgeries_and_replays_do_not(
    card_slot: VirtualCardSlot, hsm: HsmClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    imk_name, imk = await issuer_key(hsm)
    card = new_card(imk)
    async with IcCardReader("iccard", READER_NAME) as reader:
        await present(reader, card_slot, card)
        tx = desk_transaction()
        proof = await reader.request_cryptogram(tx)
        later = await reader.request_cryptogram(desk_transaction())

    assert proof.is_arqc and proof.atc == 0x2A and later.atc == 0x2B
    assert proof.cdol1_data == emv.cdol_data(emv.parse_dol(proof.cdol1), tx)
    assert (await hsm.verify_arqc(imk_name, proof)).verified

    replayed = await hsm.verify_arqc(imk_name, proof)  # the same cryptogram again
    assert (replayed.verified, replayed.reason) == (False, "atc_replayed")

    flipped = bytes([later.cryptogram[0] ^ 0x01]) + later.cryptogram[1:]
    forged = await hsm.verify_arqc(imk_name, dataclasses.replace(later, cryptogram=flipped))
    assert (forged.verified, forged.reason) == (False, "cryptogram_mismatch")

    # a recorded cryptogram offered for a new request: the desk's new nonce is in the data
    # the verifier builds (with the terminal's own CDOL code), so the MAC no longer matches
    fresh = dataclasses.replace(tx, unpredictable=os.urandom(4))
    moved = dataclasses.replace(later, cdol1_data=emv.cdol_data(emv.parse_dol(later.cdol1), fresh))
    stale = await hsm.verify_arqc(imk_name, moved)
    assert (stale.verified, stale.reason) == (False, "cryptogram_mismatch")
    # the untouched later cryptogram (higher ATC) still verifies: refusals did not burn it
    assert (await hsm.verify_arqc(imk_name, later)).verified

    assert card.profile.pan not in caplog.text
    assert card.profile.pan not in repr(proof)


async def test_a_card_personalised_under_another_issuer_key_fails(
    card_slot: VirtualCardSlot, hsm: HsmClient
) -> None:
    imk_name, _imk = await issuer_key(hsm)
    clone = new_card(os.urandom(16))
    async with IcCardReader("iccard", READER_NAME) as reader:
        await present(reader, card_slot, clone)
        proof = await reader.request_cryptogram(desk_transaction())
    result = await hsm.verify_arqc(imk_name, proof)
    assert (result.verified, result.reason) == (False, "cryptogram_mismatch")


def generate_ac_directly(card: PbocCard, tx: emv.Transaction) -> emv.CardProof:
    """SELECT, GPO and GENERATE AC straight into the emulator (no PC/SC), terminal-side codecs."""
    card.reset()
    card.respond(apdu.select(bytes.fromhex(card.profile.aids[0])))
    pdol = emv.pdol_data(emv.parse_dol(PDOL), tx.when, tx.unpredictable)
    aip, _afl = emv.parse_gpo(apdu.Response.parse(card.respond(apdu.gpo(pdol))).data)
    data = emv.cdol_data(emv.parse_dol(CDOL1), tx)
    answer = apdu.Response.parse(card.respond(apdu.generate_ac(apdu.ARQC, data)))
    cid, atc, ac, iad = emv.parse_generate_ac(answer.data)
    p = card.profile
    return emv.CardProof(p.pan, p.pan_sequence, aip, atc, cid, ac, iad, CDOL1, data)


async def test_card_and_hsm_agree_across_pan_lengths_sequence_numbers_and_atcs(
    hsm: HsmClient,
) -> None:
    """The emulator's pure derivation against the HSM's in-token one, over PANs of 13 to 19
    digits (Option A pads or cuts to 16), sequence numbers 0 and 1, and successive ATCs."""
    imk_name, imk = await issuer_key(hsm)
    for pan, psn in (("6217002870012345672", 1), ("4761739001010010", 0), ("5413330089020", 1)):
        card = PbocCard(CardProfile(pan=pan, pan_sequence=psn, imk=imk, atc=0x0100))
        for _ in range(3):
            proof = generate_ac_directly(card, desk_transaction(123))
            assert (await hsm.verify_arqc(imk_name, proof)).verified, (pan, proof.atc)
        assert card.atc == 0x0103


async def test_an_issuer_key_reloaded_under_its_name_is_the_one_used_next(
    hsm: HsmClient,
) -> None:
    """The service keeps key handles (and kinds) between commands; a key loaded again under
    the same name (a rotation of the IMK) replaces the kept handle: cards of the old key no
    longer verify, cards of the new one do, and the replay table still holds."""
    imk_name, old_imk = await issuer_key(hsm)
    old_card = new_card(old_imk)
    first_proof = generate_ac_directly(old_card, desk_transaction())
    assert (await hsm.verify_arqc(imk_name, first_proof)).verified
    new_imk = os.urandom(16)
    first = os.urandom(16)
    second = bytes(a ^ b for a, b in zip(new_imk, first, strict=True))
    await hsm.import_key(imk_name, "IMK-AC", [(first, kcv(first)), (second, kcv(second))])
    stale = await hsm.verify_arqc(imk_name, generate_ac_directly(old_card, desk_transaction()))
    assert (stale.verified, stale.reason) == (False, "cryptogram_mismatch")
    fresh = new_card(new_imk)
    proof = generate_ac_directly(fresh, desk_transaction())
    assert (await hsm.verify_arqc(imk_name, proof)).verified
    again = await hsm.verify_arqc(imk_name, proof)
    assert (again.verified, again.reason) == (False, "atc_replayed")
    # A key of another kind loaded under the name is refused for the ARQC, not used as one.
    await hsm.import_key(imk_name, "PVK", [(first, kcv(first)), (second, kcv(second))])
    with pytest.raises(HsmRefused) as err:
        await hsm.verify_arqc(imk_name, generate_ac_directly(fresh, desk_transaction()))
    assert err.value.reason == "key_kind"
