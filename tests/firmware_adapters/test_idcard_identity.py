"""A full ID-card read with its photo, and the card checks, over the real pty simulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import cv2
import numpy as np
import pytest

from firmware_adapters.idcard.adapter import IdCardReader
from firmware_adapters.idcard.check import REASONS, age_on, validate
from firmware_adapters.idcard.photo import (
    PhotoUndecodable,
    SimulatorPhotoDecoder,
    decode_photo,
    image_kind,
)
from firmware_adapters.idcard.simulator import IdCardSimulator, SimCard, sample_card
from firmware_adapters.masking import mask_id_number, mask_name
from firmware_adapters.pty_server import PtyServer

TODAY = dt.date(2025, 6, 1)


def serve(tmp_path: Path, card: SimCard) -> PtyServer:
    return PtyServer(IdCardSimulator([card]), tmp_path / "idcard.tty")


async def read(server: PtyServer):  # type: ignore[no-untyped-def]
    async with IdCardReader(
        "idcard", str(server.link), timeout=2.0, wlt_decoder=SimulatorPhotoDecoder()
    ) as reader:
        return await reader.read_card()


async def test_a_full_read_gives_every_field_and_a_face_photo(tmp_path: Path) -> None:
    card = sample_card(1)
    with serve(tmp_path, card) as server:
        record = await read(server)
    text = record.text
    assert (text.name, text.sex_text, text.ethnicity_text) == ("张建国", "male", "汉")
    assert text.birth_date == card.text.birth_date
    assert text.address == "陕西省西安市新城区解放路123号"
    assert text.id_number == card.text.id_number
    assert text.issuer == "西安市公安局新城分局"
    assert (text.valid_from, text.valid_until) == (dt.date(2016, 5, 4), dt.date(2036, 5, 4))
    assert record.photo is not None and image_kind(record.photo) == "jpeg"
    image = cv2.imdecode(np.frombuffer(record.photo, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (126, 102, 3)  # the size of a decoded ID-card photo
    check = validate(text, TODAY)
    assert check.ok and check.reason is None
    assert check.age == age_on(card.text.birth_date, TODAY)
    assert check.masked_name == "张*国"


async def test_an_expired_card_is_refused_with_words_for_the_customer(tmp_path: Path) -> None:
    card = sample_card(1)
    expired = dataclasses.replace(
        card, text=dataclasses.replace(card.text, valid_until=dt.date(2025, 5, 31))
    )
    with serve(tmp_path, expired) as server:
        record = await read(server)
    check = validate(record.text, TODAY)
    assert not check.ok and check.reason == "expired"
    assert check.customer_text == "身份证已过期，请使用有效证件"
    # valid through its last day
    assert validate(record.text, dt.date(2025, 5, 31)).ok


async def test_a_wrong_check_digit_is_refused_not_counted_as_a_reader_fault(
    tmp_path: Path,
) -> None:
    card = sample_card(0)
    number = card.text.id_number
    wrong = number[:-1] + ("0" if number[-1] != "0" else "1")
    forged = dataclasses.replace(card, text=dataclasses.replace(card.text, id_number=wrong))
    with serve(tmp_path, forged) as server:
        async with IdCardReader(
            "idcard", str(server.link), timeout=2.0, wlt_decoder=SimulatorPhotoDecoder()
        ) as reader:
            record = await reader.read_card()
            assert reader.health().state == "ok"
    check = validate(record.text, TODAY)
    assert not check.ok and check.reason == "bad_check_digit"
    assert check.customer_text == REASONS["bad_check_digit"].customer_text
    assert "校验" in check.customer_text


def test_validity_not_started_age_and_elderly_flag() -> None:
    text = sample_card(0).text  # born 1958-03-12, long-term card from 2016-05-04
    assert validate(text, dt.date(2016, 5, 3)).reason == "not_yet_valid"
    assert validate(text, dt.date(2018, 3, 11)).age == 59
    assert not validate(text, dt.date(2018, 3, 11)).elderly
    assert validate(text, dt.date(2018, 3, 12)).elderly
    assert not validate(text, dt.date(2018, 3, 12), elderly_age=65).elderly
    assert validate(text, dt.date(2099, 1, 1)).ok  # 长期 never expires
    assert age_on(dt.date(2000, 2, 29), dt.date(2021, 2, 28)) == 20
    assert age_on(dt.date(2000, 2, 29), dt.date(2021, 3, 1)) == 21


def test_masking_keeps_first_and_last() -> None:
    assert mask_name("张建三") == "张*三"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧**娜"
    assert mask_id_number("610102199001011234") == "6101**********1234"


def test_the_decoder_seam_refuses_what_is_not_an_image() -> None:
    with pytest.raises(PhotoUndecodable, match="vendor decoder"):
        decode_photo(SimulatorPhotoDecoder(), b"\x00" * 1024)

    class Broken:
        def decode(self, wlt: bytes) -> bytes:
            raise OSError("libwlt2bmp.so: licence file missing")

    with pytest.raises(PhotoUndecodable, match="licence file missing"):
        decode_photo(Broken(), b"\x00" * 1024)
