"""PIN-pad framing and PIN blocks against published vectors; frame parsers fuzzed."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_adapters.errors import FieldInvalid, FrameChecksum, FrameError, FrameTruncated
from firmware_adapters.pinpad import crypto
from firmware_adapters.pinpad.frame import FrameDecoder, decode, encode
from firmware_adapters.pinpad.pinblock import (
    encrypt_pin_block,
    iso0_clear,
    iso4_fields,
    sm4_clear,
)
from tests.firmware_adapters.vectors import PIK, PIK_UNDER_TMK, SM4_PAN, TMK


def test_frame_layout_and_round_trip() -> None:
    frame = encode("3")
    assert frame[:5] == b"\x020013"
    assert frame[5] == 0x03
    # XOR of "001" "3" ETX = 0x30^0x30^0x31^0x33^0x03 = 0x01
    assert frame[6:] == b"01"
    assert decode(frame) == "3"


def test_bad_frames_raise_typed_errors() -> None:
    frame = encode("00ABCDEF")
    with pytest.raises(FrameChecksum):
        decode(frame[:-1] + b"0" if frame[-1:] != b"0" else frame[:-1] + b"1")
    with pytest.raises(FrameTruncated):
        decode(frame[:-3])
    with pytest.raises(FrameError):
        decode(b"\x02abc\x03zz")


def test_sm4_pin_block_matches_the_published_vector() -> None:
    assert sm4_clear("123654", SM4_PAN).hex().upper() == "06123654FFFFFFFFFFFF99FEFF88D977"
    assert crypto.decrypt("S", TMK, PIK_UNDER_TMK) == PIK
    assert crypto.key_check_value("S", PIK).hex().upper() == "861E83E31FAEBF10"
    block = encrypt_pin_block("S", PIK, "123654", SM4_PAN, b"")
    assert block.hex().upper() == "CD01D6AD8F0A484C52A9364A0595AD60"


def test_iso0_clear_block() -> None:
    assert iso0_clear("1234", "4111111111111111").hex().upper() == "041225EEEEEEEEEE"


def test_iso4_block_unwraps_to_its_fields() -> None:
    key, fill = bytes(range(16)), bytes.fromhex("0102030405060708")
    block = encrypt_pin_block("4", key, "1234", "4111111111111111", fill)
    pin_field, pan_field = iso4_fields("1234", "4111111111111111", fill)
    assert pin_field.hex().upper() == "441234AAAAAAAAAA0102030405060708"
    assert pan_field.hex().upper() == "44111111111111111000000000000000"
    inner = bytes(a ^ b for a, b in zip(crypto.decrypt("A", key, block), pan_field, strict=True))
    assert crypto.decrypt("A", key, inner) == pin_field


def test_pin_and_pan_are_validated() -> None:
    with pytest.raises(FieldInvalid):
        iso0_clear("12", "4111111111111111")
    with pytest.raises(FieldInvalid):
        iso0_clear("1234", "41111")


@given(st.binary(max_size=600))
def test_decode_raises_only_frame_errors_on_garbage(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode(data)


@given(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200),
    st.lists(st.integers(1, 30), max_size=15),
)
def test_decoder_reassembles_frames_from_any_chunking(text: str, cuts: list[int]) -> None:
    frames = [encode(text), encode("K*"), encode("F00")]
    stream = b"junk" + b"".join(frames)
    decoder, got, pos = FrameDecoder(), [], 0
    for cut in [*cuts, len(stream)]:
        got += decoder.feed(stream[pos : pos + cut])
        pos += cut
    assert [decode(f) for f in got] == [text, "K*", "F00"]


@given(st.lists(st.binary(max_size=80), max_size=6))
def test_decoder_raises_only_frame_errors_on_noise(chunks: list[bytes]) -> None:
    decoder = FrameDecoder()
    for chunk in chunks:
        try:
            for frame in decoder.feed(chunk):
                decode(frame)  # whatever the decoder hands out is a valid frame
        except FrameError:
            pass
