"""The HSM's pure rules: its own reading of format 0 blocks (against the pad's writer), the
new-PIN policy, and the service refusing a secret file others can read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_adapters.pinpad.pinblock import iso0_clear
from hsm import pins
from hsm.errors import HsmError, HsmRefused
from hsm.service import _private_file

PANS = st.from_regex(r"[0-9]{13,19}", fullmatch=True)
PINS = st.from_regex(r"[0-9]{4,12}", fullmatch=True)


@given(pin=PINS, pan=PANS)
def test_the_hsm_reads_what_the_pad_writes(pin: str, pan: str) -> None:
    clear = iso0_clear(pin, pan)  # the producer's own code
    assert pins.decode_format0(clear, pan) == pin
    assert pins.encode_format0(pin, pan) == clear


def test_a_worked_format0_example_and_a_wrong_pan() -> None:
    # worked by hand: PIN 1234, PAN 4111111111111111 -> 041234FFFFFFFFFF xor 0000111111111111
    block = bytes.fromhex("041225EEEEEEEEEE")
    assert pins.decode_format0(block, "4111111111111111") == "1234"
    with pytest.raises(HsmRefused) as err:
        pins.decode_format0(block, "4111111111111112" + "0")  # other PAN digits: fill breaks
    assert err.value.reason == "pin_block_invalid"


def test_new_pin_policy() -> None:
    pins.check_new_pin("480257", "480257")
    for pin, again, reason in (
        ("480257", "480258", "pin_mismatch"),
        ("111111", "111111", "pin_weak"),
        ("123456", "123456", "pin_weak"),
        ("987654", "987654", "pin_weak"),
    ):
        with pytest.raises(HsmRefused) as err:
            pins.check_new_pin(pin, again)
        assert err.value.reason == reason


def test_a_secret_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "hsm.secret"
    secret.write_text("s3cret")
    os.chmod(secret, 0o644)
    with pytest.raises(HsmError, match="chmod 600"):
        _private_file(secret)
    os.chmod(secret, 0o600)
    assert _private_file(secret) == "s3cret"
