"""Async adapter for a SAM_V ID-card reader on a serial port.

    async with IdCardReader("idcard", "/dev/ttyUSB0", wlt_decoder=VendorWlt()) as reader:
        record = await reader.read_card()      # find -> select -> read base -> decode photo
        check = validate(record.text, today)   # check.py: expired / check digit / age

The photo arrives WLT-compressed; the injected `WltDecoder` (photo.py) turns it into JPEG/PNG
in a worker thread. Without a decoder `record.photo` stays None.

Every exchange is one command frame and one answer frame. Status codes that mean "no card"
or "card gone" raise CardAbsent (a customer action); other error statuses raise
DeviceStatusError; link problems raise DeviceAbsent / DeviceTimeout / FrameError. The
adapter stays usable after any of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware_adapters.base import SelfTestResult
from firmware_adapters.errors import CardAbsent, DeviceStatusError
from firmware_adapters.idcard.frame import BaseInfo, Command, FrameDecoder, Response
from firmware_adapters.idcard.photo import WltDecoder, decode_photo
from firmware_adapters.idcard.text import IdCardText
from firmware_adapters.serial_link import Port, SerialAdapter, open_serial

log = logging.getLogger(__name__)

#: reader status codes that describe the card's absence rather than a reader fault
CARD_GONE = {0x80: "no card on the reader", 0x81: "card left before select", 0x41: "card pulled"}


@dataclass(frozen=True)
class IdCardRecord:
    """One read card: decoded text, the WLT photo, its decoded image (JPEG/PNG) and serial."""

    text: IdCardText
    photo_wlt: bytes = field(repr=False)
    serial: bytes = field(repr=False)
    latency_ms: float = 0.0
    photo: bytes | None = field(default=None, repr=False)


class IdCardReader(SerialAdapter):
    """A second-generation ID-card reader speaking SAM_V frames."""

    kind = "idcard"
    default_baudrate = 115200

    def __init__(
        self,
        name: str,
        port: str,
        baudrate: int | None = None,
        timeout: float = 1.5,
        opener: Callable[[str, int], Port] = open_serial,
        wlt_decoder: WltDecoder | None = None,
    ) -> None:
        super().__init__(name, port, baudrate, timeout, opener)
        self.wlt_decoder = wlt_decoder

    async def self_test(self) -> SelfTestResult:
        start = time.perf_counter()
        try:
            await self.transact("status", expect=(0x90,))
        except Exception as err:  # the self-test reports every failure as a result
            return self.result(False, f"{type(err).__name__}: {err}", start)
        return self.result(True, "SAM status ok", start)

    async def transact(self, command: str, expect: tuple[int, ...] = (0x90,)) -> Response:
        """Send one named command and return the answer if its status is expected."""
        async with self.operation():
            raw = await self.link.exchange(
                Command.named(command).to_bytes(), FrameDecoder(), self.timeout
            )
            answer = Response.parse(raw)
            if answer.sw3 in expect:
                return answer
            if answer.sw3 in CARD_GONE:
                raise CardAbsent(CARD_GONE[answer.sw3], code=answer.sw3)
            raise DeviceStatusError(
                f"{command}: reader says {answer.status_text} ({answer.sw3:02x})", answer.sw3
            )

    async def find_card(self) -> bytes:
        return (await self.transact("find", expect=(0x9F,))).data

    async def select_card(self) -> bytes:
        return (await self.transact("select")).data

    async def read_base(self) -> BaseInfo:
        return BaseInfo.parse((await self.transact("read_base")).data)

    async def read_card(self) -> IdCardRecord:
        """find -> select -> read base text and photo -> decode the photo.

        The ID check digit is not refused here: `check.validate` refuses it with words for the
        customer. A malformed text block (bad date, not UCS-2) counts as a reader fault.
        """
        start = time.perf_counter()
        await self.find_card()
        serial = await self.select_card()
        info = await self.read_base()
        async with self.operation():
            text = IdCardText.parse(info.text, verify=False)
            photo = None
            if self.wlt_decoder is not None:
                photo = await asyncio.to_thread(decode_photo, self.wlt_decoder, info.photo_wlt)
        elapsed = (time.perf_counter() - start) * 1e3
        record = IdCardRecord(text, info.photo_wlt, serial, elapsed, photo)
        log.info("%s read %r in %.0f ms", self.name, record.text, record.latency_ms)
        return record
