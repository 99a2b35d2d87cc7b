"""TLV, APDUs and the PBOC read logic against the project's emulated card (no PC/SC)."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_adapters.errors import FieldInvalid, FrameError
from firmware_adapters.iccard import apdu, emv, tlv
from firmware_adapters.iccard.card import CardProfile, PbocCard
from firmware_adapters.iccard.tlv import build

NOW = dt.datetime(2026, 11, 25, 9, 30, tzinfo=dt.UTC)


def test_apdus_match_the_published_layouts() -> None:
    assert apdu.select(apdu.PSE).hex().upper() == "00A404000E315041592E5359532E444446303100"
    assert apdu.select(apdu.PPSE).hex().upper() == "00A404000E325041592E5359532E444446303100"
    assert apdu.gpo(b"").hex().upper() == "80A80000028300" + "00"
    assert apdu.read_record(1, 2).hex().upper() == "00B2020C00"
    assert apdu.get_data(0x9F17).hex().upper() == "80CA9F1700"


def test_tlv_parses_nested_multibyte_tags_and_long_lengths() -> None:
    inner = build(0x9F38, b"\x9f\x66\x04")
    long_value = build(0x5F20, b"x" * 200)
    outer = build(0x6F, [build(0x84, b"1PAY"), build(0xA5, [inner, long_value])])
    raw = outer.to_bytes()
    assert raw[raw.index(b"\x5f\x20") + 2 : raw.index(b"\x5f\x20") + 4] == b"\x81\xc8"
    (parsed,) = tlv.parse(raw)
    assert parsed == outer
    assert tlv.find([parsed], 0x9F38) == b"\x9f\x66\x04"


def _read(card: PbocCard, use_pse: bool = True) -> emv.CardData:
    """The adapter's flow, driven synchronously against the emulated card."""

    def send(c: bytes) -> apdu.Response:
        return apdu.Response.parse(card.respond(c))

    if use_pse:
        pse = send(apdu.select(apdu.PSE))
        directory = send(apdu.read_record(emv.pse_sfi(tlv.parse(pse.data)), 1))
        apps = emv.applications_from_records([tlv.parse(directory.data)])
    else:
        apps = emv.applications_from_fci(tlv.parse(send(apdu.select(apdu.PPSE)).data))
    app = emv.choose_application(apps)
    fci = tlv.parse(send(apdu.select(app.aid)).data)
    dol = emv.parse_dol(tlv.find(fci, 0x9F38) or b"")
    gpo = send(apdu.gpo(emv.pdol_data(dol, NOW, b"\x01\x02\x03\x04")))
    _aip, afl = emv.parse_gpo(gpo.data)
    records = [
        tlv.parse(send(apdu.read_record(e.sfi, n)).data)
        for e in afl
        for n in range(e.first, e.last + 1)
    ]
    return emv.card_data(app, records)


@pytest.mark.parametrize("use_pse", [True, False])
def test_flow_reads_pan_expiry_and_name(use_pse: bool) -> None:
    data = _read(PbocCard(), use_pse)
    assert data.pan == "6217002870012345672"
    assert data.expiry == dt.date(2030, 12, 31)
    assert data.cardholder_name == "ZHANG/SANFENG"
    assert data.pan_sequence == 1
    assert (data.scheme, data.product) == ("UnionPay", "debit")
    assert "6217002870012345672" not in repr(data)
    assert data.pan_masked == "6217***********5672"


def test_unionpay_debit_is_preferred_over_other_applications() -> None:
    apps = [
        emv.Application(bytes.fromhex("A0000000031010"), "VISA", 1),
        emv.Application(bytes.fromhex("A000000333010102"), "UP credit", 2),
        emv.Application(bytes.fromhex("A000000333010101"), "UP debit", 3),
    ]
    assert emv.choose_application(apps).label == "UP debit"
    with pytest.raises(FieldInvalid):
        emv.choose_application([emv.Application(b"\xa0\x00\x00\x09\x99")])


def test_gpo_format_1_and_bad_afl() -> None:
    aip, afl = emv.parse_gpo(build(0x80, bytes.fromhex("7C0008010300")).to_bytes())
    assert aip == b"\x7c\x00"
    assert afl == [emv.AflEntry(1, 1, 3, 0)]
    with pytest.raises(FieldInvalid):
        emv.parse_gpo(build(0x80, bytes.fromhex("7C0008030100")).to_bytes())


def test_pdol_is_filled_to_the_requested_lengths() -> None:
    dol = emv.parse_dol(bytes.fromhex("9F66049F02069F37045F2A029A03"))
    data = emv.pdol_data(dol, NOW, b"\xaa\xbb\xcc\xdd")
    assert data.hex().upper() == "26000080" + "000000000000" + "AABBCCDD" + "0156" + "261125"


def test_invalid_pan_and_expiry_are_rejected() -> None:
    with pytest.raises(FieldInvalid, match="not a valid card number"):
        _read(PbocCard(CardProfile(pan="6217002870012345670")))
    with pytest.raises(FieldInvalid, match="not a date"):
        _read(PbocCard(CardProfile(expiry="301331")))


def test_card_refuses_gpo_with_a_wrong_pdol_length() -> None:
    card = PbocCard()
    card.respond(apdu.select(bytes.fromhex("A000000333010101")))
    assert apdu.Response.parse(card.respond(apdu.gpo(b""))).sw == 0x6700


@given(st.binary(max_size=300))
def test_tlv_parse_raises_only_frame_errors(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        tlv.parse(data)


_tags = st.sampled_from([0x5A, 0x57, 0x5F20, 0x5F24, 0x9F38, 0x9F4D, 0x88, 0xDF01])
_leaves = st.builds(tlv.Tlv, _tags, st.binary(min_size=1, max_size=300))


@given(st.lists(_leaves, min_size=1, max_size=5))
def test_tlv_round_trips(leaves: list[tlv.Tlv]) -> None:
    outer = build(0x70, [build(0xA5, leaves)])
    assert tlv.parse(outer.to_bytes()) == [outer]


@given(st.binary(min_size=0, max_size=64))
def test_gpo_and_dol_parsers_raise_only_frame_errors(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        emv.parse_gpo(data)
    with contextlib.suppress(FrameError):
        emv.parse_dol(data)
