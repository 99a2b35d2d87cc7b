"""SAM_V framing and the ID-card text block: known frames, round trips, fuzzing."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_adapters.errors import FieldInvalid, FrameChecksum, FrameError, FrameTruncated
from firmware_adapters.idcard.frame import (
    BaseInfo,
    Command,
    FrameDecoder,
    Response,
    decode,
)
from firmware_adapters.idcard.simulator import sample_card
from firmware_adapters.idcard.text import IdCardText, id_check_digit, verify_id_number

# Frames quoted in the vendor notes (docs/peripherals.md, sources [54][55][56][60]).
KNOWN_COMMANDS = {
    "reset_sam": "AAAAAA9669000310FFEC",
    "status": "AAAAAA96690003 11FFED",
    "find": "AAAAAA9669000320 0122",
    "select": "AAAAAA9669000320 0221",
    "read_base": "AAAAAA9669000330 0132",
}
KNOWN_ANSWERS = {
    "AAAAAA9669000400009094": (0x90, b""),
    "AAAAAA9669000800009F0000000097": (0x9F, b"\0\0\0\0"),
    "AAAAAA9669000400008084": (0x80, b""),
    "AAAAAA9669000400008185": (0x81, b""),
    "AAAAAA9669000400004145": (0x41, b""),
}


@pytest.mark.parametrize(("name", "hexframe"), KNOWN_COMMANDS.items())
def test_commands_match_the_published_frames(name: str, hexframe: str) -> None:
    frame = bytes.fromhex(hexframe.replace(" ", ""))
    assert Command.named(name).to_bytes() == frame
    assert Command.parse(frame).name == name


@pytest.mark.parametrize(("hexframe", "expected"), KNOWN_ANSWERS.items())
def test_answers_match_the_published_frames(hexframe: str, expected: tuple[int, bytes]) -> None:
    answer = Response.parse(bytes.fromhex(hexframe))
    assert (answer.sw3, answer.data) == expected
    assert answer.to_bytes().hex().upper() == hexframe


def test_read_base_answer_has_the_documented_layout() -> None:
    card = sample_card(0)
    wlt = bytes(range(256)) * 4  # a real reader's photo: 1024 bytes of WLT
    info = BaseInfo(card.text.to_bytes(), wlt)
    frame = Response(0, 0, 0x90, info.to_bytes()).to_bytes()
    assert len(frame) == 1295
    assert frame[5:14].hex() == "050800009001000400"
    assert frame[14:270] == card.text.to_bytes()
    assert frame[270:1294] == wlt
    assert BaseInfo.parse(Response.parse(frame).data) == info


def test_id_check_digit_matches_the_gb11643_example() -> None:
    assert id_check_digit("11010519491231002") == "X"
    verify_id_number("11010519491231002X")
    with pytest.raises(FieldInvalid):
        verify_id_number("110105194912310021")


def test_text_block_decodes_the_sample_name_bytes() -> None:
    text = sample_card(0).text
    raw = text.to_bytes()
    assert raw[:6] == bytes.fromhex("8B738E7F1C5A")  # 王美娜 in UCS-2 LE
    parsed = IdCardText.parse(raw)
    assert parsed == text
    assert parsed.valid_until is None
    assert parsed.ethnicity_text == "汉"
    assert parsed.sex_text == "female"


def test_text_repr_masks_the_id_number() -> None:
    text = sample_card(0).text
    assert text.id_number not in repr(text)
    assert "6101**********" in repr(text)
    assert text.address not in repr(text)


def test_text_rejects_a_wrong_check_digit_and_bad_dates() -> None:
    text = sample_card(1).text
    last = text.id_number[-1]
    wrong = text.id_number[:-1] + ("0" if last != "0" else "1")
    with pytest.raises(FieldInvalid, match="check digit"):
        IdCardText.parse(_replace(text, id_number=wrong).to_bytes())
    raw = bytearray(text.to_bytes())
    raw[36:52] = "20231399".encode("utf-16-le")
    with pytest.raises(FieldInvalid, match="calendar"):
        IdCardText.parse(bytes(raw))


def _replace(text: IdCardText, **changes: object) -> IdCardText:
    import dataclasses

    return dataclasses.replace(text, **changes)


def test_decoder_survives_noise_and_a_corrupt_frame() -> None:
    good = Response(0, 0, 0x90, b"abc").to_bytes()
    bad = good[:-1] + bytes([good[-1] ^ 1])
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00\x13noise" + good[:4]) == []
    assert decoder.feed(good[4:]) == [good]
    with pytest.raises(FrameChecksum):
        decoder.feed(bad)
    assert decoder.feed(good) == [good]


def test_truncated_and_trailing_frames_raise() -> None:
    good = Command.named("find").to_bytes()
    with pytest.raises(FrameTruncated):
        decode(good[:-1])
    with pytest.raises(FrameError):
        decode(good + b"\x00")


@given(st.binary(max_size=2000))
def test_decode_raises_only_frame_errors_on_garbage(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        Response.parse(data)


@given(st.binary(max_size=300), st.lists(st.integers(1, 40), max_size=20))
def test_decoder_recovers_every_frame_whatever_the_chunking(
    payload: bytes, cuts: list[int]
) -> None:
    frames = [Response(0, 0, 0x90, payload).to_bytes(), Command.named("find").to_bytes()]
    stream = b"\xaa\x01" + b"".join(frames)
    decoder, got, pos = FrameDecoder(), [], 0
    for cut in [*cuts, len(stream)]:
        with contextlib.suppress(FrameError):
            got += decoder.feed(stream[pos : pos + cut])
        pos += cut
    assert got == frames


@given(st.integers(0, 10_000), st.integers(1, 255))
def test_any_corrupted_byte_of_a_read_answer_is_caught(where: int, flip: int) -> None:
    card = sample_card(2)
    frame = bytearray(
        Response(0, 0, 0x90, BaseInfo(card.text.to_bytes(), card.photo_wlt).to_bytes()).to_bytes()
    )
    where %= len(frame)
    frame[where] ^= flip
    try:
        answer = Response.parse(bytes(frame))
        IdCardText.parse(BaseInfo.parse(answer.data).text)
    except FrameError:
        return
    # The XOR checksum misses only flips that cancel out; a single flip never does.
    pytest.fail(f"flip {flip:#x} at {where} went unnoticed")


def test_dates_round_trip() -> None:
    text = sample_card(1).text
    assert IdCardText.parse(text.to_bytes()).valid_until == dt.date(2036, 5, 4)
