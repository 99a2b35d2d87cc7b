"""The card's cryptogram steps against published known answers (the test vectors of the
open-source pyemv project's key-derivation tests: IMK 0123…3210, PAN 12345678901234567,
PSN 45), then the emulated card's GENERATE AC against them."""

from __future__ import annotations

import datetime as dt

import pytest

from firmware_adapters.errors import FieldInvalid
from firmware_adapters.iccard import apdu, cryptogram, emv
from firmware_adapters.iccard.card import CDOL1, PDOL, CardProfile, PbocCard
from firmware_adapters.pinpad import crypto

IMK = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
NOW = dt.datetime(2026, 11, 25, 9, 30, tzinfo=dt.UTC)


def kcv2(key: bytes) -> str:
    return crypto.key_check_value("D", key)[:2].hex().upper()


def test_option_a_card_key_session_key_and_mac_match_known_answers() -> None:
    assert kcv2(IMK) == "08D7"
    mk = cryptogram.card_master_key(IMK, "12345678901234567", 45)
    assert kcv2(mk) == "FF08"
    assert cryptogram.card_master_key(IMK, "99012345678901234", 45).hex().upper() == (
        "67F8292358083E5EA7AB7FDA58D53B6B"
    )
    sk = cryptogram.session_key(mk, bytes.fromhex("1234567890123456"))
    assert kcv2(sk) == "DF82"
    data = bytes.fromhex("0123456789ABCDEF0123456789ABCDEF")
    assert cryptogram.mac_algorithm_3(sk, data).hex().upper() == "19C1FBC83EBDC0D5"
    # no PAN sequence number is the same as 00
    mk0 = cryptogram.card_master_key(IMK, "12345678901234567", None)
    sk0 = cryptogram.session_key(mk0, bytes.fromhex("1234567890123456"))
    assert kcv2(sk0) == "3F4F"
    assert cryptogram.mac_algorithm_3(sk0, data).hex().upper() == "8698A7319324FD93"


def test_inputs_out_of_range_are_refused() -> None:
    with pytest.raises(FieldInvalid):
        cryptogram.card_master_key(IMK, "12345", 1)
    with pytest.raises(FieldInvalid):
        cryptogram.atc_diversifier(0x10000)
    with pytest.raises(FieldInvalid):
        cryptogram.arqc_input(b"", b"\x7c", 1, bytes(4))


def test_card_answers_generate_ac_with_the_cryptogram_over_its_cdol1() -> None:
    card = PbocCard(CardProfile(pan="12345678901234567", pan_sequence=45, imk=IMK, atc=7))
    tx = emv.Transaction(10_000, bytes.fromhex("0A0B0C0D"), NOW, kind=0x01)
    data = emv.cdol_data(emv.parse_dol(CDOL1), tx)
    # before GPO the card refuses: a cryptogram belongs to a transaction in progress
    assert apdu.Response.parse(card.respond(apdu.generate_ac(apdu.ARQC, data))).sw == 0x6985
    card.respond(apdu.select(bytes.fromhex("A000000333010101")))
    card.respond(apdu.gpo(emv.pdol_data(emv.parse_dol(PDOL), NOW, bytes(4))))
    answer = apdu.Response.parse(card.respond(apdu.generate_ac(apdu.ARQC, data)))
    cid, atc, ac, iad = emv.parse_generate_ac(answer.data)
    assert (cid, atc) == (0x80, 8)
    mk = cryptogram.card_master_key(IMK, "12345678901234567", 45)
    assert ac == cryptogram.arqc(mk, 8, data, b"\x7c\x00", iad[3:7])
    assert data[-4:] == tx.unpredictable and data[:6] == bytes.fromhex("000000010000")
    # one cryptogram per GPO
    again = apdu.Response.parse(card.respond(apdu.generate_ac(apdu.ARQC, data)))
    assert again.sw == 0x6985
