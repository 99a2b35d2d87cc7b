"""Async adapter for a bank IC card reader on PC/SC (pcscd), reading PBOC / EMV cards.

    async with IcCardReader("iccard", reader="Virtual PCD 00 00") as reader:
        event = await reader.wait_for_event(within=5.0)   # "inserted" / "removed" / None
        card = await reader.read_card()                    # CardData, PAN masked in repr
        proof = await reader.request_cryptogram(tx)        # ARQC over tx (amount, desk nonce)

The read: SELECT PSE (directory via READ RECORD) or PPSE, or each known AID directly; choose
the application; SELECT it; GPO with the PDOL filled; READ RECORD over the AFL. A card
pulled mid-read raises CardAbsent; pcscd or the reader missing raises DeviceAbsent, after
which the next call establishes a new PC/SC context.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Literal, ParamSpec, TypeVar

from firmware_adapters.base import AdapterBase, SelfTestResult
from firmware_adapters.errors import CardAbsent, DeviceAbsent, FieldInvalid, PeripheralError
from firmware_adapters.iccard import apdu, emv, tlv
from firmware_adapters.iccard.pcsc import Connection, Pcsc

log = logging.getLogger(__name__)

CardEvent = Literal["inserted", "removed"]
P = ParamSpec("P")
R = TypeVar("R")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class IcCardReader(AdapterBase):
    """One PC/SC reader, chosen by (a part of) its name."""

    kind = "iccard"

    def __init__(
        self,
        name: str,
        reader: str = "",
        clock: Callable[[], dt.datetime] = utc_now,
        pcsc_factory: Callable[[], Pcsc] = Pcsc,
    ) -> None:
        super().__init__(name)
        self.reader_hint = reader
        self.clock = clock
        self._factory = pcsc_factory
        self._pcsc: Pcsc | None = None
        self._reader: str | None = None
        self._state = 0  # SCARD_STATE_UNAWARE
        self._present = False
        self.last_latency_ms = 0.0

    async def open(self) -> None:
        async with self.operation():
            await self._ensure()

    async def close(self) -> None:
        pcsc, self._pcsc = self._pcsc, None
        if pcsc is not None:
            await asyncio.to_thread(pcsc.release)

    async def self_test(self) -> SelfTestResult:
        start = time.perf_counter()
        try:
            async with self.operation():
                pcsc, reader = await self._ensure()
                present, _ = await self._call(pcsc.card_present, reader, 0, 0)
        except PeripheralError as err:
            return self.result(False, f"{type(err).__name__}: {err}", start)
        return self.result(True, f"{reader}: card {'present' if present else 'absent'}", start)

    @property
    def card_seen(self) -> bool:
        """Whether pcscd reported a card in the reader at the last look
        (``wait_for_event`` or the first read of the state); False before any."""
        return self._present

    async def wait_for_event(self, within: float) -> CardEvent | None:
        """The next insertion or removal within `within` seconds, or None."""
        async with self.operation():
            pcsc, reader = await self._ensure()
            if self._state == 0:  # learn the current state first
                self._present, self._state = await self._call(pcsc.card_present, reader, 0, 0)
            was = self._present
            self._present, self._state = await self._call(
                pcsc.card_present, reader, self._state, int(within * 1000)
            )
            if self._present != was:
                return "inserted" if self._present else "removed"
            return None

    async def read_card(self) -> emv.CardData:
        """Read PAN, expiry and cardholder name from the card in the reader."""
        start = time.perf_counter()
        async with self.operation():
            pcsc, reader = await self._ensure()
            conn = await self._call(pcsc.connect, reader)
            try:
                data = await self._read(pcsc, conn)
            finally:
                await asyncio.to_thread(_disconnect_quietly, pcsc, conn)
        self.last_latency_ms = (time.perf_counter() - start) * 1e3
        log.info("%s read %r in %.0f ms", self.name, data, self.last_latency_ms)
        return data

    async def request_cryptogram(self, tx: emv.Transaction) -> emv.CardProof:
        """Read the card, then ask it for an ARQC over `tx` (GENERATE AC, first cut)."""
        async with self.operation():
            pcsc, reader = await self._ensure()
            conn = await self._call(pcsc.connect, reader)
            try:
                data, aip, records = await self._read_full(pcsc, conn)
                everything = [e for rec in records for e in rec]
                cdol1 = tlv.find(everything, 0x8C)
                if not cdol1:
                    raise FieldInvalid("card records carry no CDOL1 (8C)")
                cdol1_data = emv.cdol_data(emv.parse_dol(cdol1), tx)
                answer = await self._exchange(pcsc, conn, apdu.generate_ac(apdu.ARQC, cdol1_data))
                if not answer.ok:
                    raise FieldInvalid(f"GENERATE AC refused: {answer.sw:04X}")
            finally:
                await asyncio.to_thread(_disconnect_quietly, pcsc, conn)
        cid, atc, ac, iad = emv.parse_generate_ac(answer.data)
        proof = emv.CardProof(
            data.pan, data.pan_sequence, aip, atc, cid, ac, iad, cdol1, cdol1_data
        )
        log.info("%s cryptogram %r", self.name, proof)
        return proof

    async def _read(self, pcsc: Pcsc, conn: Connection) -> emv.CardData:
        return (await self._read_full(pcsc, conn))[0]

    async def _read_full(
        self, pcsc: Pcsc, conn: Connection
    ) -> tuple[emv.CardData, bytes, list[list[tlv.Tlv]]]:
        async def send(command: bytes) -> apdu.Response:
            return await self._exchange(pcsc, conn, command)

        app = emv.choose_application(await self._applications(send))
        selected = await send(apdu.select(app.aid))
        if not selected.ok:
            raise FieldInvalid(f"SELECT {app.aid.hex()} refused: {selected.sw:04X}")
        pdol = tlv.find(tlv.parse(selected.data), 0x9F38) or b""
        pdol_data = emv.pdol_data(emv.parse_dol(pdol), self.clock(), os.urandom(4))
        gpo = await send(apdu.gpo(pdol_data))
        if not gpo.ok:
            raise FieldInvalid(f"GET PROCESSING OPTIONS refused: {gpo.sw:04X}")
        aip, afl = emv.parse_gpo(gpo.data)
        records = []
        for entry in afl:
            for number in range(entry.first, entry.last + 1):
                rec = await send(apdu.read_record(entry.sfi, number))
                if not rec.ok:
                    raise FieldInvalid(f"READ RECORD {entry.sfi}/{number}: {rec.sw:04X}")
                records.append(tlv.parse(rec.data))
        return emv.card_data(app, records), aip, records

    async def _applications(
        self, send: Callable[[bytes], Awaitable[apdu.Response]]
    ) -> list[emv.Application]:
        pse = await send(apdu.select(apdu.PSE))
        if pse.ok:
            sfi = emv.pse_sfi(tlv.parse(pse.data))
            records, number = [], 1
            while (rec := await send(apdu.read_record(sfi, number))).ok:
                records.append(tlv.parse(rec.data))
                number += 1
            if apps := emv.applications_from_records(records):
                return apps
        ppse = await send(apdu.select(apdu.PPSE))
        if ppse.ok and (apps := emv.applications_from_fci(tlv.parse(ppse.data))):
            return apps
        # no directory: try each known AID (EMV "list of AIDs" method)
        found = []
        for aid in emv.AIDS:
            if (await send(apdu.select(bytes.fromhex(aid)))).ok:
                found.append(emv.Application(bytes.fromhex(aid)))
        return found

    async def _exchange(self, pcsc: Pcsc, conn: Connection, command: bytes) -> apdu.Response:
        raw = await self._call(pcsc.transmit, conn, command)
        if len(raw) < 2 and self._reader is not None:
            # vpcd answers nothing when the card went away mid-APDU; tell that from a mute card
            # by waiting up to a second for pcscd's poll to see the slot empty
            present, state = await self._call(pcsc.card_present, self._reader, 0, 0)
            if present:
                present, _ = await self._call(pcsc.card_present, self._reader, state, 1000)
            if not present:
                raise CardAbsent("card pulled out during the read")
        response = apdu.Response.parse(raw)
        if response.sw >> 8 == 0x6C:  # wrong Le: resend with the length the card wants
            command = command[:-1] + bytes([response.sw & 0xFF])
            response = apdu.Response.parse(await self._call(pcsc.transmit, conn, command))
        data = response.data
        while response.sw >> 8 == 0x61:  # more data waiting (T=0)
            response = apdu.Response.parse(
                await self._call(pcsc.transmit, conn, apdu.get_response(response.sw & 0xFF))
            )
            data += response.data
        return apdu.Response(data, response.sw)

    async def _ensure(self) -> tuple[Pcsc, str]:
        if self._pcsc is None:
            self._pcsc = await self._call(self._factory)
            self._reader = None
        if self._reader is None:
            names = await self._call(self._pcsc.readers)
            matches = [n for n in names if self.reader_hint in n]
            if not matches:
                raise DeviceAbsent(f"no reader matching {self.reader_hint!r} in {names}")
            self._reader = matches[0]
            self._state = 0
        return self._pcsc, self._reader

    async def _call(self, fn: Callable[P, R], *args: P.args, **kw: P.kwargs) -> R:
        try:
            return await asyncio.to_thread(fn, *args, **kw)
        except DeviceAbsent:
            await self.close()  # a fresh context on the next call (pcscd restarted)
            self._reader = None
            raise


def _disconnect_quietly(pcsc: Pcsc, conn: Connection) -> None:
    try:
        pcsc.disconnect(conn)
    except Exception:  # the card may already be gone; the read's own error matters
        log.debug("disconnect after read failed", exc_info=True)
