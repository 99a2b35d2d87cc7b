"""Async adapter for the encrypting PIN pad on a serial port.

    async with PinPad("pinpad", "/dev/ttyS1") as pad:
        await pad.load_master_key(0, "S", tmk)
        await pad.load_working_key(0, 1, pik_under_tmk, expected_kcv)
        block = await pad.enter_pin(1, "S", pan, on_key=show_asterisk)

The host never sees a PIN: only key events ("a digit was pressed") and the encrypted block.
Cancel and entry timeouts raise EntryCancelled (a customer outcome); errors from the pad's
status codes raise DeviceStatusError; link problems raise the usual typed errors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from firmware_adapters.base import SelfTestResult
from firmware_adapters.errors import DeviceStatusError, EntryCancelled, FieldInvalid, FrameError
from firmware_adapters.masking import mask_pan
from firmware_adapters.pinpad.frame import STATUS, FrameDecoder, decode, encode
from firmware_adapters.pinpad.pinblock import FORMATS
from firmware_adapters.serial_link import SerialAdapter

log = logging.getLogger(__name__)

#: end-of-entry event -> why entry ended without a PIN
ENTRY_END = {"FEC": "customer cancelled", "FEE": "PIN entry timed out"}


@dataclass(frozen=True)
class PinBlock:
    """An encrypted PIN block, ready for the host to forward to the bank's HSM."""

    fmt: str
    key_slot: int
    block: bytes
    pan_masked: str
    digits_entered: int

    def __repr__(self) -> str:
        return f"PinBlock(fmt={self.fmt}, slot={self.key_slot}, pan={self.pan_masked})"


class PinPad(SerialAdapter):
    """A ZT588-style encrypting PIN pad."""

    kind = "pinpad"
    default_baudrate = 9600
    _entry_running = False  # set while enter_pin waits for key events

    async def self_test(self) -> SelfTestResult:
        start = time.perf_counter()
        try:
            info = await self.command("3")
        except Exception as err:  # the self-test reports every failure as a result
            return self.result(False, f"{type(err).__name__}: {err}", start)
        return self.result(True, info, start)

    async def command(self, text: str) -> str:
        """Send one command; return the answer's data after a "00" status."""
        async with self.operation():
            answer = decode(await self.link.exchange(encode(text), FrameDecoder(), self.timeout))
            return _ok_data(answer, text[:1])

    async def load_master_key(self, slot: int, alg: str, key: bytes) -> bytes:
        """Load a terminal master key in plain text (done in the secure room); returns KCV."""
        return bytes.fromhex(await self.command(f"1{slot}{alg}{key.hex().upper()}"))

    async def load_master_key_components(
        self, slot: int, alg: str, components: tuple[tuple[bytes, bytes], tuple[bytes, bytes]]
    ) -> bytes:
        """Dual control: two custodians' (component, KCV) pairs; the pad XORs them.

        The pad checks each component against its KCV and refuses (E6) a mistyped one, so a
        wrong master key is never installed. Returns the combined key's KCV.
        """
        answer = ""
        for part, (value, kcv) in enumerate(components, 1):
            answer = await self.command(f"8{slot}{alg}{part}{value.hex().upper()}:{kcv.hex()}")
        return bytes.fromhex(answer)

    async def load_working_key(
        self, master_slot: int, slot: int, encrypted_key: bytes, expected_kcv: bytes | None = None
    ) -> bytes:
        """Load a working key sent encrypted under a master key; with `expected_kcv` the pad
        refuses (E6) a key whose check value differs and keeps the one it had."""
        check = f":{expected_kcv.hex().upper()}" if expected_kcv else ""
        answer = await self.command(f"2{master_slot}{slot}{encrypted_key.hex()}{check}")
        return bytes.fromhex(answer)

    async def enter_pin(
        self,
        slot: int,
        fmt: str,
        pan: str,
        min_len: int = 6,
        max_len: int = 6,
        entry_timeout: int = 30,
        on_key: Callable[[int], None] | None = None,
    ) -> PinBlock:
        """Run one PIN entry and return the encrypted block; `on_key(n)` after each key."""
        if fmt not in FORMATS:
            raise FieldInvalid(f"unknown PIN block format {fmt!r}")
        await self.command(f"6{slot}{fmt}{min_len:02d}{max_len:02d}{entry_timeout:03d}{pan}")
        log.info("%s PIN entry started for %s", self.name, mask_pan(pan))
        digits = await self._await_entry(entry_timeout, on_key)
        block = bytes.fromhex(await self.command("7"))
        return PinBlock(fmt, slot, block, mask_pan(pan), digits)

    async def cancel(self) -> None:
        """Cancel a running entry (the running `enter_pin` raises EntryCancelled)."""
        if self._entry_running:
            await self.link.write(encode("5"))
        else:
            await self.command("5")

    async def _await_entry(self, entry_timeout: int, on_key: Callable[[int], None] | None) -> int:
        decoder, digits = FrameDecoder(), 0
        self._entry_running = True
        try:
            async with self.operation():
                while True:
                    text = decode(await self.link.read_frame(decoder, entry_timeout + 2.0))
                    if text == "K*":
                        digits += 1
                    elif text == "KC":
                        digits = 0
                    elif text == "F00":
                        return digits
                    elif text in ENTRY_END:
                        raise EntryCancelled(ENTRY_END[text])
                    else:
                        continue  # e.g. the "00" answer to our own cancel command
                    if on_key is not None:
                        on_key(digits)
        finally:
            self._entry_running = False


def _ok_data(answer: str, cmd: str) -> str:
    status, data = answer[:2], answer[2:]
    if status == "00":
        return data
    if status not in STATUS:
        raise FrameError(f"command {cmd}: unexpected answer {answer[:8]!r}")
    raise DeviceStatusError(f"command {cmd}: pad says {STATUS[status]} ({status})", status)
