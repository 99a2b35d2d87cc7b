"""The demo's devices that outlive their processes: a personalised card kept in a file (its
ATC written back, so a restarted emulator is not taken for a replay) read through the real
pcscd + vpcd and checked against the issuer's key; and the PIN pad simulator's key store and
customer file."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from pathlib import Path

import pytest

from firmware_adapters.errors import FieldInvalid
from firmware_adapters.iccard import cryptogram, emv
from firmware_adapters.iccard.adapter import IcCardReader
from firmware_adapters.iccard.card import CardProfile
from firmware_adapters.iccard.cardfile import PersistentCard, read_card, write_card
from firmware_adapters.iccard.pcscd import READER_NAME
from firmware_adapters.iccard.vpcd import VirtualCardSlot
from firmware_adapters.pinpad import crypto
from firmware_adapters.pinpad.frame import encode
from firmware_adapters.pinpad.simulator import (
    PinPadSimulator,
    keys_from_file,
    load_key_store,
    save_key_store,
)
from tests.firmware_adapters.test_iccard_pcscd import inserted


async def test_a_card_from_its_file_answers_arqcs_the_issuer_verifies_and_keeps_its_atc(
    tmp_path: Path, card_slot: VirtualCardSlot
) -> None:
    imk = os.urandom(16)
    path = tmp_path / "card.json"
    write_card(path, CardProfile(pan="6217002870012345672", imk=imk, atc=0x29))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert imk.hex().upper() not in path.read_text()  # the card's key only, never the IMK
    card = PersistentCard(path)
    tx = emv.Transaction(0, os.urandom(4), dt.datetime.now(dt.UTC), kind=0x31)
    async with IcCardReader("iccard", READER_NAME) as reader:
        await inserted(reader, card_slot, card)
        proof = await reader.request_cryptogram(tx)
        # pulled, and seen pulled: the next test's reader starts from an empty slot
        await asyncio.to_thread(card_slot.remove)
        for _ in range(40):
            if await reader.wait_for_event(0.5) == "removed":
                break
    assert proof.atc == 0x2A and read_card(path).atc == 0x2A  # written back before answering
    # the issuer's side, from the IMK: derive the card key, recompute the cryptogram
    key = cryptogram.card_master_key(imk, proof.pan, proof.pan_sequence)
    expected = cryptogram.arqc(key, proof.atc, proof.cdol1_data, proof.aip, proof.iad[3:7])
    assert expected == proof.cryptogram
    # a restarted emulator goes on from the kept counter
    assert PersistentCard(path).atc == 0x2A


def test_a_bad_card_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    path.write_text(json.dumps({"pan": "6217", "atc": 1}))
    with pytest.raises(FieldInvalid, match=r"card\.json: missing or malformed 'ac_key'"):
        read_card(path)


def test_the_pad_keeps_its_keys_and_types_what_the_customer_file_says(tmp_path: Path) -> None:
    store, customer = tmp_path / "keys.json", tmp_path / "customer.json"
    pad = PinPadSimulator(on_keys=lambda slots: save_key_store(store, slots))
    key = os.urandom(16)
    kcv = crypto.key_check_value("D", key).hex().upper()
    (answer,) = pad.handle(encode(f"10D{key.hex().upper()}"), 0.0)
    assert kcv in answer.decode("latin-1")
    assert oct(store.stat().st_mode & 0o777) == "0o600"
    assert load_key_store(store) == {0: ("D", key)}  # a restarted pad has its key again
    customer.write_text(json.dumps({"pin": "x", "customer_types": "482915"}))
    assert keys_from_file(customer) == "482915#"
    customer.write_text("not json")
    assert keys_from_file(customer) is None  # the pad keeps its own script then
